//! Several `rollcall run` processes against one PostgreSQL share the work and never walk a window twice.

use crate::common::*;
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule};
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_walk_every_window_exactly_once_between_them() {
    let specs = vec![zoom_account("acme", 600), zoom_account("globex", 600)];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    let app = TestApp::new(sandbox).await.zoom(&specs, 100);
    let db = &app.db;
    let config = app.write_config();
    // Slow pages keep both replicas busy at once, so they really compete for windows.
    control.add_fault(FaultRule::on(
        Endpoint::ReportUsers,
        FaultKind::Delay { ms: 30 },
    ));
    // The schema must exist before both replicas race to create it.
    assert_eq!(run(&config.path, &["migrate"]).await.code, 0);

    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut cmd = rollcall(&config.path, &["run"]);
        // Both replicas are triggered by the same tick, as in production; not by their own start.
        cmd.env("ROLLCALL__SCHEDULE__CRON", "*/2 * * * * *")
            .env("ROLLCALL__SCHEDULE__RUN_ON_START", "false")
            .env(
                "ROLLCALL__HTTP__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            );
        replicas.push(cmd.spawn().expect("spawn replica"));
    }

    // Per account and month: the two host reports and the daily usage report, which also walks the month
    // straddling the horizon from the horizon day.
    let due = ((reachable_months().len() * 2 + day_months().len()) * specs.len()) as i64;
    // Poll the shared table (the replicas' only common ground) until every window is complete.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        poll.tick().await;
        let complete: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.collection_windows WHERE state = 'complete'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap_or(0);
        if complete >= due {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas did not finish: {complete}/{due}"
        );
    }

    let mut logs = Vec::new();
    for child in replicas {
        let pid = child.id().expect("pid").to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let outcome = finish(child).await;
        assert_eq!(outcome.code, 0, "{}", outcome.output());
        logs.push(outcome.stderr);
    }

    // Each window's walk starts with exactly one first-page request: two would mean two walkers. Later
    // ticks walk the current (not yet final) month again, by design, so only final months are counted.
    let finals: Vec<(String, chrono::NaiveDate, String)> = sqlx::query_as(
        "SELECT account, date_trunc('month', window_start)::date, scope FROM rollcall.collection_windows
          WHERE is_final AND stream IN ('zoom_host_report', 'zoom_daily_usage')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!finals.is_empty());
    let is_final = |account: &str, from: &str, scope: &str| {
        finals.iter().any(|(a, start, s)| {
            format!("{a}-account") == account && start.to_string() == from && s == scope
        })
    };
    let mut first_pages: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for r in control.requests().iter() {
        let account = r.account_id.clone().unwrap_or_default();
        let (from, scope) = match r.endpoint {
            Endpoint::ReportUsers => (
                r.query.get("from").cloned().unwrap_or_default(),
                r.query.get("type").cloned().unwrap_or_default(),
            ),
            // One request a month, named by year and month; its window's scope is ''.
            Endpoint::ReportDaily => {
                let part = |k: &str| r.query.get(k).and_then(|v| v.parse::<u32>().ok());
                match (part("year"), part("month")) {
                    (Some(y), Some(m)) => (format!("{y}-{m:02}-01"), String::new()),
                    _ => continue,
                }
            }
            _ => continue,
        };
        if r.page == Some(1) && is_final(&account, &from, &scope) {
            *first_pages.entry((account, scope, from)).or_default() += 1;
        }
    }
    assert_eq!(first_pages.len(), finals.len());
    assert!(
        first_pages.values().all(|n| *n == 1),
        "a window was walked twice: {first_pages:?}"
    );
    for (i, log) in logs.iter().enumerate() {
        assert!(
            log.contains("window complete"),
            "replica {i} did some of the work:\n{log}"
        );
    }
    for spec in &specs {
        assert_mirror(&db.pool, &control, spec).await;
    }
}

