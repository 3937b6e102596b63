//! Which binaries may share a database: migrations are additive (expand now, contract in a later release),
//! and `rollcall.schema_floor` (migration 0013) records the oldest binary that may still write to the
//! schema. A binary below the floor refuses; one at or above it runs, even on a schema newer than it knows
//! (a rollback, or replicas of two versions during a rolling update).

use super::{SchemaState, StoreError, MIGRATOR};
use sqlx::PgPool;

/// This binary's release, as messages about the floor name it.
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// The newest migration compiled into this binary: the schema version it knows.
pub fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The oldest binary the schema lets write to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Floor {
    /// A binary may write only if its newest migration is at least this one.
    pub schema: i64,
    /// The release that first shipped that migration, for people.
    pub release: String,
}

/// A binary below the floor, with both sides of the comparison for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooOld {
    pub schema: i64,
    pub floor: Floor,
    pub known: i64,
}

impl std::fmt::Display for TooOld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this rollcall {RELEASE} (schema version {}) is older than the database allows: its schema is at version {} and accepts writers from rollcall {} (schema version {}) on; upgrade rollcall (nothing was written)",
            self.known, self.schema, self.floor.release, self.floor.schema
        )
    }
}

/// The floor, or `None` on a schema from before it existed (nothing there to refuse).
pub async fn floor(pool: &PgPool) -> Result<Option<Floor>, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('rollcall.schema_floor') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !exists {
        return Ok(None);
    }
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT min_writer_schema, min_writer_release FROM rollcall.schema_floor WHERE singleton",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(schema, release)| Floor { schema, release }))
}

/// How this binary may treat the schema it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing there, older than this binary, or the same: migrate (writers) or read as is.
    Known,
    /// Newer than this binary, and the floor lets it write: run, with one warning.
    Newer { schema: i64, floor: Option<Floor> },
    /// The floor is above this binary.
    Refuse(TooOld),
}

pub fn judge(state: SchemaState, floor: Option<Floor>, known: i64) -> Verdict {
    let schema = match state {
        SchemaState::Missing => return Verdict::Known,
        SchemaState::Behind { have, .. } => have.unwrap_or(0),
        SchemaState::Current { version } => version,
        SchemaState::Ahead { have, .. } => have,
    };
    match floor {
        Some(floor) if floor.schema > known => Verdict::Refuse(TooOld {
            schema,
            floor,
            known,
        }),
        floor if schema > known => Verdict::Newer { schema, floor },
        _ => Verdict::Known,
    }
}

/// The schema's version and floor as this binary sees them.
pub async fn inspect(pool: &PgPool) -> Result<Verdict, StoreError> {
    let state = super::schema_state(pool).await?;
    let floor = match state {
        SchemaState::Missing => None,
        _ => floor(pool).await?,
    };
    Ok(judge(state, floor, known_version()))
}

/// The one warning a binary running on a newer schema logs.
pub fn warn_newer(schema: i64, floor: Option<&Floor>) {
    let known = known_version();
    let accepts = floor.map_or_else(
        || "any rollcall".to_string(),
        |f| {
            format!(
                "writers from rollcall {} (schema version {}) on",
                f.release, f.schema
            )
        },
    );
    tracing::warn!(
        schema_version = schema,
        binary_schema_version = known,
        release = RELEASE,
        "the database schema (version {schema}) is newer than this rollcall {RELEASE} knows (version {known}); it accepts {accepts}, so this binary runs on it"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floor(schema: i64) -> Option<Floor> {
        Some(Floor {
            schema,
            release: "0.3.0".into(),
        })
    }

    #[test]
    fn the_floor_decides_and_a_newer_schema_alone_does_not() {
        let ahead = SchemaState::Ahead { have: 15, want: 13 };
        assert_eq!(judge(SchemaState::Missing, None, 13), Verdict::Known);
        assert_eq!(
            judge(SchemaState::Current { version: 13 }, floor(13), 13),
            Verdict::Known
        );
        assert_eq!(
            judge(
                SchemaState::Behind {
                    have: Some(10),
                    want: 13
                },
                None,
                13
            ),
            Verdict::Known
        );
        assert_eq!(
            judge(ahead, floor(13), 13),
            Verdict::Newer {
                schema: 15,
                floor: floor(13)
            }
        );
        let Verdict::Refuse(too_old) = judge(ahead, floor(14), 13) else {
            panic!("a floor above the binary refuses");
        };
        assert_eq!(
            too_old.to_string(),
            format!("this rollcall {RELEASE} (schema version 13) is older than the database allows: its schema is at version 15 and accepts writers from rollcall 0.3.0 (schema version 14) on; upgrade rollcall (nothing was written)")
        );
    }
}
