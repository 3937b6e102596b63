//! PostgreSQL over TLS: a server of the test's own with `ssl = on`, a CA and certificates made by the test,
//! and only `hostssl` lines in `pg_hba.conf`, so a connection without TLS is refused by the server itself.

use crate::common::*;
use crate::resilience::{postgres_binaries_present, OwnPostgres};
use rollcall::store;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The role that logs in with a client certificate (`cert` authentication) instead of trust.
const CERT_USER: &str = "rollcall_cert";
const PASSWORD: &str = "s3cr3t-pw-never-shown";

/// The test's PKI: a CA that signed the server's certificate (for `localhost` only) and a client
/// certificate, and an unrelated CA that signed nothing of this server's.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn make() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for ca in ["ca", "other-ca"] {
            pki.openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "3",
                "-subj",
                &format!("/CN=rollcall test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ]);
        }
        pki.sign(
            "server",
            "localhost",
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth",
        );
        pki.sign("client", CERT_USER, "extendedKeyUsage=clientAuth");
        pki
    }

    /// A leaf certificate `name.crt` (key `name.key`) for `cn`, signed by `ca`.
    fn sign(&self, name: &str, cn: &str, extensions: &str) {
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{extensions}\n"
            ),
        )
        .expect("write extensions");
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ]);
    }

    fn openssl(&self, args: &[&str]) {
        let out = StdCommand::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Server side: the certificate and key, the CA for client certificates, TLS on, TCP only over TLS.
    fn install(&self, data: &Path) -> bool {
        for (from, to) in [
            ("server.crt", "server.crt"),
            ("server.key", "server.key"),
            ("ca.crt", "client-ca.crt"),
        ] {
            if std::fs::copy(self.path(from), data.join(to)).is_err() {
                return false;
            }
        }
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        );
        let conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(
                    b"\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'client-ca.crt'\n",
                )
            });
        let hba = std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 hostssl all {CERT_USER} 127.0.0.1/32 cert\nhostssl all {CERT_USER} ::1/128 cert\n\
                 hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n"
            ),
        );
        key.is_ok() && conf.is_ok() && hba.is_ok()
    }
}

/// A TLS-only PostgreSQL with a database for this test, reached with `verify-full` and the right CA.
async fn tls_postgres() -> Option<(OwnPostgres, Pki, TestDb, String)> {
    if !postgres_binaries_present() {
        eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
        return None;
    }
    let pki = Pki::make();
    let pg = OwnPostgres::start_with(|data| pki.install(data)).expect("start a TLS PostgreSQL");
    let admin = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.port(),
        pki.path("ca.crt").display()
    );
    let db = TestDb::create_on(&admin).await;
    sqlx::query(&format!("CREATE ROLE {CERT_USER} LOGIN SUPERUSER"))
        .execute(&db.pool)
        .await
        .expect("create the certificate's role");
    Some((pg, pki, db, admin))
}

/// `database.url` for the test's database with `user`, `host` and the query `params`.
fn url(pg: &OwnPostgres, db: &TestDb, user: &str, host: &str, params: &str) -> String {
    let parsed = reqwest::Url::parse(&db.url).expect("the test database's URL");
    format!(
        "postgres://{user}@{host}:{}{}?{params}",
        pg.port(),
        parsed.path()
    )
}