/// How the survivors may free the killed replica's leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Takeover {
    /// The victim ran on this host, in this pid namespace: the survivors prove it dead and take its
    /// windows at once, long before its lease would expire.
    DeadLocal,
    /// The victim's owner id is rewritten to another host's while it is frozen, right before the kill, so
    /// nothing can prove it dead: the survivors must wait for its leases to expire.
    Expiry,
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_take_over_a_sigkilled_replica_at_once_when_it_is_provably_dead() {
    survive_a_kill(Takeover::DeadLocal, 30).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_take_over_a_sigkilled_foreign_replica_after_its_lease_expires() {
    survive_a_kill(Takeover::Expiry, 6).await;
}

/// A `rollcall run` child whose output is drained as it comes (three chatty replicas would fill a pipe and
/// block), so its log can be read while it runs and after it is gone.
struct Replica {
    child: tokio::process::Child,
    pid: u32,
    port: u16,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Replica {
    fn spawn(config: &std::path::Path, lease_secs: u64) -> Replica {
        use tokio::io::AsyncReadExt;
        let port = free_port();
        let mut cmd = rollcall(config, &["run"]);
        cmd.env("ROLLCALL__SCHEDULE__CRON", "*/2 * * * * *")
            .env("ROLLCALL__SCHEDULE__RUN_ON_START", "false")
            .env("ROLLCALL__COLLECTOR__LEASE_SECS", lease_secs.to_string())
            // Few workers per stream, so three replicas really split the windows between them.
            .env("ROLLCALL__COLLECTOR__WINDOWS_IN_FLIGHT", "2")
            .env("ROLLCALL__HTTP__LISTEN", format!("127.0.0.1:{port}"));
        let mut child = cmd.spawn().expect("spawn replica");
        let pid = child.id().expect("pid");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for mut pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    log.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Replica {
            child,
            pid,
            port,
            log,
        }
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid);
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace(':', "_"))
        .expect("host name")
}

/// `host:pid` of an owner id `rc2:host:pid:...`, as `/metrics` and `status` name replicas.
fn replica_of(owner: &str) -> String {
    let parts: Vec<&str> = owner.split(':').collect();
    format!("{}:{}", parts[1], parts[2])
}

/// A window the victim held when it was frozen, as the database had it.
#[derive(Debug, sqlx::FromRow)]
struct Held {
    id: i64,
    lease_until: chrono::DateTime<chrono::Utc>,
    /// A walk with a fresh token and frozen parameters: a survivor resumes it, never restarts it.
    resumable: bool,
}

async fn held_by(pool: &sqlx::PgPool, owner_like: &str) -> Vec<Held> {
    sqlx::query_as(
        "SELECT id, lease_until,
                state = 'running' AND next_page_token IS NOT NULL AND walk_params IS NOT NULL AS resumable
           FROM rollcall.collection_windows WHERE lease_owner LIKE $1 ORDER BY id",
    )
    .bind(owner_like)
    .fetch_all(pool)
    .await
    .expect("query held windows")
}

async fn survive_a_kill(takeover: Takeover, lease_secs: u64) {
    let specs = vec![
        zoom_account("acme", 600),
        zoom_account("globex", 600),
        zoom_account("initech", 600),
    ];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    // 50 users a page: an active report is 5 pages, an inactive one 8.
    let app = TestApp::new(sandbox).await.zoom(&specs, 50);
    let db = &app.db;
    let config = app.write_config();
    // The first matching rule fires, so the hang comes before the delay. Whoever reaches page 3 of an acme inactive report first hangs there: that replica is the victim,
    // provably mid-window (pages 1 and 2 committed, a fresh token stored) when it is killed.
    control.add_fault(
        FaultRule::on(Endpoint::ReportUsers, FaultKind::Hang)
            .account("acme-account")
            .report_type(rollcall_sandbox::ReportType::Inactive)
            .page(3)
            .times(1),
    );
    // Slow pages keep every replica mid-window most of the time.
    control.add_fault(FaultRule::on(
        Endpoint::ReportUsers,
        FaultKind::Delay { ms: 60 },
    ));
    assert_eq!(run(&config.path, &["migrate"]).await.code, 0);
    let mut replicas: Vec<Replica> = (0..3)
        .map(|_| Replica::spawn(&config.path, lease_secs))
        .collect();

    // Wait for the hang, then for its window's checkpoint of page 2 (written while page 3 was fetched).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    let hung_from = loop {
        poll.tick().await;
        let hung = control
            .requests()
            .into_iter()
            .find(|r| r.endpoint == Endpoint::ReportUsers && r.page == Some(3) && r.status == 0);
        if let Some(r) = hung {
            break r.query.get("from").cloned().expect("from");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no replica reached the hang"
        );
    };
    let hung_month: chrono::NaiveDate = hung_from.parse().expect("a date");
    let (hung_id, victim_owner) = loop {
        poll.tick().await;
        let row: Option<(i64, Option<String>, i32)> = sqlx::query_as(
            "SELECT id, lease_owner, pages FROM rollcall.collection_windows
              WHERE account = 'acme' AND stream = 'zoom_host_report' AND scope = 'inactive'
                AND window_start = $1 AND state = 'running'",
        )
        .bind(hung_month)
        .fetch_optional(&db.pool)
        .await
        .expect("query the hung window");
        if let Some((id, Some(owner), pages)) = row {
            if pages >= 2 {
                break (id, owner);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hung window never checkpointed page 2"
        );
    };
    let victim_replica = replica_of(&victim_owner);
    let victim_pid: u32 = victim_owner
        .split(':')
        .nth(2)
        .and_then(|p| p.parse().ok())
        .expect("pid");
    let victim_index = replicas
        .iter()
        .position(|r| r.pid == victim_pid)
        .expect("the lease owner is one of the three replicas");
    assert_eq!(victim_replica, format!("{}:{victim_pid}", hostname()));

    // Freeze the victim: its leases stay valid and its windows stop moving while we look.
    replicas[victim_index].signal("STOP");
    if takeover == Takeover::DeadLocal {
        // `status` names the holder of each running window (the lease is long enough to look at leisure).
        assert_status_names_holder(&config.path, &hung_from, &victim_owner).await;
    }
    // Every replica of this process: the run may have moved on to a new nonce since the hang.
    let victim_like = format!("rc2:{}:{victim_pid}:%", hostname());
    let held = if takeover == Takeover::Expiry {
        // Rewrite the victim's leases to another host's id, in the same frozen state. A frozen victim may
        // hold a page transaction open on a window row: then let it run a moment to commit, and retry.
        let mut attempts = 0;
        loop {
            let mut tx = db.pool.begin().await.expect("begin");
            sqlx::query("SET LOCAL lock_timeout = '300ms'")
                .execute(&mut *tx)
                .await
                .expect("set lock_timeout");
            let rewritten = sqlx::query(
                "UPDATE rollcall.collection_windows SET lease_owner = $2 WHERE lease_owner LIKE $1",
            )
            .bind(&victim_like)
            .bind(FOREIGN_OWNER)
            .execute(&mut *tx)
            .await;
            match rewritten {
                Ok(_) => {
                    tx.commit().await.expect("commit the rewrite");
                    break;
                }
                Err(err) => {
                    drop(tx);
                    attempts += 1;
                    assert!(
                        attempts < 20,
                        "could not rewrite the victim's leases: {err}"
                    );
                    replicas[victim_index].signal("CONT");
                    poll.tick().await;
                    replicas[victim_index].signal("STOP");
                }
            }
        }
        held_by(&db.pool, FOREIGN_OWNER).await
    } else {
        held_by(&db.pool, &victim_like).await
    };
    assert!(
        held.iter().any(|h| h.id == hung_id && h.resumable),
        "{held:?}"
    );

    replicas[victim_index].signal("KILL");
    let killed_at = tokio::time::Instant::now();
    let victim = replicas.remove(victim_index);
    // Reaped, so its pid is gone from /proc (a zombie would still be there) and only its leases remain.
    let _ = victim.child.wait_with_output().await;
    let kill_db: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .expect("now");

    // Watch the victim's windows: who takes them and when, and that every one is walked to the end.
    let held_ids: Vec<i64> = held.iter().map(|h| h.id).collect();
    let deadline = killed_at + Duration::from_secs(lease_secs + 60);
    let mut taken_over_after = None;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        poll.tick().await;
        let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&db.pool)
            .await
            .expect("now");
        let states: Vec<(i64, Option<String>, Option<chrono::DateTime<chrono::Utc>>)> =
            sqlx::query_as(
                "SELECT id, lease_owner, completed_at FROM rollcall.collection_windows WHERE id = ANY($1)",
            )
            .bind(&held_ids)
            .fetch_all(&db.pool)
            .await
            .expect("query the victim's windows");
        let mut all_taken = true;
        for (id, owner, completed_at) in &states {
            let victims = owner
                .as_deref()
                .is_some_and(|o| o == FOREIGN_OWNER || replica_of(o) == victim_replica);
            let moved = !victims || completed_at.is_some_and(|at| at > kill_db);
            let until = held.iter().find(|h| h.id == *id).expect("held").lease_until;
            match takeover {
                Takeover::Expiry => assert!(
                    !moved || now >= until,
                    "window {id} was taken from a foreign owner at {now}, before its lease expired at {until}"
                ),
                Takeover::DeadLocal => assert!(
                    moved || now < until,
                    "window {id} of a provably dead owner was left until its lease expired at {until}"
                ),
            }
            all_taken &= moved;
        }
        if all_taken && taken_over_after.is_none() {
            taken_over_after = Some(killed_at.elapsed());
        }
        let unfinished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.collection_windows
              WHERE state <> 'unreachable'
                AND (completed_at IS NULL OR (is_final AND state <> 'complete')
                     OR (id = ANY($1) AND completed_at <= $2))",
        )
        .bind(&held_ids)
        .bind(kill_db)
        .fetch_one(&db.pool)
        .await
        .expect("count unfinished");
        if unfinished == 0 && taken_over_after.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{unfinished} windows unfinished {lease_secs} + 60 s after the kill"
        );
    }
    let finished_after = killed_at.elapsed();
    eprintln!(
        "{takeover:?}: {} windows of the victim taken over {:?} after the kill, everything complete after {:?}",
        held.len(),
        taken_over_after.unwrap_or_default(),
        finished_after
    );

    // `/metrics` tells the replicas apart: each counts its own work under its own `replica`.
    let host = hostname();
    for replica in &replicas {
        let name = format!("{host}:{}", replica.pid);
        let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", replica.port))
            .await
            .expect("metrics answers")
            .text()
            .await
            .expect("metrics body");
        assert!(
            metrics.contains(&format!("rollcall_replica_info{{replica=\"{name}\"}} 1")),
            "{metrics}"
        );
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("rollcall_windows_finished_total{")
                    && l.contains(&format!("replica=\"{name}\""))
                    && l.contains("outcome=\"complete\"")),
            "{name} counts the windows it finished:\n{metrics}"
        );
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("rollcall_requests_total{")
                    && l.contains(&format!("replica=\"{name}\""))),
            "{metrics}"
        );
        assert!(
            !metrics.contains(&format!("replica=\"{victim_replica}\"")),
            "{metrics}"
        );
        // The window gauges are read from the shared database: the same on every replica, no label.
        assert!(
            metrics
                .lines()
                .filter(|l| l.starts_with("rollcall_windows{"))
                .all(|l| !l.contains("replica=")),
            "{metrics}"
        );
    }

    let mut logs = Vec::new();
    for replica in replicas {
        replica.signal("TERM");
        let log = replica.log.clone();
        let status =
            tokio::time::timeout(Duration::from_secs(30), replica.child.wait_with_output())
                .await
                .expect("a survivor exits after SIGTERM")
                .expect("wait");
        let log = log.lock().unwrap().clone();
        assert_eq!(status.status.code(), Some(0), "{log}");
        logs.push(log);
    }
    let proofs = logs
        .iter()
        .filter(|l| l.contains("took over the window of a process that no longer exists"))
        .count();
    match takeover {
        Takeover::DeadLocal => assert!(proofs > 0, "a survivor proved the victim dead"),
        Takeover::Expiry => assert_eq!(proofs, 0, "nobody may prove a foreign owner dead"),
    }

    // Walked once in total: every final window has exactly one completed walk. A window nobody else held
    // was begun once and its page 1 requested once. A window the victim held may have been begun twice
    // (the victim's walk, cut short, and the survivor's), but one with a checkpoint was resumed, not begun
    // again, and page 1 is never requested more often than walks were begun.
    let finals: Vec<(i64, String, chrono::NaiveDate, String, i32)> = sqlx::query_as(
        "SELECT id, account, date_trunc('month', window_start)::date, scope, attempts FROM rollcall.collection_windows
          WHERE is_final AND stream IN ('zoom_host_report', 'zoom_daily_usage')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!finals.is_empty());
    let mut first_pages: BTreeMap<(String, String, String), i32> = BTreeMap::new();
    let mut hung_page_3 = 0;
    for r in control.requests().iter() {
        let account = r.account_id.clone().unwrap_or_default();
        let (from, scope) = match r.endpoint {
            Endpoint::ReportUsers => (
                r.query.get("from").cloned().unwrap_or_default(),
                r.query.get("type").cloned().unwrap_or_default(),
            ),
            Endpoint::ReportDaily => {
                let part = |k: &str| r.query.get(k).and_then(|v| v.parse::<u32>().ok());
                match (part("year"), part("month")) {
                    (Some(y), Some(m)) => (format!("{y}-{m:02}-01"), String::new()),
                    _ => continue,
                }
            }
            _ => continue,
        };
        if account == "acme-account"
            && scope == "inactive"
            && from == hung_from
            && r.page == Some(3)
        {
            hung_page_3 += 1;
        }
        if r.page == Some(1) {
            *first_pages.entry((account, scope, from)).or_default() += 1;
        }
    }
    for (id, account, start, scope, attempts) in &finals {
        let key = (
            format!("{account}-account"),
            scope.clone(),
            start.to_string(),
        );
        let pages_1 = first_pages.get(&key).copied().unwrap_or(0);
        match held.iter().find(|h| h.id == *id) {
            None => assert!(
                attempts == &1 && pages_1 == 1,
                "{key:?} was walked {attempts} times, page 1 requested {pages_1} times"
            ),
            Some(h) => {
                let most = if h.resumable { 1 } else { 2 };
                assert!(
                    (1..=most).contains(attempts) && (1..=*attempts).contains(&pages_1),
                    "{key:?} held by the victim (resumable: {}): begun {attempts} times, page 1 requested {pages_1} times",
                    h.resumable
                );
            }
        }
    }
    // The hung walk was resumed at its page 3 by a survivor: the hang and the resumption.
    assert_eq!(hung_page_3, 2);

    // Every window complete and exact, and no duplicate: each window's stored rows are counted by SQL
    // (not deduplicated through a map) against its announced total.
    for spec in &specs {
        assert_mirror(&db.pool, &control, spec).await;
    }
    let mismatched: Vec<(String, chrono::NaiveDate, String, i64, i64)> = sqlx::query_as(
        "SELECT r.account, r.month, r.report_type, r.total_records::bigint, count(u.user_id)
           FROM rollcall.zoom_host_reports r
           LEFT JOIN rollcall.zoom_host_report_users u USING (account, month, report_type)
          GROUP BY 1, 2, 3, 4 HAVING count(u.user_id) <> r.total_records",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(mismatched.is_empty(), "{mismatched:?}");
    assert!(finished_after <= Duration::from_secs(lease_secs + 60));
}

