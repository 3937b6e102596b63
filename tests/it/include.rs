//! `include`: accounts kept in files of their own, loaded by the library and collected in-process against
//! the sandbox and PostgreSQL; and the CLI's side, `check --offline` (validates the same files, contacts
//! nothing) and exit code 2 for a bad file, with the real binary.

use crate::common::*;
use rollcall_sandbox::ZoomAccountSpec;
use std::path::Path;

/// A `[[zoom]]` entry for `spec` against the sandbox, its secret read from `secret_file` when given.
fn zoom_entry(
    sandbox: &rollcall_sandbox::Sandbox,
    spec: &ZoomAccountSpec,
    secret_file: Option<&Path>,
) -> String {
    let secret = match secret_file {
        Some(path) => {
            std::fs::write(path, format!("{}\n", spec.client_secret)).expect("write secret");
            format!("client_secret_file = {:?}", path.display().to_string())
        }
        None => format!("client_secret = \"{}\"", spec.client_secret),
    };
    format!(
        "[[zoom]]\nname = \"{}\"\naccount_id = \"{}\"\nclient_id = \"{}\"\n{secret}\napi_url = \"{}\"\noauth_url = \"{}\"\npage_size = 100\n\n",
        account_name(spec),
        spec.account_id,
        spec.client_id,
        sandbox.zoom_api_url(),
        sandbox.zoom_oauth_url()
    )
}

