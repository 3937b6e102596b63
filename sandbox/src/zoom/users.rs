//! The generated users of a Zoom account and their monthly host-report rows.
//!
//! A user is a pure function of (seed, account, index) and a report row of
//! (seed, account, month, index, type), so a month is never materialised:
//! pages are produced by scanning indexes from a cursor.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDate};
use serde::Serialize;

use crate::config::ZoomAccountSpec;
use crate::data::{hash, hash_str, last_of_month, mix64, month_key, pick};
use crate::zoom::ReportType;

/// Per-(account, month) overrides set by `Control::set_user_type`; shared
/// copy-on-write so a page scan works on a consistent snapshot.
pub(crate) type Overrides = Arc<BTreeMap<u64, ReportType>>;

// Distinct salts keep the attributes of one user independent of each other.
const SALT_ID: u64 = 1;
const SALT_ID2: u64 = 2;
const SALT_ACTIVE: u64 = 3;
const SALT_NAME: u64 = 4;
const SALT_PROFILE: u64 = 5;
const SALT_ATTRS: u64 = 6;
const SALT_METRICS: u64 = 7;
const SALT_LOGIN: u64 = 8;

/// (display form, ASCII form for the e-mail address)
const FIRST_NAMES: &[(&str, &str)] = &[
    ("Zoë", "zoe"),
    ("José", "jose"),
    ("Ana", "ana"),
    ("Søren", "soren"),
    ("Łukasz", "lukasz"),
    ("Mía", "mia"),
    ("Chloé", "chloe"),
    ("Björn", "bjorn"),
    ("Aiko", "aiko"),
    ("Liam", "liam"),
    ("Olivia", "olivia"),
    ("Noah", "noah"),
    ("Emma", "emma"),
    ("Mateo", "mateo"),
    ("Priya", "priya"),
    ("Wei", "wei"),
    ("Fatima", "fatima"),
    ("Jean-Luc", "jean-luc"),
    ("Mary Ann", "maryann"),
    ("D'Angelo", "dangelo"),
    ("李", "li"),
    ("Ngozi", "ngozi"),
    ("Oğuz", "oguz"),
    ("Anaïs", "anais"),
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "O'Brien",
    "García",
    "Müller",
    "Nguyễn",
    "Kowalski",
    "Dubois",
    "Jones, Jr.",
    "Okafor",
    "Tanaka",
    "Novák",
    "Haddad",
    "Johansson",
    "Silva",
    "Patel",
    "Kim",
    "Rossi",
    "Brown, PhD",
    "王",
    "de la Cruz",
];

/// Quotes inside names break naive CSV and SQL handling, so some users have one.
const NICKNAMES: &[&str] = &["\"Ace\"", "\"Bud\"", "\"Doc\"", "\"Mo\""];

const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Support",
    "Finance",
    "R&D",
    "Marketing, EMEA",
    "Operations",
    "Legal",
    "Recherche & Développement",
];

const CLIENT_VERSIONS: &[&str] = &[
    "5.17.11.34827(mac)",
    "6.0.2.40143(win)",
    "5.16.10.26186(linux)",
    "6.1.0.45231(ios)",
    "5.15.7.21404(android)",
    "4.4.1242.0623(win)",
];

const REGIONS: &[&str] = &["EMEA", "AMER", "APAC", "Île-de-France", "São Paulo"];

/// 2016-01-01T00:00:00Z: accounts' users were created after this.
const CREATED_EPOCH: i64 = 1_451_606_400;
const CREATED_SPAN_SECS: u64 = 6 * 365 * 86_400;

#[derive(Clone, Debug, Serialize)]
pub(crate) struct CustomAttribute {
    key: &'static str,
    name: &'static str,
    value: String,
}

/// Zoom serves `custom_attributes` both as one object and as an array.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum CustomAttributes {
    One(CustomAttribute),
    Many(Vec<CustomAttribute>),
}

/// One row of `users` in `GET /report/users`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub user_name: String,
    #[serde(rename = "type")]
    pub user_type: u8,
    pub dept: &'static str,
    pub meetings: u64,
    pub participants: u64,
    pub meeting_minutes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_attributes: Option<CustomAttributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_login_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_client_version: Option<&'static str>,
}

