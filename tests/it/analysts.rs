//! The analyst views and the README's "Questions analysts ask": every query of that section, run as
//! printed, against a database collected from the sandbox, compared with figures computed here from the
//! sandbox's ground truth (never from the database); and the views' edge cases on fixture rows.

use crate::common::*;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use rollcall_sandbox::{Control, ReportType, RocketChatWorkspaceSpec, SandboxConfig};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The SQL block under the README heading that contains `question`, without its final `;`.
fn readme_sql(question: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let mut lines = readme.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with("####") && l.contains(question))
        .unwrap_or_else(|| panic!("README has a heading with {question:?}"));
    lines
        .by_ref()
        .find(|l| l.trim() == "```sql")
        .expect("a sql block follows");
    let sql: Vec<&str> = lines.take_while(|l| l.trim() != "```").collect();
    sql.join("\n").trim().trim_end_matches(';').to_string()
}

/// The SQL block that follows the README paragraph starting with `intro` (the "Tables" section's examples,
/// which have no heading of their own), without its final `;`.
fn readme_sql_after(intro: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let mut lines = readme.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with(intro))
        .unwrap_or_else(|| panic!("README has a paragraph starting {intro:?}"));
    lines
        .by_ref()
        .find(|l| l.trim() == "```sql")
        .expect("a sql block follows");
    let sql: Vec<&str> = lines.take_while(|l| l.trim() != "```").collect();
    sql.join("\n").trim().trim_end_matches(';').to_string()
}

/// Half away from zero, as PostgreSQL's `round(numeric, n)`, for a non-negative `num / den` scaled by
/// `scale`: the value `round(num / den, digits)` * 10^digits as an integer.
fn rounded(num: i64, den: i64, scale: i64) -> i64 {
    (2 * num * scale + den) / (2 * den)
}

