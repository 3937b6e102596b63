use super::undo::StoredRows;
use crate::http::ApiError;
use crate::store::windows::{PlannedWindow, Retirement, Window};
use crate::store::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::{Postgres, Transaction};
use std::future::Future;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub type Tx = Transaction<'static, Postgres>;

/// What the engine needs to know about a fetched page before it writes anything.
#[derive(Clone, Debug)]
pub struct PageMeta {
    /// `None` ends the walk: Zoom's `""`, `null` and a missing token all mean "last page". Anything else
    /// that is not a token was refused as a malformed page before it got here.
    pub next_page_token: Option<String>,
    /// The total the API announces for the whole window, when it gives one.
    pub expected_total: Option<i64>,
}

/// One stream of one account. The engine knows nothing of Zoom or Rocket.Chat: a source plans its windows,
/// fetches a page, checks it, writes it, and at the end verifies the walk and makes the window a mirror of it.
pub trait Source: Send + Sync + 'static {
    type Page: Send + Sync;
    /// A walk's request parameters (`from`, `to`, `page_size`, type): chosen at page 1, stored with the
    /// checkpoint, and sent unchanged with every page and after a resume, so a page token is never
    /// replayed against a different request.
    type Params: Serialize + DeserializeOwned + Send + Sync;

    /// The configured account name; every row and window carries it.
    fn account(&self) -> &str;

    /// The stream name, as in `collection_windows.stream` and `--stream`.
    fn stream(&self) -> &'static str;

    /// The windows that should exist today, reachable or not.
    fn plan(&self) -> Vec<PlannedWindow>;

    /// Stored windows that have fallen before the API's horizon are retired by this rule (every run,
    /// before any is claimed). `None`: nothing ages out.
    fn retirement(&self) -> Option<Retirement> {
        None
    }

    /// At most this many windows of the stream walked at once, whatever `collector.windows_in_flight`
    /// says: for an API whose budget concurrency cannot raise. `None`: no cap of the source's own.
    fn max_windows_in_flight(&self) -> Option<usize> {
        None
    }

    /// The parameters a walk of `window` that starts now will send with every page.
    fn params(&self, window: &Window) -> Self::Params;

    /// Whether a walk of `window` with `params` leaves it final: never to change upstream again. Decided
    /// from what `params` fixed at the walk's page 1 (its day), never from the day a resumed walk ends on:
    /// pages read before the window settled prove nothing about the settled window.
    fn is_final(&self, window: &Window, params: &Self::Params) -> bool;

    /// Whether the walk makes anything stored final, so that the engine's rule (DESIGN principle 8, see
    /// [`Source::shrinks`]) applies to it. The window's finality by default; a source whose rows become
    /// final one by one inside a window that is not (Rocket.Chat's days) says so here.
    fn finalizes(&self, window: &Window, params: &Self::Params) -> bool {
        self.is_final(window, params)
    }

    /// Whether every walk, not only one that makes the window final, needs a second run before it may
    /// remove or lower anything stored. For an API that announces no totals, so that no single walk
    /// proves a row gone (the Video SDK). `false` by default: walks of windows that are not about to
    /// become final mirror drift at once.
    fn confirms_every_shrink(&self) -> bool {
        false
    }

    /// The stored rows a walk of `window` writes, per table, with the values whose lowering counts as a
    /// shrink. Before a walk that makes the window final writes its first page, the engine sets these
    /// rows aside; it puts them back exactly if the walk is not applied (disputed, failed), so that a
    /// walk of several pages that turns out to shrink changes nothing, its earlier pages included. It
    /// also disputes a walk that lowers one of their `counts`. Empty (the default): nothing is set
    /// aside, which is right for a stream whose walk is one page (its transaction is the whole walk).
    fn stored_rows(&self, window: &Window) -> Vec<StoredRows> {
        let _ = window;
        Vec::new()
    }

    /// What applying the walk would take away from what is stored for the window: `Some` when its mirror
    /// step would remove, zero or lower anything stored (rows, per-day values, totals), with both counts;
    /// `None` when it only adds or keeps. Runs in the last page's transaction before that page is
    /// written, so the stored state is still the one the walk started from, plus this walk's earlier
    /// pages (tagged with `walk_id`). The engine decides what happens: a walk that shrinks and makes the
    /// window final (or any walk, with [`Source::confirms_every_shrink`]) changes nothing until a walk of
    /// a run at least 12 hours later agrees. Values that earlier pages lowered are found by the engine
    /// from [`Source::stored_rows`].
    fn shrinks(
        &self,
        tx: &mut Tx,
        window: &Window,
        walk_id: Uuid,
        last_page: &Self::Page,
    ) -> impl Future<Output = Result<Option<Shrink>, StoreError>> + Send;

    fn fetch(
        &self,
        window: &Window,
        params: &Self::Params,
        page_token: Option<&str>,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<Self::Page, ApiError>> + Send;

    /// `Some(reason)` when `error`, the answer to a page of `window`, says the API no longer has what the
    /// window asks for (not that the request was wrong): the window is recorded `unreachable` with that
    /// reason instead of failing, keeps its rows, and is not requested again. `None` (the default): it
    /// fails and is retried next run.
    fn unreachable(&self, window: &Window, error: &ApiError) -> Option<String> {
        let _ = (window, error);
        None
    }

    /// Checks a page against its request. `Err` names why the page cannot be trusted (a clamped range, a body
    /// that contradicts itself); nothing of it is written and the window fails.
    fn inspect(&self, window: &Window, page: &Self::Page) -> Result<PageMeta, String>;

    /// Upserts the page's rows in the page's transaction and returns how many it held.
    fn write_page(
        &self,
        tx: &mut Tx,
        window: &Window,
        walk_id: Uuid,
        page: &Self::Page,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Runs in the last page's transaction: verifies the whole walk (totals), deletes the window's rows this
    /// walk did not see, and writes any per-window summary. `Ok(Err(reason))` leaves the window failed.
    /// `is_final` is what [`Source::is_final`] said; when it is true (or the source confirms every
    /// shrink), the engine has already made sure the walk removes nothing or that a run at least 12 hours
    /// after the first shrinking walk agrees, so the mirror step may delete at once. The returned [`Finished::is_final`] is what the window
    /// becomes, which a source may only lower (a final window is never walked again, so it must not be
    /// left holding anything a later walk still has to settle).
    fn finish(
        &self,
        tx: &mut Tx,
        window: &Window,
        walk_id: Uuid,
        last_page: &Self::Page,
        is_final: bool,
    ) -> impl Future<Output = Result<Result<Finished, String>, StoreError>> + Send;
}

/// What a walk would take away from what is stored, in the source's unit (rows, or days for daily usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shrink {
    /// What is stored for the window now.
    pub stored: i64,
    /// What the walk saw.
    pub walked: i64,
}

/// What a verified walk leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// The distinct rows the walk saw (compared with the API's total where it announces one).
    pub rows: i64,
    /// Whether the window becomes final: never walked again.
    pub is_final: bool,
}
