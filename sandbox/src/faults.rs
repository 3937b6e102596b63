//! Scripted faults: rules that replace or distort the answer to matching requests.

use std::sync::Mutex;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::data::{hash, unit};
use crate::lock;
use crate::requests::{Endpoint, RequestMeta};
use crate::zoom::ReportType;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultRule {
    /// `None` matches every endpoint; likewise for the other filters.
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub report_type: Option<ReportType>,
    /// Only requests naming this Video SDK session (its users), as the sandbox decoded the id.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The report page: 1 = a request without `next_page_token`, n = the nth page of a walk.
    #[serde(default)]
    pub page: Option<u32>,
    /// How many times the rule fires; `None` = until cleared.
    #[serde(default)]
    pub times: Option<u32>,
    /// Chance that a matching request fires the rule, drawn from the seed, so a
    /// run with the same seed and request order fails the same requests.
    #[serde(default)]
    pub probability: Option<f64>,
    pub kind: FaultKind,
}

impl FaultRule {
    /// `kind` on every request to `endpoint`, until cleared; narrow it with the builder methods
    /// (`FaultRule::on(endpoint, kind).page(2).times(1)`).
    pub fn on(endpoint: Endpoint, kind: FaultKind) -> FaultRule {
        FaultRule {
            endpoint: Some(endpoint),
            ..FaultRule::anywhere(kind)
        }
    }

    /// `kind` on every request to any endpoint, until cleared.
    pub fn anywhere(kind: FaultKind) -> FaultRule {
        FaultRule {
            endpoint: None,
            account_id: None,
            report_type: None,
            session_id: None,
            page: None,
            times: None,
            probability: None,
            kind,
        }
    }

    /// Only requests of this account: a Zoom account id, a Video SDK API key or a Rocket.Chat workspace
    /// name, whichever the endpoint is keyed by.
    pub fn account(mut self, account_id: impl Into<String>) -> FaultRule {
        self.account_id = Some(account_id.into());
        self
    }

    /// Only host-report requests of this type.
    pub fn report_type(mut self, report_type: ReportType) -> FaultRule {
        self.report_type = Some(report_type);
        self
    }

    /// Only requests about this Video SDK session (`/videosdk/sessions/{id}/users`).
    pub fn session(mut self, session_id: impl Into<String>) -> FaultRule {
        self.session_id = Some(session_id.into());
        self
    }

    /// Only the `page`th page of a walk (1 = a request without `next_page_token`).
    pub fn page(mut self, page: u32) -> FaultRule {
        self.page = Some(page);
        self
    }

    /// Fire `times` times, then never again.
    pub fn times(mut self, times: u32) -> FaultRule {
        self.times = Some(times);
        self
    }

    /// Fire on this share of the matching requests, drawn from the sandbox's seed.
    pub fn probability(mut self, probability: f64) -> FaultRule {
        self.probability = Some(probability);
        self
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// An arbitrary response (`application/json` content type).
    Status { status: u16, body: String },
    /// 500 `{"code":500,"message":"Internal server error"}`.
    ServerError,
    /// 429 with the per-second body; Zoom's rate-limit headers only when `headers`.
    RateLimitQps { headers: bool },
    /// 429 with the per-second body, Zoom's headers and a `Retry-After` `seconds` ahead (an absolute
    /// ISO-8601 time): a long server-ordered wait, for shutdown-during-wait tests.
    RateLimitQpsRetryAfter { seconds: u64 },
    /// 429 with the per-second body, Zoom's headers and `Retry-After` exactly `value`, which need not
    /// be a time at all (`99999999999999`, `-5`, `soon`): a hostile or broken server's header.
    RateLimitQpsRetryAfterText { value: String },
    /// 429 with the daily body and `X-RateLimit-Type: Daily-limit`; `Retry-After`
    /// (an absolute ISO-8601 time, as Zoom sends it) unless `None`.
    RateLimitDaily {
        #[serde(default)]
        retry_after: Option<chrono::DateTime<Utc>>,
    },
    /// The real body cut in half, with the Content-Length of the cut body.
    TruncatedBody,
    /// 200 with a body that is not JSON.
    MalformedJson,
    /// 400 `{"code":300,"message":"The next page token is invalid or expired."}`.
    ExpiredPageToken,
    /// The real page, with the response's `from` moved `days` later, as Zoom
    /// does when it silently clamps a range.
    ClampFrom { days: u32 },
    /// Answers normally after the delay.
    Delay { ms: u64 },
    /// Never answers (until the client goes away or the server shuts down).
    Hang,
    /// Closes the connection without a response.
    DropConnection,
    /// The real page with hostile rows: U+0000 in names and in a key, a 100,000-character string, numbers
    /// served as strings, `null` where an object was documented, and unknown nested fields.
    HostileData,
    /// The real 200 page, edited: each `set` entry writes a value at a JSON pointer (`/users`,
    /// `/next_page_token`, `/sessions/0/id`; a missing last key is added), each `remove` pointer is
    /// deleted. A reply whose envelope is intact but whose content proves nothing.
    Patch {
        #[serde(default)]
        set: Vec<(String, serde_json::Value)>,
        #[serde(default)]
        remove: Vec<String>,
    },
    /// The real 200 page with its `next_page_token` replaced by the token the request sent: a server
    /// that hands the same page back forever. A request without a token is answered normally.
    EchoPageToken,
    /// The real page (a JSON object) with a `padding` string field added so the body is at least `bytes`
    /// long: still valid JSON, only too large.
    OversizedBody { bytes: usize },
    /// The real answer with its `expires_in` replaced by this value (any JSON: `0`, `1e30`, `"3600"`), for
    /// the OAuth token endpoint. The token itself still lives as long as the sandbox says.
    ExpiresIn { expires_in: serde_json::Value },
}

struct ActiveRule {
    rule: FaultRule,
    /// Stable identity of the rule for the probability draw.
    id: u64,
    /// Matching requests seen so far, the other input of the draw.
    draws: u64,
}

pub(crate) struct FaultSet {
    seed: u64,
    inner: Mutex<FaultInner>,
}

#[derive(Default)]
struct FaultInner {
    next_id: u64,
    rules: Vec<ActiveRule>,
}

impl FaultSet {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            inner: Mutex::default(),
        }
    }

    pub fn add(&self, rule: FaultRule) {
        let mut inner = lock(&self.inner);
        let id = inner.next_id;
        inner.next_id += 1;
        inner.rules.push(ActiveRule { rule, id, draws: 0 });
    }

    pub fn clear(&self) {
        lock(&self.inner).rules.clear();
    }

    pub fn list(&self) -> Vec<FaultRule> {
        lock(&self.inner)
            .rules
            .iter()
            .map(|r| r.rule.clone())
            .collect()
    }

    /// The fault to apply to this request, if any: the first matching rule with
    /// `times` left (and whose draw succeeds) fires and uses up one of its times.
    pub fn pick(&self, meta: &RequestMeta) -> Option<FaultKind> {
        let mut inner = lock(&self.inner);
        for active in inner.rules.iter_mut() {
            let rule = &active.rule;
            if rule.times == Some(0) || !matches(rule, meta) {
                continue;
            }
            if let Some(p) = rule.probability {
                let draw = unit(hash(&[self.seed, active.id, active.draws, 0xfa17]));
                active.draws += 1;
                if draw >= p {
                    continue;
                }
            }
            if let Some(times) = active.rule.times.as_mut() {
                *times -= 1;
            }
            return Some(active.rule.kind.clone());
        }
        None
    }
}