/// One collection through a pool of rollcall's own, kept open so `pg_stat_ssl` can be read while its
/// connections live: (rollcall's connections, those over TLS).
async fn collect_over(app: &TestApp, url: &str) -> (RunReport, i64, i64) {
    let pool = store::pool(&secrecy::SecretString::from(url.to_owned()), 4).expect("pool");
    let cancel = CancellationToken::new();
    store::wait_until_reachable(&pool, Duration::from_secs(10), &cancel)
        .await
        .expect("reachable");
    store::migrate(&pool).await.expect("migrate");
    let report = collector::run_once(&pool, &app.config, &Selection::default(), cancel)
        .await
        .expect("collect");
    let (all, tls): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl)
           FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
          WHERE a.application_name = 'rollcall' AND a.datname = current_database()",
    )
    .fetch_one(&app.db.pool)
    .await
    .expect("pg_stat_ssl");
    pool.close().await;
    (report, all, tls)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sslmode_that_can_work_collects_exactly_and_every_connection_is_tls() {
    let Some((pg, pki, db, admin)) = tls_postgres().await else {
        return;
    };
    let specs = vec![zoom_account("acme", 120)];
    let app = TestApp::on(db, sandbox(specs.clone()).await).zoom(&specs, 25);
    let ca = pki.path("ca.crt").display().to_string();
    let client = format!(
        "sslcert={}&sslkey={}",
        pki.path("client.crt").display(),
        pki.path("client.key").display()
    );
    let cases = [
        (
            "verify-full, the right CA",
            "postgres",
            "localhost",
            format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        // The server offers TLS: `prefer` (the default) takes it.
        (
            "no sslmode (prefer)",
            "postgres",
            "localhost",
            String::new(),
        ),
        (
            "require, no verification",
            "postgres",
            "127.0.0.1",
            "sslmode=require".into(),
        ),
        // verify-ca should not check the name, but sqlx 0.8 does with this rustls (sqlx#3793; README).
        (
            "verify-ca",
            "postgres",
            "localhost",
            format!("sslmode=verify-ca&sslrootcert={ca}"),
        ),
        (
            "a client certificate",
            CERT_USER,
            "localhost",
            format!("sslmode=verify-full&sslrootcert={ca}&{client}"),
        ),
    ];
    for (case, user, host, params) in cases {
        let url = url(&pg, &app.db, user, host, &params);
        let (report, all, tls) = collect_over(&app, &url).await;
        assert!(report.all_complete(), "{case}: {report:?}");
        assert!(all > 0, "{case}: rollcall's connections are listed");
        assert_eq!(tls, all, "{case}: every rollcall connection is over TLS");
        assert_mirror(&app.db.pool, &app.control(), &specs[0]).await;
    }
    // The binary too, as a user runs it, on a database of its own.
    let mut cli = TestApp::on(
        TestDb::create_on(&admin).await,
        sandbox(specs.clone()).await,
    )
    .zoom(&specs, 25);
    let params = format!("sslmode=verify-full&sslrootcert={ca}");
    cli.config.database.url = url(&pg, &cli.db, "postgres", "localhost", &params).into();
    let run = cli.cli(&["collect"]).await;
    assert_eq!(run.code, 0, "{}", run.output());
    assert_mirror(&cli.db.pool, &cli.control(), &specs[0]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_that_does_not_verify_is_refused_at_once_and_nothing_is_written() {
    let Some((pg, pki, db, _)) = tls_postgres().await else {
        return;
    };
    let specs = vec![zoom_account("acme", 20)];
    let mut app = TestApp::on(db, sandbox(specs.clone()).await).zoom(&specs, 25);
    app.config.http.listen = ([127, 0, 0, 1], free_port()).into();
    let user = format!("postgres:{PASSWORD}");
    let (ca, other) = (pki.path("ca.crt"), pki.path("other-ca.crt"));
    let cases = [
        (
            "a wrong CA",
            "localhost",
            other.display().to_string(),
            "UnknownIssuer",
        ),
        (
            "a wrong host name",
            "127.0.0.1",
            ca.display().to_string(),
            "not valid for name",
        ),
    ];
    for (case, host, root, reason) in cases {
        let params = format!("sslmode=verify-full&sslrootcert={root}");
        app.config.database.url = url(&pg, &app.db, &user, host, &params).into();
        for command in [&["collect"][..], &["migrate"], &["status"], &["run"]] {
            let started = Instant::now();
            let run = app.cli(command).await;
            let took = started.elapsed();
            let out = run.output();
            assert_eq!(run.code, 2, "{case}, {command:?}: exit code\n{out}");
            let named: Vec<&str> = out.lines().filter(|l| l.contains("database.url")).collect();
            assert_eq!(
                named.len(),
                1,
                "{case}, {command:?}: one line names database.url\n{out}"
            );
            assert!(
                named[0].contains(reason) && named[0].contains("sslmode=verify-full"),
                "{case}, {command:?}: the line gives the TLS reason\n{out}"
            );
            assert!(
                !out.contains(PASSWORD),
                "{case}, {command:?}: the password is never shown\n{out}"
            );
            assert!(
                !out.contains("retrying"),
                "{case}, {command:?}: no waiting for the database\n{out}"
            );
            // The wait for a database that is not up yet lasts 30 s (60 s for `run`).
            assert!(
                took < Duration::from_secs(20),
                "{case}, {command:?}: refused at once, took {took:?}"
            );
        }
    }
    assert!(!app.db.has_schema().await, "nothing was written");
    assert!(app.control().requests().is_empty(), "nothing was requested");
}
