//! A source with its type erased, so the collector runs every stream of every platform through one path.

use super::{Engine, Source, StreamOutcome};
use crate::store::StoreError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type SourceRun = Pin<Box<dyn Future<Output = Result<StreamOutcome, StoreError>> + Send>>;

/// One stream of one account, as an account's configuration builds it.
pub struct BuiltSource {
    account: String,
    stream: &'static str,
    after: Option<&'static str>,
    counts_with: Option<&'static str>,
    run: Box<dyn FnOnce(Arc<Engine>) -> SourceRun + Send>,
}

impl BuiltSource {
    pub fn new<S: Source>(source: Arc<S>) -> BuiltSource {
        BuiltSource {
            account: source.account().to_string(),
            stream: source.stream(),
            after: None,
            counts_with: None,
            run: Box::new(move |engine: Arc<Engine>| Box::pin(engine.run_source(source))),
        }
    }

    /// Runs only once `stream` of the same account (built before this one) has finished in this run: its
    /// walks plan this stream's windows, which are then walked in the same run.
    pub fn after(mut self, stream: &'static str) -> BuiltSource {
        self.after = Some(stream);
        self
    }

    /// `stream`'s due windows are part of this one's completeness (windows this stream plans), so a run
    /// of this stream alone still counts them.
    pub fn counts_with(mut self, stream: &'static str) -> BuiltSource {
        self.counts_with = Some(stream);
        self
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn stream(&self) -> &'static str {
        self.stream
    }

    pub fn runs_after(&self) -> Option<&'static str> {
        self.after
    }

    /// The streams whose due windows decide whether this one's run completed it.
    pub fn counted(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.stream).chain(self.counts_with)
    }

    /// Starts the stream on `engine`. The stream counts as unplanned from this call (see
    /// [`Engine::run_source`]), so call it only when the stream may start planning.
    pub fn run(self, engine: Arc<Engine>) -> SourceRun {
        (self.run)(engine)
    }
}