/// (month, active, new, retained, returning, churned)
type Churn = (
    NaiveDate,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn months_back(month: NaiveDate, n: u32) -> NaiveDate {
    month.checked_sub_months(Months::new(n)).expect("date math")
}

fn ts(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

struct ZoomTruth {
    months: Vec<NaiveDate>,
    /// month → (active user ids, inactive user ids)
    lists: BTreeMap<NaiveDate, (BTreeSet<String>, BTreeSet<String>)>,
    /// user id → (user_type, email, user_name) as served in the latest month
    users: BTreeMap<String, (i64, String, String)>,
}

/// The reachable months that are final today: ended more than `settle_days` (2, the default) ago, as
/// src/sources/zoom/months.rs decides. Only these are walked for the last time, so only these do the Zoom
/// views count; the current month (and, on the 1st and 2nd, the month before) is left out.
fn final_months(today: NaiveDate) -> Vec<NaiveDate> {
    reachable_months()
        .into_iter()
        .filter(|m| {
            let last_day =
                m.checked_add_months(Months::new(1)).expect("date math") - Duration::days(1);
            (today - last_day).num_days() > 2
        })
        .collect()
}

fn zoom_truth(control: &Control, account_id: &str, months: Vec<NaiveDate>) -> ZoomTruth {
    let mut lists = BTreeMap::new();
    let mut users = BTreeMap::new();
    for &month in &months {
        let mut sets = (BTreeSet::new(), BTreeSet::new());
        for t in [ReportType::Active, ReportType::Inactive] {
            for u in control.report_truth(account_id, month, t).users {
                let id = u["id"].as_str().expect("id").to_string();
                users.insert(
                    id.clone(),
                    (
                        u["type"].as_i64().expect("type"),
                        u["email"].as_str().unwrap_or_default().to_string(),
                        u["user_name"].as_str().unwrap_or_default().to_string(),
                    ),
                );
                match t {
                    ReportType::Active => sets.0.insert(id),
                    ReportType::Inactive => sets.1.insert(id),
                };
            }
        }
        lists.insert(month, sets);
    }
    ZoomTruth {
        months,
        lists,
        users,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_readme_question_matches_the_sandbox_truth() {
    let zoom = vec![zoom_account("acme", 80)];
    let sdk = vec![sdk_account("studio", 40)];
    let chat = RocketChatWorkspaceSpec::new("chat", "UTC");
    let sandbox = rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        zoom: zoom.clone(),
        videosdk: sdk.clone(),
        rocketchat: vec![chat.clone()],
        ..sandbox_defaults()
    })
    .await
    .expect("start sandbox");
    let control = sandbox.control();
    let months = reachable_months();
    let today = today();
    // The Zoom views count complete and final months only: never the current month, whose windows are
    // complete after this collection although Zoom was asked only up to today.
    let finals = final_months(today);
    assert!(finals.len() >= 4, "final months: {finals:?}");
    assert!(!finals.contains(months.last().expect("a reachable month")));
    let latest = *finals.last().expect("a final month");

    // Long inactivity is rare in random months: give three licensed users a known history, so the reclaim
    // streaks are long and varied (never active; active only in the oldest month; active three months ago).
    let acme = &zoom[0].account_id;
    let licensed: Vec<u64> = {
        let types = zoom_truth(&control, acme, months.clone()).users;
        (0..80)
            .filter(|&i| types.get(&control.user_id(acme, i)).map(|u| u.0) == Some(2))
            .take(3)
            .collect()
    };
    assert_eq!(licensed.len(), 3, "the seeded account has licensed users");
    // The current month lists the three as active: were it counted, none would be a candidate.
    for (n, &month) in months.iter().enumerate() {
        let current = !finals.contains(&month);
        let t = if current {
            ReportType::Active
        } else {
            ReportType::Inactive
        };
        control.set_user_type(acme, month, licensed[0], t);
        let t = if n == 0 || current {
            ReportType::Active
        } else {
            ReportType::Inactive
        };
        control.set_user_type(acme, month, licensed[1], t);
        let t = if month == months_back(latest, 3) || current {
            ReportType::Active
        } else {
            ReportType::Inactive
        };
        control.set_user_type(acme, month, licensed[2], t);
    }

    let app = TestApp::new(sandbox)
        .await
        .zoom(&zoom, 300)
        .videosdk(&sdk, 300)
        .rocketchat(&[chat]);
    let db = &app.db;
    let collected = app.collect_all().await;
    assert!(collected.all_complete(), "collect: {collected:?}");

    let truth = zoom_truth(&control, acme, finals.clone());
    let account = account_name(&zoom[0]);

    // -- How well are our Zoom licences used?
    let licensed_in = |ids: &BTreeSet<String>| {
        ids.iter()
            .filter(|id| truth.users.get(*id).map(|u| u.0) == Some(2))
            .count() as i64
    };
    let want: Vec<(NaiveDate, i64, i64, Option<i64>)> = truth
        .months
        .iter()
        .map(|m| {
            let (a, i) = &truth.lists[m];
            let (a, i) = (licensed_in(a), licensed_in(i));
            (*m, a, i, (a + i > 0).then(|| rounded(a, a + i, 1000)))
        })
        .collect();
    let got: Vec<(NaiveDate, i64, i64, Option<i64>)> = sqlx::query_as(&format!(
        "SELECT month, licensed_active, licensed_inactive, (utilization_pct * 10)::bigint
           FROM ({}) q WHERE account = $1 ORDER BY month",
        readme_sql("licences used")
    ))
    .bind(&account)
    .fetch_all(&db.pool)
    .await
    .expect("utilization query");
    assert_eq!(got, want, "licence utilization per month");
    let exact: Vec<(i64, i64, Option<f64>)> = sqlx::query_as(
        "SELECT licensed_active, licensed_inactive, utilization::float8
           FROM rollcall.zoom_license_utilization WHERE account = $1 ORDER BY month",
    )
    .bind(&account)
    .fetch_all(&db.pool)
    .await
    .expect("utilization view");
    for (a, i, u) in exact {
        let expected = a as f64 / (a + i) as f64;
        assert!(
            u.is_some_and(|u| (u - expected).abs() < 1e-12),
            "{a}/{i}: {u:?}"
        );
    }

    // -- Whom should we reclaim a licence from?
    let mut want_reclaim: Vec<(String, String, i32, Option<NaiveDate>)> = Vec::new();
    for id in &truth.lists[&latest].1 {
        let (user_type, email, _) = &truth.users[id];
        if *user_type != 2 {
            continue;
        }
        let streak = truth
            .months
            .iter()
            .rev()
            .take_while(|m| truth.lists[*m].1.contains(id))
            .count() as i32;
        let last_active = truth
            .months
            .iter()
            .rev()
            .find(|m| truth.lists[*m].0.contains(id))
            .copied();
        want_reclaim.push((id.clone(), email.clone(), streak, last_active));
    }
    want_reclaim.sort();
    let mut all: Vec<(String, String, i32, Option<NaiveDate>)> = sqlx::query_as(
        "SELECT user_id, email, inactive_months, last_active_month
           FROM rollcall.zoom_reclaim_candidates WHERE account = $1",
    )
    .bind(&account)
    .fetch_all(&db.pool)
    .await
    .expect("reclaim view");
    all.sort();
    assert_eq!(all, want_reclaim, "every reclaim candidate");
    let n = finals.len() as i32;
    for (index, streak, last) in [
        (licensed[0], n, None),
        (licensed[1], n - 1, Some(finals[0])),
        (licensed[2], 3, Some(months_back(latest, 3))),
    ] {
        let id = control.user_id(acme, index);
        assert!(
            all.iter()
                .any(|r| r.0 == id && r.2 == streak && r.3 == last),
            "user {index}: {streak} months inactive, last active {last:?}"
        );
    }
    let mut got: Vec<(String, String, i32, Option<NaiveDate>)> = sqlx::query_as(&format!(
        "SELECT user_id, email, inactive_months, last_active_month FROM ({}) q WHERE account = $1",
        readme_sql("reclaim a licence")
    ))
    .bind(&account)
    .fetch_all(&db.pool)
    .await
    .expect("reclaim query");
    got.sort();
    let wanted: Vec<_> = want_reclaim.iter().filter(|r| r.2 >= 3).cloned().collect();
    assert!(!wanted.is_empty());
    assert_eq!(got, wanted, "the README's candidates: three months or more");

    // -- Are hosts coming or going?
    let mut want_churn: Vec<Churn> = Vec::new();
    for (i, m) in truth.months.iter().enumerate() {
        let now = &truth.lists[m].0;
        if i == 0 {
            // The month before is past the horizon: never complete, so nothing to compare with.
            want_churn.push((*m, now.len() as i64, None, None, None, None));
            continue;
        }
        let last = &truth.lists[&truth.months[i - 1]].0;
        let earlier: BTreeSet<&String> = truth.months[..i - 1]
            .iter()
            .flat_map(|e| truth.lists[e].0.iter())
            .collect();
        let count = |f: &dyn Fn(&String) -> bool| Some(now.iter().filter(|u| f(u)).count() as i64);
        want_churn.push((
            *m,
            now.len() as i64,
            count(&|u| !last.contains(u) && !earlier.contains(u)),
            count(&|u| last.contains(u)),
            count(&|u| !last.contains(u) && earlier.contains(u)),
            Some(last.iter().filter(|u| !now.contains(*u)).count() as i64),
        ));
    }
    let got: Vec<Churn> = sqlx::query_as(&format!(
        "SELECT month, active_hosts, new_hosts, retained_hosts, returning_hosts, churned_hosts
           FROM ({}) q WHERE account = $1 ORDER BY month",
        readme_sql("hosts coming or going")
    ))
    .bind(&account)
    .fetch_all(&db.pool)
    .await
    .expect("churn query");
    assert_eq!(got, want_churn, "host churn month over month");

    // -- How busy is the Video SDK, day by day?
    let studio = &sdk[0];
    let mut days: BTreeMap<NaiveDate, (i64, i64, i64)> = BTreeMap::new();
    for (month, from) in day_months() {
        for session in control.sdk_sessions(&studio.api_key, month) {
            let start = ts(&session["start_time"]).expect("start_time");
            if start.date_naive() < from {
                continue;
            }
            let day = days.entry(start.date_naive()).or_default();
            day.0 += 1;
            if session.get("end_time").is_none() {
                continue;
            }
            let id = session["id"].as_str().expect("id");
            for join in control.sdk_session_users(&studio.api_key, id) {
                day.1 += 1;
                if let (Some(j), Some(l)) = (ts(&join["join_time"]), ts(&join["leave_time"])) {
                    day.2 += (l - j).num_seconds();
                }
            }
        }
    }
    assert!(days.len() > 20 && days.values().any(|d| d.1 > d.0));
    let sdk_name = sdk_name(studio);
    let got: Vec<(NaiveDate, i64, i64, f64)> = sqlx::query_as(
        "SELECT day, sessions, joins, user_minutes::float8 FROM rollcall.zoom_sdk_daily
          WHERE account = $1 ORDER BY day",
    )
    .bind(&sdk_name)
    .fetch_all(&db.pool)
    .await
    .expect("sdk daily view");
    assert_eq!(
        got.iter().map(|r| (r.0, r.1, r.2)).collect::<Vec<_>>(),
        days.iter().map(|(d, v)| (*d, v.0, v.1)).collect::<Vec<_>>(),
        "sessions and joins per day"
    );
    for (day, _, _, minutes) in &got {
        let secs = days[day].2;
        assert!(
            (minutes - secs as f64 / 60.0).abs() < 1e-9,
            "{day}: {minutes} minutes, truth {secs} s"
        );
    }
    // The README's query counts 30 days back from PostgreSQL's own date.
    let sql_today = database_today(&db.pool).await;
    let want: Vec<(NaiveDate, i64, i64, i64)> = days
        .iter()
        .filter(|(d, _)| **d >= sql_today - Duration::days(30))
        .map(|(d, v)| (*d, v.0, v.1, rounded(v.2, 60, 10)))
        .collect();
    let got: Vec<(NaiveDate, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT day, sessions, joins, (user_minutes * 10)::bigint FROM ({}) q WHERE account = $1 ORDER BY day",
        readme_sql("Video SDK, day by day")
    ))
    .bind(&sdk_name)
    .fetch_all(&db.pool)
    .await
    .expect("sdk daily query");
    assert!(!want.is_empty());
    assert_eq!(got, want, "the README's last 30 days");

    // -- How sticky is chat?
    let rc_today = control.rc_today("chat").expect("workspace");
    let mut rc: BTreeMap<NaiveDate, (i64, i64, BTreeSet<String>)> = BTreeMap::new();
    for back in 1..=44 {
        let day = rc_today - Duration::days(back);
        let users = control.rc_truth("chat", day);
        let month = rc.entry(day.with_day(1).expect("day 1")).or_default();
        month.0 += users.len() as i64;
        month.1 += 1;
        month.2.extend(users);
    }
    let want: Vec<(NaiveDate, i64, i64, Option<i64>)> = rc
        .iter()
        .map(|(m, (sum, days, users))| {
            let mau = users.len() as i64;
            (
                *m,
                rounded(*sum, *days, 10),
                mau,
                (mau > 0).then(|| rounded(*sum, days * mau, 1000)),
            )
        })
        .collect();
    let got: Vec<(NaiveDate, i64, i64, Option<i64>)> = sqlx::query_as(&format!(
        "SELECT month, (avg_dau * 10)::bigint, mau, (dau_mau * 1000)::bigint FROM ({}) q
          WHERE account = 'chat' ORDER BY month",
        readme_sql("sticky")
    ))
    .fetch_all(&db.pool)
    .await
    .expect("stickiness query");
    assert_eq!(got, want, "DAU/MAU per month");

    // -- Do we hold complete history for last month?
    let last_month = months_back(today.with_day(1).expect("day 1"), 1);
    let last_day = today.with_day(1).expect("day 1") - Duration::days(1);
    let zoom_final = (today - last_day).num_days() > 2;
    let rc_complete = last_month >= rc_today - Duration::days(44);
    let rc_final = (rc_today - last_day).num_days() > 4;
    let want = vec![
        (
            account.clone(),
            "zoom_host_report".to_string(),
            true,
            zoom_final,
        ),
        (
            "chat".into(),
            "rc_active_users".into(),
            rc_complete,
            rc_final,
        ),
        (
            sdk_name.clone(),
            "zoom_sdk_sessions".into(),
            true,
            zoom_final,
        ),
    ];
    let sql = readme_sql("complete history").replace(
        "DATE '2026-10-01'",
        &format!("DATE '{}'", last_month.format("%Y-%m-%d")),
    );
    let mut got: Vec<(String, String, bool, bool)> = sqlx::query_as(&sql)
        .fetch_all(&db.pool)
        .await
        .expect("complete history query");
    got.sort();
    let mut want = want;
    want.sort();
    assert_eq!(got, want, "complete history of {last_month}");

    // The same collection through `rollcall coverage`: every month Zoom serves is held, the months before
    // it were never held, and the chat month that began before the server's retention is partly held.
    let out = app.cli(&["coverage", "--months", "9", "--json"]).await;
    assert_eq!(out.code, 0, "coverage: {}", out.output());
    let json: Value = serde_json::from_str(&out.stdout).expect("coverage JSON");
    let states = |account: &str| -> BTreeMap<NaiveDate, String> {
        json["accounts"]
            .as_array()
            .expect("accounts")
            .iter()
            .filter(|a| a["account"] == account)
            .flat_map(|a| a["streams"][0]["months"].as_array().expect("months").iter())
            .map(|c| {
                let month = NaiveDate::parse_from_str(
                    &format!("{}-01", c["month"].as_str().expect("month")),
                    "%Y-%m-%d",
                )
                .expect("YYYY-MM");
                (month, c["state"].as_str().expect("state").to_string())
            })
            .collect()
    };
    for name in [&account, &sdk_name] {
        let cells = states(name);
        assert_eq!(cells.len(), 9, "{name}: {cells:?}");
        for (month, state) in &cells {
            // Video SDK sessions walk the month straddling the horizon from the horizon day; host
            // reports keep whole months.
            let straddling = day_months()
                .first()
                .is_some_and(|(m, from)| m == month && from != month);
            let want: &[&str] = if months.contains(month) {
                &["final", "complete"]
            } else if straddling && name == &sdk_name {
                &["from_horizon"]
            } else {
                &["lost", "none"]
            };
            assert!(want.contains(&state.as_str()), "{name} {month}: {state}");
        }
    }
    let oldest = rc_today - Duration::days(44);
    for (month, state) in states("chat") {
        let end = month.checked_add_months(Months::new(1)).expect("date math") - Duration::days(1);
        // Whether a past month is final depends on how its last window straddles the finality edge.
        let want: &[&str] = if end < oldest {
            &["none"]
        } else if month < oldest && end < today {
            &["partial"]
        } else if end < rc_today - Duration::days(4) {
            &["final", "complete"]
        } else {
            &["complete"]
        };
        assert!(want.contains(&state.as_str()), "chat {month}: {state}");
    }
}

async fn migrated_db() -> TestDb {
    let db = TestDb::create().await;
    let migrated = rollcall::store::migrate(&db.pool).await;
    assert!(migrated.is_ok(), "migrate: {migrated:?}");
    db
}

async fn exec(db: &TestDb, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn reclaim_and_churn_count_only_complete_final_months_and_stop_at_gaps() {
    let db = migrated_db().await;
    // April: active complete and final, inactive failed (churn counts it, utilization and reclaim do
    // not); May: nothing planned; June to September: both complete and final; October: both complete but
    // not final (the current month, or one not settled yet: a later walk may change it), so no view counts
    // it although its rows would make u1's streak five months, u3 active and u2 no candidate.
    exec(
        &db,
        "INSERT INTO rollcall.collection_windows (account, stream, scope, window_start, window_end, state, is_final)
         SELECT 'a', 'zoom_host_report', s, m, (m + interval '1 month - 1 day')::date, 'complete', true
           FROM unnest(array['active', 'inactive']) s,
                generate_series(DATE '2026-06-01', DATE '2026-09-01', interval '1 month') g(m);
         INSERT INTO rollcall.collection_windows (account, stream, scope, window_start, window_end, state, is_final)
         VALUES ('a', 'zoom_host_report', 'active', '2026-04-01', '2026-04-30', 'complete', true),
                ('a', 'zoom_host_report', 'inactive', '2026-04-01', '2026-04-30', 'failed', false),
                ('a', 'zoom_host_report', 'active', '2026-10-01', '2026-10-31', 'complete', false),
                ('a', 'zoom_host_report', 'inactive', '2026-10-01', '2026-10-31', 'complete', false);
         INSERT INTO rollcall.zoom_host_report_users
                (account, month, report_type, user_id, email, user_type, raw, first_seen_at, last_seen_at, walk_id)
         SELECT 'a', m::date, t, u, u || '@example.com', ty, '{}', now(), now(), gen_random_uuid()
           FROM (VALUES
             ('2026-06-01', 'inactive', 'u1', 2), ('2026-07-01', 'inactive', 'u1', 2),
             ('2026-08-01', 'inactive', 'u1', 2), ('2026-09-01', 'inactive', 'u1', 2),
             ('2026-04-01', 'active', 'u2', 2), ('2026-06-01', 'inactive', 'u2', 2),
             ('2026-07-01', 'active', 'u2', 2), ('2026-08-01', 'inactive', 'u2', 2),
             ('2026-09-01', 'inactive', 'u2', 2),
             ('2026-06-01', 'active', 'u3', 2), ('2026-07-01', 'active', 'u3', 2),
             ('2026-08-01', 'inactive', 'u3', 2), ('2026-09-01', 'active', 'u3', 2),
             ('2026-09-01', 'inactive', 'basic', 1),
             ('2026-04-01', 'inactive', 'u4', 2), ('2026-10-01', 'inactive', 'u4', 2),
             ('2026-10-01', 'inactive', 'u1', 2), ('2026-10-01', 'active', 'u3', 2)
           ) v(m, t, u, ty);",
    )
    .await;

    let utilization: Vec<(NaiveDate, i64, i64, Option<f64>)> = sqlx::query_as(
        "SELECT month, licensed_active, licensed_inactive, utilization::float8
           FROM rollcall.zoom_license_utilization ORDER BY month",
    )
    .fetch_all(&db.pool)
    .await
    .expect("utilization");
    let d = |m: u32| NaiveDate::from_ymd_opt(2026, m, 1).expect("date");
    assert_eq!(
        utilization
            .iter()
            .map(|r| (r.0, r.1, r.2))
            .collect::<Vec<_>>(),
        vec![(d(6), 1, 2), (d(7), 2, 1), (d(8), 0, 3), (d(9), 1, 2)],
        "complete and final months only (not October); the basic user is not licensed"
    );

    // The latest complete and final month is September. u1: inactive in every complete and final month
    // (four; October's row does not count); u2: active in July; u4's rows lie in months that are not
    // complete and final, and u3 is active in September.
    let reclaim: Vec<(String, i32, Option<NaiveDate>)> = sqlx::query_as(
        "SELECT user_id, inactive_months, last_active_month FROM rollcall.zoom_reclaim_candidates ORDER BY user_id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("reclaim");
    assert_eq!(
        reclaim,
        vec![("u1".into(), 4, None), ("u2".into(), 2, Some(d(7)))]
    );

    // April has no complete March before it and June no complete May: nothing to compare with. October
    // is not final: no row, rather than u3 "new" and every other host churned.
    let churn: Vec<Churn> = sqlx::query_as(
        "SELECT month, active_hosts, new_hosts, retained_hosts, returning_hosts, churned_hosts
               FROM rollcall.zoom_host_churn ORDER BY month",
    )
    .fetch_all(&db.pool)
    .await
    .expect("churn");
    assert_eq!(
        churn,
        vec![
            (d(4), 1, None, None, None, None),
            (d(6), 1, None, None, None, None),
            // u3 stayed, u2 came back (active in April)
            (d(7), 2, Some(0), Some(1), Some(1), Some(0)),
            (d(8), 0, Some(0), Some(0), Some(0), Some(2)),
            (d(9), 1, Some(0), Some(0), Some(1), Some(0)),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_daily_leaves_out_missing_rows_and_stickiness_is_null_without_users() {
    let db = migrated_db().await;
    exec(
        &db,
        "INSERT INTO rollcall.zoom_sdk_sessions (account, session_id, month, start_time, end_time, raw, collected_at, walk_id, missing_since)
         VALUES ('s', 'one', '2026-05-01', '2026-05-03 23:30+00', '2026-05-04 00:30+00', '{}', now(), gen_random_uuid(), NULL),
                ('s', 'two', '2026-05-01', '2026-05-03 08:00+00', '2026-05-03 09:00+00', '{}', now(), gen_random_uuid(), NULL),
                ('s', 'gone', '2026-05-01', '2026-05-03 10:00+00', '2026-05-03 11:00+00', '{}', now(), gen_random_uuid(), now()),
                ('s', 'quiet', '2026-05-01', '2026-05-04 10:00+00', '2026-05-04 11:00+00', '{}', now(), gen_random_uuid(), NULL);
         INSERT INTO rollcall.zoom_sdk_session_users (account, session_id, user_id, join_time, leave_time, raw, collected_at, walk_id, missing_since)
         VALUES ('s', 'one', 'x', '2026-05-03 23:30+00', '2026-05-04 00:00+00', '{}', now(), gen_random_uuid(), NULL),
                ('s', 'one', 'x', '2026-05-04 00:10+00', '2026-05-04 00:25+00', '{}', now(), gen_random_uuid(), NULL),
                ('s', 'one', 'y', '2026-05-03 23:31+00', NULL, '{}', now(), gen_random_uuid(), NULL),
                ('s', 'two', 'z', '2026-05-03 08:00+00', '2026-05-03 08:00:30+00', '{}', now(), gen_random_uuid(), NULL),
                ('s', 'two', 'w', '2026-05-03 08:00+00', '2026-05-03 09:00+00', '{}', now(), gen_random_uuid(), now()),
                ('s', 'gone', 'v', '2026-05-03 10:00+00', '2026-05-03 11:00+00', '{}', now(), gen_random_uuid(), NULL);
         INSERT INTO rollcall.rc_active_users (account, day, users, is_final, collected_at)
         VALUES ('c', '2026-04-30', 0, true, now()), ('c', '2026-05-01', 2, true, now()),
                ('c', '2026-05-02', 0, true, now()), ('c', '2026-05-03', 1, true, now());
         INSERT INTO rollcall.rc_active_user_days (account, day, user_id)
         VALUES ('c', '2026-05-01', 'p'), ('c', '2026-05-01', 'q'), ('c', '2026-05-03', 'p');",
    )
    .await;

    // May 3rd: sessions one (started before midnight) and two; gone is missing, so are w's minutes. x
    // rejoined (two joins, 30 + 15 minutes), y never left (0 minutes), z stayed 30 seconds.
    let daily: Vec<(NaiveDate, i64, i64, f64)> = sqlx::query_as(
        "SELECT day, sessions, joins, user_minutes::float8 FROM rollcall.zoom_sdk_daily ORDER BY day",
    )
    .fetch_all(&db.pool)
    .await
    .expect("daily");
    let d = |m: u32, day: u32| NaiveDate::from_ymd_opt(2026, m, day).expect("date");
    assert_eq!(daily, vec![(d(5, 3), 2, 4, 45.5), (d(5, 4), 1, 0, 0.0)]);

    // April: one stored day with nobody; May: three days (2 + 0 + 1) / 3 over two distinct users.
    let sticky: Vec<(NaiveDate, f64, i64, Option<f64>)> = sqlx::query_as(
        "SELECT month, avg_dau::float8, mau, dau_mau::float8 FROM rollcall.rc_stickiness ORDER BY month",
    )
    .fetch_all(&db.pool)
    .await
    .expect("stickiness");
    assert_eq!(sticky.len(), 2);
    assert_eq!(
        (sticky[0].0, sticky[0].1, sticky[0].2, sticky[0].3),
        (d(4, 1), 0.0, 0, None)
    );
    assert_eq!((sticky[1].0, sticky[1].2), (d(5, 1), 2));
    assert!((sticky[1].1 - 1.0).abs() < 1e-12);
    assert!(sticky[1].3.is_some_and(|r| (r - 0.5).abs() < 1e-12));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_view_and_column_says_what_it_means() {
    let db = migrated_db().await;
    let undocumented: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT c.relname, a.attname::text
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'rollcall'
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
          WHERE c.relname IN ('zoom_license_utilization', 'zoom_reclaim_candidates', 'zoom_host_churn',
                              'zoom_sdk_daily', 'rc_stickiness', 'zoom_host_complete_months')
            AND (obj_description(c.oid, 'pg_class') IS NULL OR col_description(c.oid, a.attnum) IS NULL)",
    )
    .fetch_all(&db.pool)
    .await
    .expect("comments");
    assert_eq!(undocumented, Vec::new());
    let views: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_views WHERE schemaname = 'rollcall'
            AND viewname IN ('zoom_license_utilization', 'zoom_reclaim_candidates', 'zoom_host_churn',
                             'zoom_sdk_daily', 'rc_stickiness')",
    )
    .fetch_one(&db.pool)
    .await
    .expect("views");
    assert_eq!(views, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_table_examples_keep_every_month_and_leave_out_missing_sdk_rows() {
    let db = migrated_db().await;
    // Host reports: the oldest month Zoom serves, the one before it (the first it no longer serves) and
    // the one before that.
    // `served_by_zoom` is computed from PostgreSQL's own date.
    let served = reachable_months_on(database_today(&db.pool).await)[0];
    let unserved = months_back(served, 1);
    let older = months_back(served, 2);
    for (month, hosts) in [(older, 3), (unserved, 4), (served, 5)] {
        sqlx::query(
            "INSERT INTO rollcall.zoom_host_reports (account, month, report_type, from_date, to_date,
                    total_records, total_meeting_minutes, is_final, collected_at)
             VALUES ('a', $1, 'active', $1, $1, $2, $2 * 10, true, now()),
                    ('a', $1, 'inactive', $1, $1, 99, 0, true, now())",
        )
        .bind(month)
        .bind(hosts)
        .execute(&db.pool)
        .await
        .expect("host report fixture");
    }
    let got: Vec<(NaiveDate, i64, Option<i64>, bool)> = sqlx::query_as(&format!(
        "SELECT month, active_hosts, total_meeting_minutes, served_by_zoom FROM ({}) q",
        readme_sql_after("Active hosts and their meeting minutes per month")
    ))
    .fetch_all(&db.pool)
    .await
    .expect("active hosts query");
    assert_eq!(
        got,
        vec![
            (older, 3, Some(30), false),
            (unserved, 4, Some(40), false),
            (served, 5, Some(50), true),
        ],
        "every month held, the first one Zoom no longer serves included"
    );

    // Video SDK by device: a session no longer listed and a join no longer listed are left out, as
    // zoom_sdk_daily leaves them out.
    exec(
        &db,
        "INSERT INTO rollcall.zoom_sdk_sessions (account, session_id, month, start_time, end_time, raw, collected_at, walk_id, missing_since)
         VALUES ('s', 'one', '2026-05-01', '2026-05-03 08:00+00', '2026-05-03 09:00+00', '{}', now(), gen_random_uuid(), NULL),
                ('s', 'gone', '2026-05-01', '2026-05-03 10:00+00', '2026-05-03 11:00+00', '{}', now(), gen_random_uuid(), now());
         INSERT INTO rollcall.zoom_sdk_session_users (account, session_id, user_id, device, join_time, leave_time, raw, collected_at, walk_id, missing_since)
         VALUES ('s', 'one', 'x', 'Mac', '2026-05-03 08:00+00', '2026-05-03 08:30+00', '{}', now(), gen_random_uuid(), NULL),
                ('s', 'one', 'y', 'Mac', '2026-05-03 08:00+00', '2026-05-03 09:00+00', '{}', now(), gen_random_uuid(), now()),
                ('s', 'one', 'z', 'iOS', '2026-05-03 08:00+00', '2026-05-03 08:10+00', '{}', now(), gen_random_uuid(), NULL),
                ('s', 'gone', 'v', 'Mac', '2026-05-03 10:00+00', '2026-05-03 11:00+00', '{}', now(), gen_random_uuid(), NULL);",
    )
    .await;
    let got: Vec<(String, i64, f64)> = sqlx::query_as(&format!(
        "SELECT device, sessions, user_minutes::float8 FROM ({}) q WHERE account = 's' ORDER BY device",
        readme_sql_after("Video SDK: session minutes per month by device")
    ))
    .fetch_all(&db.pool)
    .await
    .expect("device query");
    assert_eq!(got, vec![("Mac".into(), 1, 30.0), ("iOS".into(), 1, 10.0)]);
    let daily: f64 = sqlx::query_scalar(
        "SELECT sum(user_minutes)::float8 FROM rollcall.zoom_sdk_daily WHERE account = 's'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("daily");
    assert_eq!(daily, 40.0, "the same minutes as zoom_sdk_daily");
}