/// The main config (one account) with `include = ["accounts.d/*.toml"]` prepended: a top-level key must come
/// before the first table.
fn with_include(config: &RollcallConfig) -> &Path {
    let text = std::fs::read_to_string(&config.path).expect("read config");
    std::fs::write(
        &config.path,
        format!("include = [\"accounts.d/*.toml\"]\n{text}"),
    )
    .expect("write config");
    let dir = config.path.parent().expect("config dir");
    std::fs::create_dir_all(dir.join("accounts.d")).expect("accounts.d");
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_from_two_included_files_are_collected() {
    let specs = vec![
        zoom_account("hq", 120),
        zoom_account("campus", 90),
        zoom_account("lab", 40),
    ];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    let mut app = TestApp::new(sandbox).await.zoom(&specs[..1], 100);
    let config = app.write_config();
    let dir = with_include(&config);
    std::fs::write(
        dir.join("accounts.d/campus.toml"),
        zoom_entry(&app.sandbox, &specs[1], None),
    )
    .expect("write campus");
    // The second file's secret comes from a file, as in a Kubernetes Secret mount: in a directory the
    // main file lets included files read.
    let mut main = std::fs::read_to_string(&config.path).expect("read config");
    main.push_str(&format!(
        "\n[include_policy]\nsecret_dirs = [{:?}]\n",
        dir.join("secrets").display().to_string()
    ));
    std::fs::write(&config.path, main).expect("write config");
    std::fs::create_dir_all(dir.join("secrets")).expect("secrets dir");
    std::fs::write(
        dir.join("accounts.d/lab.toml"),
        zoom_entry(&app.sandbox, &specs[2], Some(&dir.join("secrets/lab"))),
    )
    .expect("write lab");

    let offline = run(&config.path, &["check", "--offline"]).await;
    assert_eq!(offline.code, 0, "{}", offline.output());
    assert!(
        offline
            .stdout
            .contains("config: valid (3 zoom, 0 videosdk, 0 rocketchat accounts)")
            && offline.stdout.contains("accounts.d/campus.toml read")
            && offline.stdout.contains("accounts.d/lab.toml read"),
        "{}",
        offline.stdout
    );

    // The files are the subject here: the config the library reads from them is the one collected with.
    app.config = Config::load_with_env(&config.path, Vec::new()).expect("the config loads");
    let db = &app.db;
    let collect = app.collect_all().await;
    assert!(collect.all_complete(), "{collect:?}");
    for spec in &specs {
        assert_mirror(&db.pool, &control, spec).await;
    }
    let accounts: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT account FROM rollcall.collection_windows ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .expect("accounts");
    assert_eq!(accounts, ["campus", "hq", "lab"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_name_across_files_exits_2_naming_both_and_writes_nothing() {
    let specs = vec![zoom_account("hq", 10), zoom_account("twin", 10)];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    let app = TestApp::new(sandbox).await.zoom(&specs[..1], 100);
    let db = &app.db;
    let config = app.write_config();
    let dir = with_include(&config);
    let twin = zoom_entry(&app.sandbox, &specs[1], None);
    std::fs::write(dir.join("accounts.d/a.toml"), &twin).expect("write a");
    std::fs::write(dir.join("accounts.d/b.toml"), &twin).expect("write b");

    for args in [&["collect"][..], &["check", "--offline"]] {
        let out = run(&config.path, args).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.output());
        assert!(
            out.stderr.contains(
                "accounts.d/b.toml: zoom[0].name: \"twin\" is already used by zoom[0].name in accounts.d/a.toml"
            ) && out.stderr.contains(
                "accounts.d/b.toml: zoom[0].account_id: the same Zoom account_id as zoom[0].account_id in accounts.d/a.toml (\"twin\"): one upstream account, one entry"
            ),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(!db.has_schema().await, "nothing was written");
    assert!(control.requests().is_empty(), "nothing was requested");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_offline_contacts_nothing_and_fails_on_an_unreadable_secret() {
    let specs = vec![zoom_account("hq", 10)];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rollcall.toml");
    // A database nobody listens on: offline must not need it.
    let port = free_port();
    let secret = dir.path().join("db-url");
    std::fs::write(
        &secret,
        format!("postgres://rollcall@127.0.0.1:{port}/rollcall\n"),
    )
    .expect("write db url");
    std::fs::write(
        &path,
        format!(
            "[database]\nurl_file = {:?}\n\n{}",
            secret.display().to_string(),
            zoom_entry(&sandbox, &specs[0], Some(&dir.path().join("zoom-secret")))
        ),
    )
    .expect("write config");

    let ok = run(&path, &["check", "--offline"]).await;
    assert_eq!(ok.code, 0, "{}", ok.output());
    assert!(
        ok.stdout
            .contains("ok    config: valid (1 zoom, 0 videosdk, 0 rocketchat account)"),
        "{}",
        ok.stdout
    );
    assert!(control.requests().is_empty(), "offline sent a request");

    std::fs::remove_file(dir.path().join("zoom-secret")).expect("remove secret");
    let bad = run(&path, &["check", "--offline"]).await;
    assert_eq!(bad.code, 2, "{}", bad.output());
    assert!(
        bad.stderr
            .contains("zoom[0].client_secret_file: cannot read"),
        "{}",
        bad.stderr
    );
    assert!(control.requests().is_empty(), "offline sent a request");
}

/// The attack an account file could mount: read the process environment (DATABASE_URL's password in it)
/// and send it as Basic auth to a host of its choosing. Every command refuses the file before anything is
/// read or sent, naming the file and the keys.
#[tokio::test(flavor = "multi_thread")]
async fn an_account_file_cannot_send_a_local_file_to_its_own_host() {
    let specs = vec![zoom_account("hq", 10), zoom_account("evil", 10)];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    // Another listener the main file never names: the file's author's host.
    let elsewhere = self::sandbox(specs.clone()).await;
    let elsewhere_control = elsewhere.control();
    let app = TestApp::new(sandbox).await.zoom(&specs[..1], 100);
    let db = &app.db;
    let config = app.write_config();
    let dir = with_include(&config);
    let evil = zoom_entry(&elsewhere, &specs[1], None).replace(
        &format!("client_secret = \"{}\"", specs[1].client_secret),
        "client_secret_file = \"/proc/self/environ\"",
    );
    std::fs::write(dir.join("accounts.d/evil.toml"), evil).expect("write evil");

    for args in [&["check"][..], &["check", "--offline"], &["collect"]] {
        let out = run(&config.path, args).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.output());
        for expected in [
            "accounts.d/evil.toml: zoom[0].client_secret_file: \"/proc/self/environ\"",
            "is under /proc: an included file may not read it",
            "accounts.d/evil.toml: zoom[0].oauth_url: ",
            "accounts.d/evil.toml: zoom[0].api_url: ",
            "is not a host an included file may send credentials to",
        ] {
            assert!(
                out.stderr.contains(expected),
                "{args:?}: {expected}: {}",
                out.stderr
            );
        }
    }
    assert!(!db.has_schema().await, "nothing was written");
    assert!(control.requests().is_empty(), "nothing was requested");
    assert!(
        elsewhere_control.requests().is_empty(),
        "nothing reached the file's host"
    );
}