/// The sums a report carries next to its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub records: u64,
    pub meetings: u64,
    pub participants: u64,
    pub minutes: u64,
}

impl Totals {
    fn add(&mut self, m: Metrics) {
        self.records += 1;
        self.meetings += m.meetings;
        self.participants += m.participants;
        self.minutes += m.minutes;
    }

    fn sub(&mut self, m: Metrics) {
        self.records = self.records.saturating_sub(1);
        self.meetings = self.meetings.saturating_sub(m.meetings);
        self.participants = self.participants.saturating_sub(m.participants);
        self.minutes = self.minutes.saturating_sub(m.minutes);
    }
}

/// Totals of both report types of one month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MonthTotals {
    pub active: Totals,
    pub inactive: Totals,
}

impl MonthTotals {
    pub fn get(&self, t: ReportType) -> Totals {
        match t {
            ReportType::Active => self.active,
            ReportType::Inactive => self.inactive,
        }
    }

    fn get_mut(&mut self, t: ReportType) -> &mut Totals {
        match t {
            ReportType::Active => &mut self.active,
            ReportType::Inactive => &mut self.inactive,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Metrics {
    meetings: u64,
    participants: u64,
    minutes: u64,
}

/// A configured account plus the hashes derived from it once.
#[derive(Debug)]
pub(crate) struct ZoomAccount {
    pub spec: ZoomAccountSpec,
    key: u64,
    domain: String,
}

impl ZoomAccount {
    pub fn new(spec: ZoomAccountSpec) -> Self {
        let key = account_key(&spec.account_id);
        let domain = email_domain(&spec.account_id);
        Self { spec, key, domain }
    }
}

/// The hashing key of an account id, also for ids not configured (ids are
/// derivable without the account existing).
pub(crate) fn account_key(account_id: &str) -> u64 {
    hash_str(account_id)
}

/// The account id, lower-cased, as a DNS label.
fn email_domain(account_id: &str) -> String {
    let label: String = account_id
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{label}.example.com")
}

/// The users of one account as seen in one month.
pub(crate) struct MonthView<'a> {
    seed: u64,
    account: &'a ZoomAccount,
    month: NaiveDate,
    month_key: u64,
    overrides: Overrides,
}

impl<'a> MonthView<'a> {
    pub fn new(
        seed: u64,
        account: &'a ZoomAccount,
        month: NaiveDate,
        overrides: Overrides,
    ) -> Self {
        Self {
            seed,
            account,
            month,
            month_key: month_key(month),
            overrides,
        }
    }

    pub fn users(&self) -> u64 {
        self.account.spec.users
    }

    fn base_type(&self, i: u64) -> ReportType {
        let h = hash(&[self.seed, self.account.key, self.month_key, i, SALT_ACTIVE]);
        if h % 100 < u64::from(self.account.spec.active_percent) {
            ReportType::Active
        } else {
            ReportType::Inactive
        }
    }

    pub fn type_of(&self, i: u64) -> ReportType {
        match self.overrides.get(&i) {
            Some(&t) => t,
            None => self.base_type(i),
        }
    }

    fn metrics(&self, i: u64, t: ReportType) -> Metrics {
        if t == ReportType::Inactive {
            return Metrics::default();
        }
        let h = hash(&[self.seed, self.account.key, self.month_key, i, SALT_METRICS]);
        // Most hosts hold a few meetings a month, some hold many.
        let meetings = if h % 10 == 0 {
            20 + (h >> 8) % 60
        } else {
            1 + (h >> 8) % 12
        };
        let per_meeting_participants = 1 + (h >> 20) % 9;
        let per_meeting_minutes = 10 + (h >> 32) % 80;
        Metrics {
            meetings,
            participants: meetings * per_meeting_participants + (h >> 44) % 5,
            minutes: meetings * per_meeting_minutes,
        }
    }

    /// One scan over every user, ignoring overrides: the cost the totals cache
    /// exists to pay once per (account, month).
    pub fn base_totals(&self) -> MonthTotals {
        let mut totals = MonthTotals::default();
        for i in 0..self.users() {
            let t = self.base_type(i);
            totals.get_mut(t).add(self.metrics(i, t));
        }
        totals
    }

    /// Totals with this view's overrides applied to totals computed without any.
    pub fn apply_overrides(&self, mut totals: MonthTotals) -> MonthTotals {
        for (&i, &t) in self.overrides.iter() {
            if i >= self.users() {
                continue;
            }
            let base = self.base_type(i);
            if base != t {
                totals.get_mut(base).sub(self.metrics(i, base));
                totals.get_mut(t).add(self.metrics(i, t));
            }
        }
        totals
    }

    /// The rows of type `t` from index `cursor` on, at most `limit` of them, and
    /// the index after the last one returned (or `users()` if the scan ended).
    pub fn scan(&self, t: ReportType, cursor: u64, limit: usize) -> (Vec<UserRow>, u64) {
        let mut rows = Vec::with_capacity(limit.min(1024));
        let mut i = cursor;
        while i < self.users() && rows.len() < limit {
            if self.type_of(i) == t {
                rows.push(self.row(i, t));
            }
            i += 1;
        }
        (rows, i)
    }

    pub fn row(&self, i: u64, t: ReportType) -> UserRow {
        let profile = Profile::new(self.seed, self.account, i);
        let m = self.metrics(i, t);
        let login = hash(&[self.seed, self.account.key, self.month_key, i, SALT_LOGIN]);
        let days = u64::from(last_of_month(self.month).day());
        let month_start = self
            .month
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp())
            .unwrap_or(0);
        let last_login = month_start + (login % (days * 86_400)) as i64;
        UserRow {
            id: user_id(self.seed, self.account.key, i),
            email: format!("u{i}.{}@{}", profile.first.1, self.account.domain),
            user_name: profile.user_name(),
            user_type: profile.user_type,
            dept: profile.dept,
            meetings: m.meetings,
            participants: m.participants,
            meeting_minutes: m.minutes,
            custom_attributes: profile.custom_attributes(),
            create_time: profile.has_create_time.then(|| iso(profile.created_at)),
            last_login_time: profile.has_last_login.then(|| iso(last_login)),
            last_client_version: profile.client_version,
        }
    }
}

/// 22 characters like Zoom's ids. The first half is a bijection of the index,
/// so ids never collide within an account.
pub(crate) fn user_id(seed: u64, account_key: u64, i: u64) -> String {
    let a = mix64(i ^ hash(&[seed, account_key, SALT_ID]));
    let b = hash(&[seed, account_key, i, SALT_ID2]);
    let mut bytes = [0_u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn iso(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The attributes of a user that do not change from month to month.
struct Profile {
    first: (&'static str, &'static str),
    nickname: Option<&'static str>,
    last: &'static str,
    user_type: u8,
    dept: &'static str,
    attrs_hash: u64,
    has_create_time: bool,
    has_last_login: bool,
    created_at: i64,
    client_version: Option<&'static str>,
}

impl Profile {
    fn new(seed: u64, account: &ZoomAccount, i: u64) -> Self {
        let n = hash(&[seed, account.key, i, SALT_NAME]);
        let p = hash(&[seed, account.key, i, SALT_PROFILE]);
        let user_type = match p % 20 {
            0..=8 => 1,
            9..=17 => 2,
            _ => 4,
        };
        let dept = if (p >> 8) % 5 == 0 {
            ""
        } else {
            pick(DEPARTMENTS, p >> 16)
        };
        let presence = (p >> 24) % 20;
        Self {
            first: pick(FIRST_NAMES, n),
            nickname: ((n >> 16) % 20 == 0).then(|| pick(NICKNAMES, n >> 24)),
            last: pick(LAST_NAMES, n >> 32),
            user_type,
            dept,
            attrs_hash: hash(&[seed, account.key, i, SALT_ATTRS]),
            // The undocumented fields are present for most users only.
            has_create_time: presence != 0 && presence != 1,
            has_last_login: presence != 0 && presence != 2,
            created_at: CREATED_EPOCH + ((p >> 32) % CREATED_SPAN_SECS) as i64,
            client_version: (presence != 0 && presence != 3)
                .then(|| pick(CLIENT_VERSIONS, p >> 40)),
        }
    }

    fn user_name(&self) -> String {
        match self.nickname {
            Some(nick) => format!("{} {nick} {}", self.first.0, self.last),
            None => format!("{} {}", self.first.0, self.last),
        }
    }

    fn custom_attributes(&self) -> Option<CustomAttributes> {
        let h = self.attrs_hash;
        let attr = |k: u64| -> CustomAttribute {
            let v = mix64(h ^ k);
            match k % 3 {
                0 => CustomAttribute {
                    key: "cbf_cost_center",
                    name: "Cost center",
                    value: format!("CC-{:04}", v % 10_000),
                },
                1 => CustomAttribute {
                    key: "cbf_region",
                    name: "Region",
                    value: pick(REGIONS, v).to_owned(),
                },
                _ => CustomAttribute {
                    key: "cbf_employee_no",
                    name: "Employee number",
                    value: format!("{:06}", v % 1_000_000),
                },
            }
        };
        match h % 3 {
            0 => None,
            1 => Some(CustomAttributes::One(attr(h >> 8))),
            _ => {
                let count = 1 + (h >> 4) % 3;
                let start = (h >> 8) % 3;
                Some(CustomAttributes::Many(
                    (start..start + count).map(attr).collect(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(users: u64, active_percent: u8) -> ZoomAccount {
        ZoomAccount::new(ZoomAccountSpec {
            account_id: "Acme_Account".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            users,
            active_percent,
            rate_limits: None,
        })
    }

    fn month() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 6, 1).unwrap()
    }

    #[test]
    fn ids_are_22_chars_unique_and_stable() {
        let acct = account(10, 40);
        let ids: std::collections::HashSet<_> =
            (0..1000).map(|i| user_id(7, acct.key, i)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == 22));
        assert_eq!(user_id(7, acct.key, 3), user_id(7, acct.key, 3));
        assert_ne!(user_id(7, acct.key, 3), user_id(8, acct.key, 3));
    }

    #[test]
    fn rows_have_every_shape() {
        let acct = account(2000, 40);
        let view = MonthView::new(1, &acct, month(), Overrides::default());
        let rows: Vec<_> = (0..2000).map(|i| view.row(i, view.type_of(i))).collect();
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect();
        assert!(json.iter().any(|u| u["custom_attributes"].is_object()));
        assert!(json.iter().any(|u| u["custom_attributes"].is_array()));
        assert!(json.iter().any(|u| u.get("custom_attributes").is_none()));
        assert!(json.iter().any(|u| u.get("create_time").is_none()));
        assert!(json.iter().any(|u| u.get("last_client_version").is_none()));
        assert!(json.iter().any(|u| u["dept"] == ""));
        assert!(json.iter().any(|u| u["type"] == 4));
        assert!(rows.iter().any(|r| r.user_name.contains('"')));
        assert!(rows.iter().any(|r| r.user_name.contains(',')));
        assert!(rows.iter().any(|r| r.user_name.contains("Zoë")));
        assert!(rows[0].email.ends_with("@acme-account.example.com"));
        for r in &rows {
            if r.meetings == 0 {
                assert_eq!((r.participants, r.meeting_minutes), (0, 0));
            }
        }
        let active = (0..2000)
            .filter(|&i| view.type_of(i) == ReportType::Active)
            .count();
        assert!((700..900).contains(&active), "{active}");
    }

    #[test]
    fn totals_match_rows_with_overrides() {
        let acct = account(500, 30);
        let mut o = BTreeMap::new();
        o.insert(3, ReportType::Active);
        o.insert(4, ReportType::Inactive);
        o.insert(9_999, ReportType::Active); // beyond the account: ignored
        let view = MonthView::new(1, &acct, month(), Arc::new(o));
        let totals = view.apply_overrides(view.base_totals());
        for t in [ReportType::Active, ReportType::Inactive] {
            let (rows, end) = view.scan(t, 0, usize::MAX);
            assert_eq!(end, 500);
            let sum = rows.iter().fold(Totals::default(), |mut acc, r| {
                acc.add(Metrics {
                    meetings: r.meetings,
                    participants: r.participants,
                    minutes: r.meeting_minutes,
                });
                acc
            });
            assert_eq!(sum, totals.get(t));
        }
        assert_eq!(view.type_of(3), ReportType::Active);
        assert_eq!(view.type_of(4), ReportType::Inactive);
    }
}