async fn assert_status_names_holder(config: &std::path::Path, hung_from: &str, victim_owner: &str) {
    let victim_replica = replica_of(victim_owner);
    let table = run(config, &["status"]).await;
    assert_eq!(table.code, 0, "{}", table.output());
    let window_text = format!("{hung_from}..");
    assert!(
        table.stdout.lines().any(|l| l.starts_with("acme ")
            && l.contains("inactive")
            && l.contains(&window_text)
            && l.contains(&format!("{victim_replica} until"))),
        "status shows who holds the hung window:\n{}",
        table.stdout
    );
    let json = run(config, &["status", "--json"]).await;
    assert_eq!(json.code, 0, "{}", json.output());
    let parsed: serde_json::Value =
        serde_json::from_str(&json.stdout).expect("status --json is JSON");
    let running: Vec<&serde_json::Value> = parsed
        .as_array()
        .expect("an array per account and stream")
        .iter()
        .filter(|s| s["account"] == "acme" && s["stream"] == "zoom_host_report")
        .flat_map(|s| {
            s["running_windows"]
                .as_array()
                .expect("running_windows")
                .iter()
        })
        .collect();
    let hung = running
        .iter()
        .find(|w| w["scope"] == "inactive" && w["window_start"] == hung_from)
        .unwrap_or_else(|| panic!("the hung window is listed as running: {}", json.stdout));
    assert_eq!(hung["lease_owner"], victim_owner);
    assert_eq!(hung["replica"], victim_replica.as_str());
    assert_eq!(hung["lease_expired"], false);
    assert!(hung["lease_until"].is_string());
}

