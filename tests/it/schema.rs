//! Binaries of different versions on one database: an older binary keeps collecting on a newer schema
//! whose floor allows it (a rollback, a rolling update), refuses with its own exit code when the floor is
//! above it, and a newer binary's `migrate` is safe while older replicas collect.

use crate::common::*;
use rollcall::store::{self, schema, MIGRATOR};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

/// The schema floor's exit code (README, main.rs).
const EXIT_SCHEMA_FLOOR: i32 = 4;

/// The next migration a newer rollcall would bring: additive, as every migration is.
fn newer_migration() -> Migration {
    Migration::new(
        schema::known_version() + 1,
        Cow::Borrowed("a newer rollcall's additive change"),
        MigrationType::Simple,
        Cow::Borrowed(
            "ALTER TABLE rollcall.zoom_host_report_users ADD COLUMN IF NOT EXISTS from_a_newer_rollcall text;
             CREATE TABLE IF NOT EXISTS rollcall.from_a_newer_rollcall (id bigint PRIMARY KEY);",
        ),
        false,
    )
}

/// What a newer binary's `migrate` runs: this binary's migrations and one more.
fn newer_migrator() -> Migrator {
    let mut migrations: Vec<Migration> = MIGRATOR.iter().cloned().collect();
    migrations.push(newer_migration());
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// The database as a newer rollcall left it: migrated one step past this binary, and `floor` set.
async fn newer_schema(db: &TestDb, floor: Option<(i64, &str)>) {
    store::migrate(&db.pool).await.expect("migrate");
    newer_migrator()
        .run(&db.pool)
        .await
        .expect("a newer rollcall migrates");
    if let Some((schema, release)) = floor {
        sqlx::query(
            "UPDATE rollcall.schema_floor
                SET min_writer_schema = $1, min_writer_release = $2, set_by_migration = $1",
        )
        .bind(schema)
        .bind(release)
        .execute(&db.pool)
        .await
        .expect("raise the floor");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_binary_collects_exactly_on_a_newer_schema_its_floor_allows() {
    let specs = vec![zoom_account("acme", 150)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 40);
    newer_schema(&app.db, None).await;
    let known = schema::known_version();

    let run = app.cli(&["collect"]).await;
    let out = run.output();
    assert_eq!(run.code, 0, "{out}");
    assert_mirror(&app.db.pool, &app.control(), &specs[0]).await;
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("is newer than this rollcall"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning:\n{out}");
    assert!(
        warnings[0].contains(&format!("(version {})", known + 1))
            && warnings[0].contains(&format!(
                "rollcall {} knows (version {known})",
                schema::RELEASE
            )),
        "the warning names both versions: {}",
        warnings[0]
    );
    // Every other command that touches the database runs on it too.
    for command in [&["migrate"][..], &["status"], &["coverage"]] {
        let run = app.cli(command).await;
        assert_eq!(run.code, 0, "{command:?}: {}", run.output());
    }
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&app.db.pool)
            .await
            .expect("applied migrations");
    assert_eq!(
        applied.last(),
        Some(&(known + 1)),
        "the newer migration stays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_floor_above_the_binary_refuses_every_database_command_and_writes_nothing() {
    let specs = vec![zoom_account("acme", 20)];
    let mut app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 40);
    app.config.http.listen = ([127, 0, 0, 1], free_port()).into();
    let known = schema::known_version();
    newer_schema(&app.db, Some((known + 1, "9.9.9"))).await;
    let before = dump(&app.db).await;

    let from = (today() - chrono::Duration::days(40)).to_string();
    let commands: [&[&str]; 6] = [
        &["collect"],
        &["backfill", "--from", &from],
        &["run"],
        &["migrate"],
        &["status"],
        &["coverage"],
    ];
    let expected = format!(
        "this rollcall {} (schema version {known}) is older than the database allows: its schema is at version {} and accepts writers from rollcall 9.9.9 (schema version {}) on",
        schema::RELEASE,
        known + 1,
        known + 1
    );
    for command in commands {
        let run = app.cli(command).await;
        let out = run.output();
        assert_eq!(run.code, EXIT_SCHEMA_FLOOR, "{command:?}: exit code\n{out}");
        assert!(out.contains(&expected), "{command:?}: the message\n{out}");
    }
    assert!(app.control().requests().is_empty(), "nothing was requested");
    // `check` writes nothing either, and says the same with the same code.
    let run = app.cli(&["check"]).await;
    assert_eq!(run.code, EXIT_SCHEMA_FLOOR, "check: {}", run.output());
    assert!(run.stdout.contains(&expected), "check: {}", run.stdout);
    assert_eq!(dump(&app.db).await, before, "nothing was written");

    // In-process the same: `migrate` is refused with the typed error.
    let err = store::migrate(&app.db.pool)
        .await
        .expect_err("the floor refuses");
    assert!(matches!(err, store::StoreError::TooOld(_)), "{err:?}");
}

/// Everything a command could have written: every row of every table of the schema, and the migrations.
async fn dump(db: &TestDb) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
          WHERE schemaname IN ('rollcall', 'public') ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tables");
    let mut out = Vec::new();
    for table in tables {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT t::text FROM {table} t ORDER BY 1"))
                .fetch_all(&db.pool)
                .await
                .expect("rows");
        out.push(format!("{table}: {rows:?}"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_that_start_together_migrate_once() {
    let db = TestDb::create().await;
    let url = secrecy::SecretString::from(db.url.clone());
    let replicas = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let pool = store::pool(&url, 2).expect("pool");
            store::migrate(&pool).await
        })
    });
    for outcome in futures_join(replicas).await {
        outcome
            .expect("the task ends")
            .expect("every replica migrates");
    }
    let (rows, versions): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT version) FROM _sqlx_migrations")
            .fetch_one(&db.pool)
            .await
            .expect("applied migrations");
    assert_eq!(rows, versions, "each migration applied once");
    assert_eq!(rows, MIGRATOR.iter().count() as i64);
}

async fn futures_join<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_binarys_migrate_while_older_replicas_collect_loses_nothing() {
    use rollcall_sandbox::{Endpoint, FaultKind, FaultRule};
    let specs = vec![zoom_account("acme", 400)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 20);
    let control = app.control();
    // Slow pages, so the migration lands while walks are committing pages.
    control.add_fault(FaultRule::on(
        Endpoint::ReportUsers,
        FaultKind::Delay { ms: 20 },
    ));
    let (report, migrated) = tokio::join!(app.try_collect(Selection::default()), async {
        let reached = control
            .wait_for_request(
                |r| r.endpoint == Endpoint::ReportUsers && r.seq >= 5,
                std::time::Duration::from_secs(60),
            )
            .await;
        assert!(reached.is_some(), "the older replica is collecting");
        newer_migrator().run(&app.db.pool).await
    });
    migrated.expect("the newer binary migrates while the older one collects");
    let report = report.expect("the older replica's run");
    assert!(report.all_complete(), "{report:?}");
    control.clear_faults();
    assert_mirror(&app.db.pool, &control, &specs[0]).await;
    // And its next run, on the schema the newer binary left, is exact too.
    let again = app.collect_all().await;
    assert!(again.all_complete(), "{again:?}");
    assert_mirror(&app.db.pool, &control, &specs[0]).await;
}
