//! The fake Zoom: S2S OAuth, the active/inactive host report and the daily usage report.

pub(crate) mod daily;
pub(crate) mod errors;
pub(crate) mod oauth;
pub(crate) mod reports;
pub(crate) mod users;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::config::ZoomAccountSpec;
use crate::lock;
use crate::page_token::TokenCodec;
use users::{MonthTotals, MonthView, Overrides, ZoomAccount};

pub use reports::ReportTruth;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportType {
    Active,
    Inactive,
}

impl ReportType {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportType::Active => "active",
            ReportType::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(ReportType::Active),
            "inactive" => Some(ReportType::Inactive),
            _ => None,
        }
    }
}

struct AccessToken {
    account: usize,
    expires_at: Instant,
    /// API requests that carried it.
    uses: u64,
}

pub(crate) enum TokenState {
    Valid(usize),
    Expired(usize),
}

/// Expired tokens are remembered this long, so a client gets "expired"
/// rather than "invalid" for them, as from Zoom.
const EXPIRED_TOKEN_MEMORY: Duration = Duration::from_secs(24 * 3600);

type MonthKey = (usize, NaiveDate);

pub(crate) struct ZoomState {
    pub seed: u64,
    pub accounts: Vec<Arc<ZoomAccount>>,
    pub access_token_ttl: Duration,
    pub page_token_ttl: Duration,
    pub page_tokens: TokenCodec,
    page_epoch: AtomicU64,
    access_tokens: Mutex<HashMap<String, AccessToken>>,
    /// A token is revoked (refused as invalid) once it has carried this many requests; 0: never.
    revoke_after_uses: AtomicU64,
    mints: Vec<AtomicU64>,
    overrides: Mutex<HashMap<MonthKey, Overrides>>,
    base_totals: Mutex<HashMap<MonthKey, Arc<OnceCell<MonthTotals>>>>,
}

impl ZoomState {
    pub fn new(
        seed: u64,
        specs: &[ZoomAccountSpec],
        access_token_ttl_secs: u64,
        page_token_ttl_secs: u64,
    ) -> Self {
        Self {
            seed,
            accounts: specs
                .iter()
                .map(|s| Arc::new(ZoomAccount::new(s.clone())))
                .collect(),
            access_token_ttl: Duration::from_secs(access_token_ttl_secs),
            page_token_ttl: Duration::from_secs(page_token_ttl_secs),
            page_tokens: TokenCodec::new(),
            page_epoch: AtomicU64::new(0),
            access_tokens: Mutex::default(),
            revoke_after_uses: AtomicU64::new(0),
            mints: specs.iter().map(|_| AtomicU64::new(0)).collect(),
            overrides: Mutex::default(),
            base_totals: Mutex::default(),
        }
    }

    pub fn account_index(&self, account_id: &str) -> Option<usize> {
        self.accounts
            .iter()
            .position(|a| a.spec.account_id == account_id)
    }

    pub fn account_by_client(&self, client_id: &str) -> Option<usize> {
        self.accounts
            .iter()
            .position(|a| a.spec.client_id == client_id)
    }

    pub fn mint_access_token(&self, account: usize) -> String {
        let random: String = (0..4)
            .map(|_| format!("{:016x}", crate::data::random_u64()))
            .collect();
        let token = format!("sbx.{}", &random[..40]);
        let now = Instant::now();
        let mut tokens = lock(&self.access_tokens);
        // Long-running benchmarks mint often; forget tokens long expired.
        if tokens.len() > 10_000 {
            tokens
                .retain(|_, t| now.saturating_duration_since(t.expires_at) < EXPIRED_TOKEN_MEMORY);
        }
        tokens.insert(
            token.clone(),
            AccessToken {
                account,
                expires_at: now + self.access_token_ttl,
                uses: 0,
            },
        );
        if let Some(m) = self.mints.get(account) {
            m.fetch_add(1, Ordering::Relaxed);
        }
        token
    }

    /// What a token is worth, without counting a use.
    pub fn access_token(&self, token: &str) -> Option<TokenState> {
        let tokens = lock(&self.access_tokens);
        self.token_state(tokens.get(token)?)
    }

    /// [`ZoomState::access_token`] for a request that carries it: counts the use first, so a token that
    /// is revoked after N uses serves exactly N requests.
    pub fn use_access_token(&self, token: &str) -> Option<TokenState> {
        let mut tokens = lock(&self.access_tokens);
        let t = tokens.get_mut(token)?;
        t.uses = t.uses.saturating_add(1);
        self.token_state(t)
    }

    /// A revoked token is unknown to Zoom from then on ("Invalid access token.").
    fn token_state(&self, t: &AccessToken) -> Option<TokenState> {
        let revoke_after = self.revoke_after_uses.load(Ordering::Relaxed);
        if revoke_after > 0 && t.uses > revoke_after {
            return None;
        }
        Some(if Instant::now() >= t.expires_at {
            TokenState::Expired(t.account)
        } else {
            TokenState::Valid(t.account)
        })
    }

    pub fn revoke_access_tokens_after(&self, uses: u64) {
        self.revoke_after_uses.store(uses, Ordering::Relaxed);
    }

    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for t in lock(&self.access_tokens).values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
    }

    pub fn token_mints(&self, account_id: &str) -> u64 {
        self.account_index(account_id)
            .and_then(|i| self.mints.get(i))
            .map_or(0, |m| m.load(Ordering::Relaxed))
    }

    pub fn page_epoch(&self) -> u64 {
        self.page_epoch.load(Ordering::SeqCst)
    }

    pub fn expire_page_tokens(&self) {
        self.page_epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn overrides(&self, account: usize, month: NaiveDate) -> Overrides {
        lock(&self.overrides)
            .get(&(account, month))
            .cloned()
            .unwrap_or_default()
    }

    /// Returns false when the user does not exist.
    pub fn set_user_type(
        &self,
        account: usize,
        month: NaiveDate,
        user: u64,
        t: ReportType,
    ) -> bool {
        let Some(acct) = self.accounts.get(account) else {
            return false;
        };
        if user >= acct.spec.users {
            return false;
        }
        let mut all = lock(&self.overrides);
        let entry = all.entry((account, month)).or_default();
        let mut map: BTreeMap<u64, ReportType> = (**entry).clone();
        map.insert(user, t);
        *entry = Arc::new(map);
        true
    }

    pub fn view(&self, account: usize, month: NaiveDate) -> Option<MonthView<'_>> {
        let acct = self.accounts.get(account)?;
        Some(MonthView::new(
            self.seed,
            acct,
            month,
            self.overrides(account, month),
        ))
    }

    /// Totals of the month without overrides, computed once per (account,
    /// month) off the async threads: for millions of users it is a long scan.
    pub async fn base_totals(
        &self,
        account: usize,
        month: NaiveDate,
    ) -> anyhow::Result<MonthTotals> {
        let cell = lock(&self.base_totals)
            .entry((account, month))
            .or_default()
            .clone();
        let acct = self
            .accounts
            .get(account)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no Zoom account #{account}"))?;
        let seed = self.seed;
        let totals = cell
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    MonthView::new(seed, &acct, month, Overrides::default()).base_totals()
                })
                .await
            })
            .await?;
        Ok(*totals)
    }
}