/// A worker asks two questions: may I claim a window (`claim_next`), and if not, is one leased elsewhere
/// that I should wait for (`leased_elsewhere`)? A lease that runs out between the two must be an answer to
/// one of them, or the worker concludes there is nothing left and ends while the window still needs a walk.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_that_runs_out_between_claim_and_poll_is_still_waited_for() {
    use rollcall::store::lease_owner::LeaseOwner;
    use rollcall::store::windows::{self, PlannedWindow, Reach};
    let db = TestDb::create().await;
    rollcall::store::migrate(&db.pool).await.expect("migrate");
    let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
    let planned = PlannedWindow {
        scope: "all".into(),
        start: day,
        end: day,
        reach: Reach::Reachable,
    };
    windows::plan(&db.pool, "acme", "probe", &[planned])
        .await
        .expect("plan");
    // Another replica holds the window, and its lease is live when this one asks to claim it.
    sqlx::query(
        "UPDATE rollcall.collection_windows
            SET state = 'running', lease_owner = $1, lease_until = now() + interval '1 minute'",
    )
    .bind(FOREIGN_OWNER)
    .execute(&db.pool)
    .await
    .expect("lease elsewhere");
    let owner = LeaseOwner::for_this_process(30);
    let run_started = now();
    let claimed = windows::claim_next(&db.pool, "acme", "probe", &owner, run_started, &[])
        .await
        .expect("claim");
    assert!(claimed.is_none(), "the lease is live");
    // ... and it runs out before the poll.
    sqlx::query("UPDATE rollcall.collection_windows SET lease_until = now() - interval '1 second'")
        .execute(&db.pool)
        .await
        .expect("expire");
    let leased = windows::leased_elsewhere(&db.pool, "acme", "probe", &owner, run_started, &[])
        .await
        .expect("poll");
    assert_eq!(leased.len(), 1, "the window is still waited for");
    let claimed = windows::claim_next(&db.pool, "acme", "probe", &owner, run_started, &[])
        .await
        .expect("claim again");
    assert!(claimed.is_some(), "and the next claim takes it");
}