fn matches(rule: &FaultRule, meta: &RequestMeta) -> bool {
    fn ok<T: PartialEq>(want: &Option<T>, got: &Option<T>) -> bool {
        want.is_none() || want == got
    }
    rule.endpoint.is_none_or(|e| e == meta.endpoint)
        && ok(&rule.account_id, &meta.account_id)
        && ok(&rule.report_type, &meta.report_type)
        && ok(&rule.session_id, &meta.session_id)
        && ok(&rule.page, &meta.page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(page: u32) -> RequestMeta {
        RequestMeta {
            endpoint: Endpoint::ReportUsers,
            account_id: Some("a".into()),
            report_type: Some(ReportType::Active),
            query: BTreeMap::new(),
            page: Some(page),
            rate_account: None,
            session_id: None,
        }
    }

    fn rule(page: Option<u32>, times: Option<u32>, probability: Option<f64>) -> FaultRule {
        FaultRule {
            endpoint: Some(Endpoint::ReportUsers),
            account_id: None,
            report_type: None,
            session_id: None,
            page,
            times,
            probability,
            kind: FaultKind::ServerError,
        }
    }

    #[test]
    fn times_and_page_are_honoured() {
        let set = FaultSet::new(0);
        set.add(rule(Some(2), Some(2), None));
        assert!(set.pick(&meta(1)).is_none());
        assert!(set.pick(&meta(2)).is_some());
        assert!(set.pick(&meta(2)).is_some());
        assert!(set.pick(&meta(2)).is_none());
    }

    #[test]
    fn probability_is_deterministic() {
        let run = || {
            let set = FaultSet::new(42);
            set.add(rule(None, None, Some(0.3)));
            (0..200)
                .map(|_| set.pick(&meta(1)).is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let fired = a.iter().filter(|&&f| f).count();
        assert!((30..90).contains(&fired), "{fired}");
    }

    #[test]
    fn kinds_round_trip_as_json() {
        let json = r#"{"endpoint":"report_users","page":3,"times":1,
            "kind":{"type":"rate_limit_daily","retry_after":"2024-06-02T00:00:00Z"}}"#;
        let rule: FaultRule = serde_json::from_str(json).unwrap();
        assert!(matches!(
            rule.kind,
            FaultKind::RateLimitDaily {
                retry_after: Some(_)
            }
        ));
        let rule: FaultRule =
            serde_json::from_str(r#"{"kind":{"type":"rate_limit_daily"}}"#).unwrap();
        assert!(matches!(
            rule.kind,
            FaultKind::RateLimitDaily { retry_after: None }
        ));
        let rule: FaultRule = serde_json::from_str(r#"{"kind":{"type":"hang"}}"#).unwrap();
        assert!(matches!(rule.kind, FaultKind::Hang));
        let rule: FaultRule =
            serde_json::from_str(r#"{"kind":{"type":"oversized_body","bytes":3000000}}"#).unwrap();
        assert!(matches!(
            rule.kind,
            FaultKind::OversizedBody { bytes: 3_000_000 }
        ));
        let rule: FaultRule =
            serde_json::from_str(r#"{"kind":{"type":"expires_in","expires_in":1e30}}"#).unwrap();
        assert!(matches!(rule.kind, FaultKind::ExpiresIn { .. }));
    }
}
