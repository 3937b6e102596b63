//! The generic page walker (DESIGN §3): plan windows, claim them with leases, walk every page with a
//! checkpoint committed in the page's own transaction, verify, complete.

mod accounts;
mod built;
mod run;
mod source;
mod undo;
mod walker;

pub use built::{BuiltSource, SourceRun};
pub use run::RunContext;
pub use source::{Finished, PageMeta, Shrink, Source, Tx};
pub use undo::StoredRows;
pub use walker::{Concurrency, Engine, StreamOutcome};

/// Stored page tokens are trusted for 14 minutes: Zoom's live 15, and a token that dies in flight only costs
/// a restart, never a wrong row.
pub const PAGE_TOKEN_TRUST: chrono::Duration = chrono::Duration::minutes(14);

/// A window whose page token is refused is walked again from page 1, but not forever within one run.
pub const MAX_RESTARTS_PER_RUN: u32 = 3;

/// A walk that would finalize a window while shrinking what is stored is applied only by a walk of a run
/// that began at least this long after the first such walk (DESIGN principle 8). Two runs are two pieces
/// of evidence only if one short upstream glitch (a Zoom incident, a bad deploy, an index catching up)
/// cannot cover both: a manual `collect` started minutes after the daemon's run is not. 12 hours: the
/// default schedule is daily, so a normal deployment confirms on the next day's run, and a twice-daily
/// schedule still confirms within a day.
pub const CONFIRM_AFTER: chrono::Duration = chrono::Duration::hours(12);