/// Replicas fired by one cron tick run with the tick's time on their own clocks. A window one of them
/// walked in that tick is not walked again by another, even when the replicas' clocks run ahead of
/// PostgreSQL's (which stamps `started_at`).
#[tokio::test(flavor = "multi_thread")]
async fn replicas_of_one_tick_walk_a_window_once_whatever_the_database_clock_says() {
    let specs = vec![zoom_account("acme", 60)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 50);
    let (db, control) = (&app.db, app.control());
    rollcall::store::migrate(&db.pool).await.expect("migrate");
    // The tick, as replicas two seconds ahead of the database read it.
    let tick = now() + chrono::Duration::seconds(2);
    let selection = Selection::default();
    for replica in ["first", "second"] {
        let report = collector::run_once_at(
            &db.pool,
            &app.config,
            &selection,
            tokio_util::sync::CancellationToken::new(),
            tick,
        )
        .await
        .expect("run");
        assert!(report.all_complete(), "{replica}: {report:?}");
        if replica == "first" {
            control.clear_requests();
        }
    }
    let walked_again = control
        .requests()
        .iter()
        .filter(|r| r.endpoint == rollcall_sandbox::Endpoint::ReportUsers)
        .count();
    assert_eq!(
        walked_again, 0,
        "the second replica of the tick asks nothing"
    );
    let attempts: Vec<i32> = sqlx::query_scalar(
        "SELECT DISTINCT attempts FROM rollcall.collection_windows WHERE state <> 'unreachable'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("attempts");
    assert_eq!(attempts, [1], "every window walked once");
}
