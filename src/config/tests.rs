use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use super::*;

const EXAMPLE: &str = include_str!("../../config/rollcall.example.toml");

const MINIMAL: &str = r#"
[database]
url = "postgres://rollcall:dbpass-1234@127.0.0.1/rollcall"

[[zoom]]
name = "main"
account_id = "acc"
client_id = "cid"
client_secret = "zoom-secret-1234"

[[videosdk]]
name = "sdk"
api_key = "key"
api_secret = "sdk-secret-1234"

[[rocketchat]]
name = "chat"
url = "https://chat.example.com/"
user_id = "uid"
auth_token = "rc-token-1234"
"#;

const SECRETS: [&str; 4] = [
    "dbpass-1234",
    "zoom-secret-1234",
    "sdk-secret-1234",
    "rc-token-1234",
];

/// `"NAME=value NAME=value"`: no value here holds a blank.
fn env(vars: &str) -> Vec<(String, String)> {
    let pair = |var: &str| {
        var.split_once('=')
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
    };
    vars.split_whitespace().filter_map(pair).collect()
}

fn parse(text: &str, vars: &str) -> Config {
    Config::from_toml_str(text, env(vars)).unwrap()
}

fn load(path: &Path, vars: &str) -> Config {
    Config::load_with_env(path, env(vars)).unwrap()
}

fn invalid(result: Result<Config, ConfigError>) -> Vec<String> {
    match result {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(ConfigError::Invalid { problems }) => problems,
        Err(other) => panic!("expected Invalid, got {other}"),
    }
}

fn problems(text: &str, vars: &str) -> Vec<String> {
    invalid(Config::from_toml_str(text, env(vars)))
}

fn load_problems(path: &Path, vars: &str) -> Vec<String> {
    invalid(Config::load_with_env(path, env(vars)))
}

fn has(found: &[String], expected: &str) {
    assert!(
        found.iter().any(|p| p == expected),
        "expected {expected:?} in {found:#?}"
    );
}

/// Asserts that `found` is one problem, starting with `start`.
fn only(found: &[String], start: &str) {
    assert!(
        found.len() == 1 && found[0].starts_with(start),
        "{found:#?}"
    );
}

/// `MINIMAL` with `from` replaced by `to` (once), `\n` written as in Rust; `from` empty: `to` alone.
fn edit(from: &str, to: &str) -> String {
    assert!(MINIMAL.contains(from), "{from}");
    match from {
        "" => to.to_owned(),
        _ => MINIMAL.replacen(from, &to.replace("\\n", "\n"), 1),
    }
}

/// `MINIMAL` with every `from | to` of `pairs` applied as by [`edit`].
fn edits(pairs: &[&str]) -> String {
    let pairs = pairs.iter().filter_map(|pair| pair.split_once(" | "));
    pairs.fold(MINIMAL.to_owned(), |text, (from, to)| {
        assert!(text.contains(from), "{from}");
        text.replacen(from, &to.replace("\\n", "\n"), 1)
    })
}

fn temp_file(content: impl AsRef<[u8]>) -> (tempfile::NamedTempFile, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), content).unwrap();
    let path = file.path().display().to_string();
    (file, path)
}

fn debug(value: &impl std::fmt::Debug) -> String {
    format!("{value:?}")
}

#[test]
fn minimal_file_loads_with_defaults() {
    let (file, _) = temp_file(MINIMAL);
    let c = load(file.path(), "");
    let db_url = c.database.url.expose_secret();
    assert_eq!(db_url, "postgres://rollcall:dbpass-1234@127.0.0.1/rollcall");
    assert_eq!(debug(&(c.database.max_connections, &c.schedule, &c.http, &c.log, &c.collector)), "(16, ScheduleConfig { cron: \"0 15 3 * * *\", run_on_start: true }, HttpConfig { listen: 127.0.0.1:9187, timeout_secs: 30, max_body_mib: 32 }, LogConfig { format: Auto, level: \"info\" }, CollectorConfig { lease_secs: 60, max_retries: 4, retry_base_ms: 500, windows_in_flight: 16, max_windows_in_flight: 32 })");
    assert_eq!(debug(&c.zoom[0]), "ZoomAccount { name: \"main\", streams: None, account_id: \"acc\", client_id: \"cid\", client_secret: SecretBox<str>([REDACTED]), oauth_url: \"https://zoom.us/oauth/token\", api_url: \"https://api.zoom.us/v2\", plan: Pro, page_size: 300, settle_days: 2, horizon_days: None, limits: ZoomLimits { heavy_per_second: None, resource_intensive_per_minute: None, daily_requests: None } }");
    assert_eq!(c.zoom[0].client_secret.expose_secret(), "zoom-secret-1234");
    assert_eq!(c.videosdk[0].api_secret.expose_secret(), "sdk-secret-1234");
    assert_eq!(debug(&c.videosdk[0]), "VideoSdkAccount { name: \"sdk\", streams: None, api_key: \"key\", api_secret: SecretBox<str>([REDACTED]), api_url: \"https://api.zoom.us/v2\", plan: Pro, page_size: 300, settle_days: 2, horizon_days: None, limits: ZoomLimits { heavy_per_second: None, resource_intensive_per_minute: None, daily_requests: None } }");
    // The URL's trailing slash is removed; the zone is UTC unless set.
    let chat = &c.rocketchat[0];
    assert_eq!(chat.auth_token.expose_secret(), "rc-token-1234");
    assert_eq!(debug(chat), "RocketChatWorkspace { name: \"chat\", streams: None, url: \"https://chat.example.com\", user_id: \"uid\", auth_token: SecretBox<str>([REDACTED]), timezone: UTC, window_days: 7, lookback_days: 4, retention_days: 44, requests_per_minute: None }");
}

#[test]
fn every_key_set_explicitly() {
    let text = r#"
        database = { url = "postgresql://db/rollcall", max_connections = 3 }
        schedule = { cron = "0 */5 * * * *", run_on_start = false }
        http = { listen = "0.0.0.0:8080", timeout_secs = 5, max_body_mib = 2 }
        log = { format = "json", level = "rollcall=debug,info" }
        collector = { lease_secs = 3, max_retries = 0, retry_base_ms = 10, windows_in_flight = 3, max_windows_in_flight = 5 }
        zoom = [{ name = "a.b-c_1", streams = ["zoom_daily_usage"], account_id = "x", client_id = "y", client_secret = "z", api_url = "http://127.0.0.1:8081/v2/", oauth_url = "http://127.0.0.1:8081/oauth/token", plan = "business", page_size = 1, settle_days = 0, horizon_days = 30, heavy_per_second = 0, resource_intensive_per_minute = 5, daily_requests = 100 }]
        rocketchat = [{ name = "chat", streams = ["rc_active_users"], url = "http://127.0.0.1:3000", user_id = "u", auth_token = "t", timezone = "America/Sao_Paulo", window_days = 31, lookback_days = 5, retention_days = 45, requests_per_minute = 0 }]
    "#;
    let c = parse(text, "");
    assert_eq!(debug(&(c.database.max_connections, &c.schedule, &c.http, &c.log, &c.collector)), "(3, ScheduleConfig { cron: \"0 */5 * * * *\", run_on_start: false }, HttpConfig { listen: 0.0.0.0:8080, timeout_secs: 5, max_body_mib: 2 }, LogConfig { format: Json, level: \"rollcall=debug,info\" }, CollectorConfig { lease_secs: 3, max_retries: 0, retry_base_ms: 10, windows_in_flight: 3, max_windows_in_flight: 5 })");
    let zoom = &c.zoom[0];
    assert_eq!(debug(zoom), "ZoomAccount { name: \"a.b-c_1\", streams: Some([\"zoom_daily_usage\"]), account_id: \"x\", client_id: \"y\", client_secret: SecretBox<str>([REDACTED]), oauth_url: \"http://127.0.0.1:8081/oauth/token\", api_url: \"http://127.0.0.1:8081/v2\", plan: Business, page_size: 1, settle_days: 0, horizon_days: Some(30), limits: ZoomLimits { heavy_per_second: Some(0), resource_intensive_per_minute: Some(5), daily_requests: Some(100) } }");
    assert_eq!(debug(&zoom.limits.resolve(zoom.plan)), "ResolvedLimits { heavy_per_second: 0, resource_intensive_per_minute: 5, daily_requests: 100 }");
    assert_eq!(debug(&c.rocketchat[0]), "RocketChatWorkspace { name: \"chat\", streams: Some([\"rc_active_users\"]), url: \"http://127.0.0.1:3000\", user_id: \"u\", auth_token: SecretBox<str>([REDACTED]), timezone: America/Sao_Paulo, window_days: 31, lookback_days: 5, retention_days: 45, requests_per_minute: Some(0) }");
}

#[test]
fn example_file_is_valid_and_documents_every_key() {
    let c = parse(EXAMPLE, "");
    let entries = (c.zoom.len(), c.videosdk.len(), c.rocketchat.len());
    assert_eq!(entries, (1, 1, 1));
    // Every key of the schema, so a key added to a struct fails here until the example documents it.
    let mut keys = vec!["include".to_owned()];
    for section in problems::sections() {
        let fields = problems::keys(section);
        assert!(
            !fields.is_empty(),
            "problems::keys does not know [{section}]"
        );
        for key in fields {
            match *key {
                "limits" => keys.extend(de::LIMITS.map(str::to_owned)),
                _ => keys.push(key.to_string()),
            }
        }
        keys.extend(de::secret_of(section).map(|secret| format!("{secret}_file")));
    }
    for key in keys {
        let documented = EXAMPLE.contains(&format!("{key} = "));
        assert!(documented, "the example does not document {key}");
    }
}

#[test]
fn no_accounts_is_valid() {
    let c = parse("[database]\nurl = \"postgres://localhost/rollcall\"\n", "");
    assert!(c.zoom.is_empty() && c.videosdk.is_empty() && c.rocketchat.is_empty());
}

#[test]
fn environment_overrides_the_file() {
    // An empty value counts as unset (ROLLCALL__LOG__LEVEL); other variables are not ours.
    let c = parse(MINIMAL, "ROLLCALL__SCHEDULE__RUN_ON_START=false ROLLCALL__COLLECTOR__LEASE_SECS=30 ROLLCALL__ZOOM__0__CLIENT_SECRET=0123456789 ROLLCALL__ZOOM__0__PLAN=business ROLLCALL__ZOOM__0__HORIZON_DAYS=90 ROLLCALL__ROCKETCHAT__0__TIMEZONE=Europe/Berlin ROLLCALL__DATABASE__URL=postgres://loses/x DATABASE_URL=postgres://wins/y ROLLCALL__LOG__LEVEL= ROLLCALL_CONFIG=ignored.toml HOME=/root");
    assert!(!c.schedule.run_on_start);
    assert_eq!(c.collector.lease_secs, 30);
    let secret = c.zoom[0].client_secret.expose_secret();
    assert_eq!(secret, "0123456789", "digits stay a string");
    let plan = (c.zoom[0].plan, c.zoom[0].horizon_days);
    assert_eq!(plan, (Plan::Business, Some(90)));
    assert_eq!(c.rocketchat[0].timezone, chrono_tz::Europe::Berlin);
    assert_eq!(c.database.url.expose_secret(), "postgres://wins/y");
    assert_eq!(c.log.level, "info");
}

#[test]
fn environment_can_add_entries_and_sections() {
    let text = "zoom = [{ name = \"first\", account_id = \"a\", client_id = \"c\", client_secret = \"s\" }]";
    let c = parse(text, "ROLLCALL__DATABASE__URL=postgres://db/x ROLLCALL__ROCKETCHAT__0__NAME=chat ROLLCALL__ROCKETCHAT__0__URL=https://chat.example.com ROLLCALL__ROCKETCHAT__0__USER_ID=u ROLLCALL__ROCKETCHAT__0__AUTH_TOKEN=t ROLLCALL__ZOOM__1__NAME=second ROLLCALL__ZOOM__1__ACCOUNT_ID=b ROLLCALL__ZOOM__1__CLIENT_ID=c ROLLCALL__ZOOM__1__CLIENT_SECRET=s");
    assert_eq!(c.database.url.expose_secret(), "postgres://db/x");
    assert_eq!(c.rocketchat[0].name, "chat");
    assert_eq!(zoom_names(&c), ["first", "second"]);
}

#[test]
fn environment_problems_name_the_variable() {
    // `VARIABLE=value | a problem MINIMAL then has`
    let cases = [
        r#"ROLLCALL__COLLECTOR__LEASE_SECS=abc | collector.lease_secs: expected an integer, got "abc" (from ROLLCALL__COLLECTOR__LEASE_SECS)"#,
        r#"ROLLCALL__SCHEDULE__RUN_ON_START=yes | schedule.run_on_start: expected true or false, got "yes" (from ROLLCALL__SCHEDULE__RUN_ON_START)"#,
        "ROLLCALL__ZOOM__0__CLINET_ID=x | zoom[0].clinet_id: unknown key (from ROLLCALL__ZOOM__0__CLINET_ID)",
        r#"ROLLCALL__ZOOM__X__NAME=x | ROLLCALL__ZOOM__X__NAME: zoom is an array: expected an index (0, 1, ...) after it, got "x""#,
        "ROLLCALL__DATABASE__0=x | ROLLCALL__DATABASE__0: database is a table, not an array: cannot index it with 0",
        "ROLLCALL__ZOOM__1000__NAME=x | ROLLCALL__ZOOM__1000__NAME: index 1000 is too large (at most 999)",
        "ROLLCALL____X=1 | ROLLCALL____X: malformed name (expected ROLLCALL__SECTION__KEY)",
        // A gap left by an index past the end is reported under its own index.
        "ROLLCALL__ZOOM__2__NAME=z | zoom[1].name: missing (in an entry created by ROLLCALL__ZOOM__2__NAME)",
        "ROLLCALL__ZOOM__2__NAME=z | zoom[2].account_id: missing (in an entry created by ROLLCALL__ZOOM__2__NAME)",
    ];
    for case in cases {
        let (var, expected) = case.split_once(" | ").unwrap();
        has(&problems(MINIMAL, var), expected);
    }
}

#[test]
fn secrets_from_files() {
    let [(_z, zoom), (_t, token), (_d, db)] =
        ["from-file\n\n", "token\r\n", "postgres://u:p@db/x"].map(temp_file);
    let text = format!("database = {{ url_file = {db:?} }}\nzoom = [{{ name = \"main\", account_id = \"a\", client_id = \"c\", client_secret_file = {zoom:?} }}]\nrocketchat = [{{ name = \"chat\", url = \"https://chat.example.com\", user_id = \"u\", auth_token_file = {token:?} }}]");
    let c = parse(&text, "");
    assert_eq!(c.database.url.expose_secret(), "postgres://u:p@db/x");
    let secret = c.zoom[0].client_secret.expose_secret();
    assert_eq!(secret, "from-file\n", "only one newline is trimmed");
    assert_eq!(c.rocketchat[0].auth_token.expose_secret(), "token");

    // An environment variable for the secret replaces the file's `_file`, and the other way round.
    let c = parse(&text, "ROLLCALL__ZOOM__0__CLIENT_SECRET=from-env");
    assert_eq!(c.zoom[0].client_secret.expose_secret(), "from-env");
    let var = format!("ROLLCALL__ZOOM__0__CLIENT_SECRET_FILE={zoom}");
    let c = parse(MINIMAL, &var);
    assert_eq!(c.zoom[0].client_secret.expose_secret(), "from-file\n");
    let c = parse(&text, "DATABASE_URL=postgres://env/x");
    assert_eq!(c.database.url.expose_secret(), "postgres://env/x");
}

#[test]
fn secret_file_problems() {
    let secret = "client_secret = \"zoom-secret-1234\"";
    let both = format!("{secret}\\nclient_secret_file = \"/run/secrets/zoom\"");
    let expected = "zoom[0].client_secret: set together with zoom[0].client_secret_file; keep one";
    has(&problems(&edit(secret, &both), ""), expected);

    let token = "auth_token = \"rc-token-1234\"";
    let missing = edit(token, "auth_token_file = \"/nonexistent/rc-token\"");
    let expected = r#"rocketchat[0].auth_token_file: cannot read "/nonexistent/rc-token": "#;
    only(&problems(&missing, ""), expected);

    let (_empty, path) = temp_file("\n");
    let text = edit(
        "api_secret = \"sdk-secret-1234\"",
        &format!("api_secret_file = {path:?}"),
    );
    let expected = format!("videosdk[0].api_secret_file: {path:?} is empty");
    has(&problems(&text, ""), &expected);

    // The content of an unreadable-as-text file is not echoed either.
    let (_binary, path) = temp_file(b"zoom-secret-1234\xff");
    let found = problems(&edit(secret, &format!("client_secret_file = {path:?}")), "").join("\n");
    let named = found.contains("zoom[0].client_secret_file: ");
    assert!(named && found.contains("is not valid UTF-8"), "{found}");
    assert!(!found.contains("zoom-secret-1234"), "{found}");
}

#[test]
fn missing_file_names_the_path() {
    let err = Config::load_with_env(Path::new("/nonexistent/rollcall.toml"), []).unwrap_err();
    let shown = err.to_string();
    let named = shown.starts_with("cannot read config file /nonexistent/rollcall.toml: ");
    assert!(matches!(err, ConfigError::Read { .. }) && named, "{err}");
}

#[test]
fn each_problem_names_its_key() {
    // `text of MINIMAL | what replaces it | every problem the result has, separated by &`
    let cases = [
        r#"client_id = "cid" | client_id = "cid"\nplan = "gold" | zoom[0].plan: expected "pro" or "business", got "gold""#,
        r#"client_secret = "zoom-secret-1234" |  | zoom[0].client_secret: missing (set it or client_secret_file)"#,
        r#"client_secret = "zoom-secret-1234" | client_secret = "" | zoom[0].client_secret: missing (set it or client_secret_file)"#,
        r#"account_id = "acc" | account_id = "" | zoom[0].account_id: missing"#,
        r#"client_id = "cid" | clinet_id = "cid" | zoom[0].client_id: missing & zoom[0].clinet_id: unknown key"#,
        r#"user_id = "uid" | user_id = "uid"\ntimezone = "Mars/Base" | rocketchat[0].timezone: unknown time zone "Mars/Base""#,
        r#"user_id = "uid" | user_id = "uid"\nwindow_days = 0 | rocketchat[0].window_days: must be between 1 and 31, got 0"#,
        r#"user_id = "uid" | user_id = "uid"\nretention_days = 46 | rocketchat[0].retention_days: must be between 1 and 45, got 46"#,
        r#"user_id = "uid" | user_id = "uid"\nlookback_days = 10\nretention_days = 10 | rocketchat[0].lookback_days: must be less than retention_days (10), got 10"#,
        r#"user_id = "uid" | user_id = "uid"\nlookback_days = 3 | rocketchat[0].lookback_days: must be at least 4, got 3: the server re-aggregates up to three days back, so days younger than 4 days are not final"#,
        r#"user_id = "uid" | user_id = "uid"\nlookback_days = 0\nretention_days = 1 | rocketchat[0].lookback_days: must be at least 4, got 0: the server re-aggregates up to three days back, so days younger than 4 days are not final"#,
        r#"user_id = "uid" | user_id = "uid"\nrequests_per_minute = -1 | rocketchat[0].requests_per_minute: must be at least 0, got -1"#,
        r#"url = "https://chat.example.com/" | url = "ftp://chat.example.com" | rocketchat[0].url: expected an http(s) URL, got "ftp://chat.example.com""#,
        r#"url = "https://chat.example.com/" | url = "" | rocketchat[0].url: missing"#,
        r#"url = "https://chat.example.com/" | url = "https://chat.example.com/?x=1" | rocketchat[0].url: must not have a query or fragment, got "https://chat.example.com/?x=1""#,
        r#"api_key = "key" | api_key = "key"\napi_url = "not a url" | videosdk[0].api_url: expected an http(s) URL, got "not a url" (relative URL without a base)"#,
        r#"api_key = "key" | api_key = "key"\npage_size = 301 | videosdk[0].page_size: must be between 1 and 300, got 301"#,
        r#"api_key = "key" | api_key = "key"\nsettle_days = "2" | videosdk[0].settle_days: expected an integer, got "2""#,
        r#"api_key = "key" | api_key = 42 | videosdk[0].api_key: expected a string, got 42"#,
        r#"user_id = "uid" | user_id = 1979-05-27 | rocketchat[0].user_id: expected a string, got 1979-05-27"#,
        r#"auth_token = "rc-token-1234" | auth_token = 1979-05-27 | rocketchat[0].auth_token: expected a string, got a date-time"#,
        // A date-time under any key is reported in the words of the key's type.
        r#"[database] | [log]\nformat = 1979-05-27\n[database] | log.format: expected a string, got 1979-05-27"#,
        r#"[database] | [database]\nmax_connections = 1979-05-27 | database.max_connections: expected an integer, got 1979-05-27"#,
        r#"client_id = "cid" | client_id = "cid"\nheavy_per_second = 07:32:00 | zoom[0].heavy_per_second: expected an integer, got 07:32:00"#,
        r#"client_secret = "zoom-secret-1234" | client_secret_file = 1979-05-27 | zoom[0].client_secret_file: expected a file path, got 1979-05-27"#,
        r#"name = "sdk" | name = "my sdk" | videosdk[0].name: expected only letters, digits, "_", "." and "-", got "my sdk""#,
        r#"name = "sdk" | name = "main" | videosdk[0].name: "main" is already used by zoom[0].name"#,
        r#"name = "chat" | name = "main" | rocketchat[0].name: "main" is already used by zoom[0].name"#,
        r#"name = "chat" |  | rocketchat[0].name: missing"#,
        r#"[database] | [database]\nmax_connections = 0 | database.max_connections: must be between 1 and 1000, got 0"#,
        r#"[database] | [database]\nurl_file = "/x" | database.url: set together with database.url_file; keep one"#,
        r#"[database] | [schedule]\ncron = "0 3 * * *"\n[database] | schedule.cron: expected 6 fields (seconds first), got 5"#,
        r#"[database] | [schedule]\ncron = "0 61 3 * * *"\n[database] | schedule.cron: cannot parse "0 61 3 * * *" (fields: second minute hour day-of-month month day-of-week)"#,
        r#"[database] | [schedule]\nrun_on_start = "true"\n[database] | schedule.run_on_start: expected true or false, got "true""#,
        r#"[database] | [http]\nlisten = "localhost:80"\n[database] | http.listen: expected an IP address and port such as "127.0.0.1:9187", got "localhost:80""#,
        r#"[database] | [http]\ntimeout_secs = 601\n[database] | http.timeout_secs: must be between 1 and 600, got 601"#,
        r#"[database] | [http]\nmax_body_mib = 0\n[database] | http.max_body_mib: must be between 1 and 4096, got 0"#,
        r#"[database] | [log]\nformat = "xml"\n[database] | log.format: expected "auto", "text" or "json", got "xml""#,
        r#"[database] | [log]\nlevel = "rollcall=loud"\n[database] | log.level: expected a filter such as "info" or "rollcall=debug,info", got "rollcall=loud""#,
        r#"[database] | [collector]\nlease_secs = "abc"\n[database] | collector.lease_secs: expected an integer, got "abc""#,
        r#"[database] | [collector]\nlease_secs = 2\n[database] | collector.lease_secs: must be between 3 and 86400, got 2"#,
        r#"[database] | [collector]\nlease_secs = 1.5\n[database] | collector.lease_secs: expected an integer, got 1.5"#,
        r#"[database] | [collectr]\n[database] | collectr: unknown key"#,
        r#"[database] | [http]\nport = 80\n[database] | http.port: unknown key"#,
        r#"[database] | http = 80\n[database] | http: expected a table ([http]), got 80"#,
        r#"[[zoom]] | [zoom] | zoom: expected an array of tables ([[zoom]]), got a table"#,
        // The database URL's problems do not show it; `text` empty: the whole file.
        "postgres://rollcall: | mysql://rollcall: | database.url: expected a postgres:// or postgresql:// URL",
        r#"url = "postgres://rollcall:dbpass-1234@127.0.0.1/rollcall" | url = 1234 | database.url: expected a string, got an integer"#,
        " |  | database.url: missing (set it, url_file or DATABASE_URL)",
    ];
    for case in cases {
        let [from, to, expected]: [&str; 3] =
            case.split(" | ").collect::<Vec<_>>().try_into().unwrap();
        let found = problems(&edit(from.trim(), to.trim()), "");
        assert_eq!(found, expected.split(" & ").collect::<Vec<_>>());
    }
}

#[test]
fn all_problems_reported_at_once() {
    let text = r#"
        database = { url = "postgres://u:dbpass-1234@db/x", typo = 1 }
        schedule = { cron = "* * * * *" }
        collector = { lease_secs = "abc" }
        zoom = [{ name = "main", account_id = "a", client_id = "c", client_secret = "zoom-secret-1234" }, { name = "main", account_id = "a", client_id = "c", plan = "gold" }]
        rocketchat = [{ name = "chat", url = "https://chat.example.com", user_id = "u", auth_token = "rc-token-1234", timezone = "Mars/Base" }]
    "#;
    let found = problems(text, "");
    assert_eq!(
        found,
        [
            "database.typo: unknown key",
            "schedule.cron: expected 6 fields (seconds first), got 5",
            r#"collector.lease_secs: expected an integer, got "abc""#,
            "zoom[1].client_secret: missing (set it or client_secret_file)",
            r#"zoom[1].plan: expected "pro" or "business", got "gold""#,
            r#"rocketchat[0].timezone: unknown time zone "Mars/Base""#,
            r#"zoom[1].name: "main" is already used by zoom[0].name"#,
            r#"zoom[1].account_id: the same Zoom account_id as zoom[0].account_id ("main"): one upstream account, one entry (two would collect it twice under two names)"#,
        ]
    );
    let message = ConfigError::Invalid { problems: found }.to_string();
    assert_eq!(message.lines().count(), 8);
}

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    let shown = debug(&parse(MINIMAL, ""));
    assert!(!SECRETS.iter().any(|s| shown.contains(s)), "{shown}");

    // Everything about every secret wrong except its value: types, unknown siblings, bad URLs.
    let secret = "client_secret = \"zoom-secret-1234\"";
    let bad = edits(&[
        r#"client_secret = "zoom-secret-1234" | client_secret = "zoom-secret-1234"\nclient_secret_file = "/x""#,
        r#"auth_token = "rc-token-1234" | auth_token = ["rc-token-1234"]"#,
        "postgres://rollcall:dbpass-1234 | mysql://rollcall:dbpass-1234",
        r#"api_key = "key" | api_key = "key"\napi_url = "https://user:sdk-secret-1234@example.com""#,
    ]);
    let err = Config::from_toml_str(&bad, []).unwrap_err();
    let shown = format!("{err}\n{err:?}");
    let lines: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
    has(&lines, "videosdk[0].api_url: must not contain credentials");
    has(
        &lines,
        "rocketchat[0].auth_token: expected a string, got an array",
    );
    assert!(!SECRETS.iter().any(|s| shown.contains(s)), "{shown}");

    // From the environment, with the wrong type.
    let vars = "ROLLCALL__ZOOM__0__CLIENT_SECRET=zoom-secret-1234 ROLLCALL__ZOOM__0__CLIENT_SECRET_FILE=/x";
    let err = problems(MINIMAL, vars).join("\n");
    let expected =
        err.contains("zoom[0].client_secret: set together with zoom[0].client_secret_file");
    assert!(expected && !err.contains("zoom-secret-1234"), "{err}");

    // A syntax error on a secret's line shows the position, not the line.
    let broken = edit(secret, "client_secret = \"zoom-secret-1234");
    let err = Config::from_toml_str(&broken, []).unwrap_err().to_string();
    let at = err.starts_with("<config>:9:");
    assert!(at && !err.contains("zoom-secret-1234"), "{err}");
}

#[test]
fn limits_resolve_against_the_plan() {
    let none = ZoomLimits::default();
    let some = ZoomLimits {
        heavy_per_second: Some(0),
        daily_requests: Some(5),
        ..none
    };
    let resolved = [
        none.resolve(Plan::Pro),
        none.resolve(Plan::Business),
        some.resolve(Plan::Business),
    ];
    assert_eq!(debug(&resolved), "[ResolvedLimits { heavy_per_second: 10, resource_intensive_per_minute: 10, daily_requests: 30000 }, ResolvedLimits { heavy_per_second: 40, resource_intensive_per_minute: 20, daily_requests: 60000 }, ResolvedLimits { heavy_per_second: 0, resource_intensive_per_minute: 20, daily_requests: 5 }]");
}

// ---- include: accounts in files of their own ------------------------------------------------------------

const MAIN_WITH_INCLUDE: &str = "include = [\"accounts.d/*.toml\"]\n[database]\nurl = \"postgres://rollcall@127.0.0.1/rollcall\"\n[[zoom]]\nname = \"main\"\naccount_id = \"acc\"\nclient_id = \"cid\"\nclient_secret = \"zoom-secret-1234\"\n";

/// A config directory holding `rollcall.toml` and the given files (paths relative to it).
fn config_dir(main: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("accounts.d")).unwrap();
    for (name, content) in files.iter().chain([&("rollcall.toml", main)]) {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let main = dir.path().join("rollcall.toml");
    (dir, main)
}

fn zoom_entry(name: &str, extra: &str) -> String {
    format!("[[zoom]]\nname = \"{name}\"\naccount_id = \"{name}-acc\"\nclient_id = \"cid\"\nclient_secret = \"s-1234\"\n{extra}\n")
}

/// `MAIN_WITH_INCLUDE` letting included files use the self-hosted Rocket.Chat of these tests.
fn main_allowing_chat() -> String {
    format!("{MAIN_WITH_INCLUDE}[include_policy]\nhosts = [\"chat.example.com\"]\n")
}

fn zoom_names(c: &Config) -> Vec<&str> {
    c.zoom.iter().map(|a| a.name.as_str()).collect()
}

#[test]
fn included_accounts_follow_the_main_files_in_sorted_path_order() {
    let chat = "[[rocketchat]]\nname = \"chat-b\"\nurl = \"https://chat.example.com\"\nuser_id = \"u\"\nauth_token = \"t-1234\"\n";
    let b = zoom_entry("b1", "") + chat;
    let sdk = "[[videosdk]]\nname = \"sdk-a\"\napi_key = \"k\"\napi_secret = \"s-1234\"\n";
    let a = zoom_entry("a1", "plan = \"business\"") + sdk;
    // Written b first: the order comes from the sorted paths, not from the directory listing.
    let notes = ("accounts.d/notes.txt", "not toml, not matched");
    let (dir, main) = config_dir(
        &main_allowing_chat(),
        &[("accounts.d/b.toml", &b), ("accounts.d/a.toml", &a), notes],
    );
    let c = load(&main, "");
    assert_eq!(zoom_names(&c), ["main", "a1", "b1"]);
    assert_eq!(c.zoom[1].plan, Plan::Business);
    let names = (c.videosdk[0].name.as_str(), c.rocketchat[0].name.as_str());
    assert_eq!(names, ("sdk-a", "chat-b"));
    let included = ["accounts.d/a.toml", "accounts.d/b.toml"].map(|f| dir.path().join(f));
    assert_eq!(c.included, included);
}

#[test]
fn included_file_problems_name_the_file_all_at_once() {
    let campus = zoom_entry("campus", "plan = \"gold\"\ncolour = \"red\"");
    let other = format!(
        "include = [\"more/*.toml\"]\n{}[database]\nurl = \"postgres://x@h/db\"\n",
        zoom_entry("other", "")
    );
    let broken = ("accounts.d/broken.toml", "[[zoom]]\nname = \"x\n");
    let files = [
        ("accounts.d/campus.toml", campus.as_str()),
        ("accounts.d/other.toml", &other),
        broken,
    ];
    let (_dir, main) = config_dir(&format!("{MAIN_WITH_INCLUDE}plan = \"silver\"\n"), &files);
    let found = load_problems(&main, "");
    let not_allowed =
        "not allowed in an included file (only [[zoom]], [[videosdk]] and [[rocketchat]] entries)";
    for expected in [
        "accounts.d/campus.toml: zoom[0].plan: expected \"pro\" or \"business\", got \"gold\"",
        "accounts.d/campus.toml: zoom[0].colour: unknown key",
        &format!("accounts.d/other.toml: database: {not_allowed}"),
        &format!("accounts.d/other.toml: include: {not_allowed}"),
        // The main file's own problem keeps its plain path.
        "zoom[0].plan: expected \"pro\" or \"business\", got \"silver\"",
    ] {
        has(&found, expected);
    }
    let syntax =
        |p: &String| p.starts_with("accounts.d/broken.toml:2:") && p.contains("invalid TOML");
    let syntax = found.iter().any(syntax);
    assert!(syntax, "a syntax error names the file and line: {found:#?}");
}

#[test]
fn one_included_file_with_one_problem() {
    let twice = zoom_entry("x", "") + &zoom_entry("x", "").replace("x-acc", "y-acc");
    // `accounts.d/a.toml` holding `file` has exactly the problem `expected`.
    for (file, expected) in [
        (
            "[zoom]\nname = \"x\"\n",
            "zoom: expected an array of tables ([[zoom]]), got a table",
        ),
        // A duplicate within one file names it once.
        (
            &twice,
            "zoom[1].name: \"x\" is already used by zoom[0].name",
        ),
    ] {
        let (_dir, main) = config_dir(MAIN_WITH_INCLUDE, &[("accounts.d/a.toml", file)]);
        assert_eq!(
            load_problems(&main, ""),
            [format!("accounts.d/a.toml: {expected}")]
        );
    }
}

#[test]
fn duplicate_names_across_files_name_both_files() {
    let a = zoom_entry("campus", "");
    let b = zoom_entry("ok", "") + &a.replace("campus-acc", "other-acc");
    let c = "[[rocketchat]]\nname = \"main\"\nurl = \"https://chat.example.com\"\nuser_id = \"u\"\nauth_token = \"t-1234\"\n";
    let files = [
        ("accounts.d/a.toml", a.as_str()),
        ("accounts.d/b.toml", &b),
        ("accounts.d/c.toml", c),
    ];
    let (_dir, main) = config_dir(&main_allowing_chat(), &files);
    let by_main = format!("zoom[0].name in {}", main.display());
    let expected = [
        "accounts.d/b.toml: zoom[1].name: \"campus\" is already used by zoom[0].name in accounts.d/a.toml".to_owned(),
        format!("accounts.d/c.toml: rocketchat[0].name: \"main\" is already used by {by_main}"),
    ];
    assert_eq!(load_problems(&main, ""), expected);
}

#[test]
fn a_glob_matching_nothing_is_fine_a_missing_plain_path_is_not() {
    let (dir, main) = config_dir(MAIN_WITH_INCLUDE, &[]);
    let c = load(&main, "");
    assert!(c.zoom.len() == 1 && c.included.is_empty());

    let plain = MAIN_WITH_INCLUDE.replace("accounts.d/*.toml", "accounts.toml");
    std::fs::write(&main, plain).unwrap();
    let path = dir.path().join("accounts.toml").display().to_string();
    let expected = format!("include[0]: no file at {path:?}");
    assert_eq!(load_problems(&main, ""), [expected]);
}

#[test]
fn include_must_be_a_list_of_patterns() {
    let list = "[\"accounts.d/*.toml\"]";
    let text = MAIN_WITH_INCLUDE.replace(list, "\"accounts.d/*.toml\"");
    let (_dir, main) = config_dir(&text, &[]);
    let expected = "include: expected an array of file patterns such as [\"accounts.d/*.toml\"], got \"accounts.d/*.toml\"";
    assert_eq!(load_problems(&main, ""), [expected]);
    std::fs::write(&main, MAIN_WITH_INCLUDE.replace(list, "[\"\", 3, \"[\"]")).unwrap();
    let found = load_problems(&main, "");
    let first = [
        "include[0]: missing (an empty pattern)",
        "include[1]: expected a string, got 3",
    ];
    assert_eq!(found[..2], first);
    only(&found[2..], "include[2]: invalid pattern \"[\"");
}

#[test]
fn absolute_patterns_and_the_main_file_itself() {
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("far.toml"), zoom_entry("far", "")).unwrap();
    let pattern = format!("{}/*.toml", elsewhere.path().display());
    // `*.toml` beside the main file matches the main file too: it is not read twice.
    let patterns = format!("[\"*.toml\", {pattern:?}]");
    let text = MAIN_WITH_INCLUDE.replace("[\"accounts.d/*.toml\"]", &patterns);
    let (_dir, main) = config_dir(&text, &[("near.toml", &zoom_entry("near", ""))]);
    let mut expected = vec!["main", "near", "far"];
    // Sorted by full path: the temp directories' names decide which file comes first.
    if elsewhere.path().join("far.toml") < main.with_file_name("near.toml") {
        expected.swap(1, 2);
    }
    assert_eq!(zoom_names(&load(&main, "")), expected);
}

#[test]
fn environment_indexes_the_merged_list() {
    let (a, b) = (zoom_entry("a1", ""), zoom_entry("b1", ""));
    let files = [("accounts.d/a.toml", a.as_str()), ("accounts.d/b.toml", &b)];
    let (_dir, main) = config_dir(MAIN_WITH_INCLUDE, &files);
    // zoom[0] is the main file's, zoom[1] the first included one's, zoom[2] the next.
    let c = load(&main, "ROLLCALL__ZOOM__2__PLAN=business");
    let got = (c.zoom[2].name.as_str(), c.zoom[2].plan, c.zoom[1].plan);
    assert_eq!(got, ("b1", Plan::Business, Plan::Pro));

    // A bad value set on an included entry names the file, its index there, and the variable.
    let expected = "accounts.d/a.toml: zoom[0].plan: expected \"pro\" or \"business\", got \"gold\" (from ROLLCALL__ZOOM__1__PLAN)";
    let found = load_problems(&main, "ROLLCALL__ZOOM__1__PLAN=gold");
    assert_eq!(found, [expected]);
}

#[test]
fn include_from_the_environment() {
    let (a, o) = (zoom_entry("a1", ""), zoom_entry("o1", ""));
    let files = [("accounts.d/a.toml", a.as_str()), ("other.toml", &o)];
    let (dir, main) = config_dir(MAIN_WITH_INCLUDE, &files);
    let c = load(&main, "ROLLCALL__INCLUDE=other.toml");
    assert_eq!(c.included, [dir.path().join("other.toml")]);
    assert_eq!(c.zoom[1].name, "o1");
    // Empty counts as unset: the file's list holds.
    assert_eq!(load(&main, "ROLLCALL__INCLUDE=").zoom[1].name, "a1");
    let expected = "ROLLCALL__INCLUDE__0: include is set as a whole, one pattern: ROLLCALL__INCLUDE=accounts.d/*.toml";
    let found = load_problems(&main, "ROLLCALL__INCLUDE__0=x.toml");
    assert_eq!(found, [expected]);
}

/// `MAIN_WITH_INCLUDE` whose `[include_policy]` lets included files read secrets in `dir`.
fn main_allowing(dir: &Path, more: &str) -> String {
    format!(
        "{MAIN_WITH_INCLUDE}[include_policy]\nsecret_dirs = [{:?}]\n{more}",
        dir.display().to_string()
    )
}

#[test]
fn secrets_from_files_in_included_files() {
    let (_secret, path) = temp_file("from-a-file-1234\n");
    let good = format!("[[zoom]]\nname = \"a1\"\naccount_id = \"a1-acc\"\nclient_id = \"cid\"\nclient_secret_file = {path:?}\n");
    let tmp = Path::new(&path).parent().unwrap();
    let (dir, main) = config_dir(&main_allowing(tmp, ""), &[("accounts.d/a.toml", &good)]);
    let c = load(&main, "");
    assert_eq!(c.zoom[1].client_secret.expose_secret(), "from-a-file-1234");

    let missing = dir.path().join("no-such-secret").display().to_string();
    let bad =
        format!("[[videosdk]]\nname = \"s\"\napi_key = \"k\"\napi_secret_file = {missing:?}\n");
    std::fs::write(dir.path().join("accounts.d/b.toml"), bad).unwrap();
    let expected =
        format!("accounts.d/b.toml: videosdk[0].api_secret_file: cannot read {missing:?}");
    only(&load_problems(&main, ""), &expected);
}

#[test]
fn a_star_does_not_match_a_leading_dot() {
    // A Kubernetes ConfigMap volume: the keys are symlinks beside `..data` and a timestamped directory.
    let text = MAIN_WITH_INCLUDE.replace("accounts.d/*.toml", "accounts.d/*");
    let a = zoom_entry("a1", "");
    let backup = ("accounts.d/.editor-backup.toml", "not = \"an account\"\n");
    let (dir, main) = config_dir(&text, &[("accounts.d/a.toml", &a), backup]);
    std::fs::create_dir(dir.path().join("accounts.d/..data")).unwrap();
    let included = load(&main, "").included;
    assert_eq!(included, [dir.path().join("accounts.d/a.toml")]);
}

// ---- include_policy: what an included file may do with a credential -------------------------------------

/// The issue's attack: an account file that reads the process environment and sends it elsewhere.
#[test]
fn an_included_file_cannot_read_proc_nor_send_to_another_host() {
    let evil = "[[zoom]]\nname = \"evil\"\naccount_id = \"evil-acc\"\nclient_id = \"cid\"\nclient_secret_file = \"/proc/self/environ\"\noauth_url = \"http://elsewhere.example:8080/oauth/token\"\n";
    let (_dir, main) = config_dir(MAIN_WITH_INCLUDE, &[("accounts.d/evil.toml", evil)]);
    let found = load_problems(&main, "");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with(
            "accounts.d/evil.toml: zoom[0].client_secret_file: \"/proc/self/environ\""
        ) && found[0].contains("is under /proc: an included file may not read it"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("accounts.d/evil.toml: zoom[0].oauth_url: \"http://elsewhere.example:8080\" is not a host an included file may send credentials to (allowed: https://api.zoom.us, https://zoom.us)"),
        "{found:#?}"
    );
    // The environment is the operator's: it may override both keys of the included entry.
    let (_secret, path) = temp_file("s-1234\n");
    let vars = format!("ROLLCALL__ZOOM__1__CLIENT_SECRET_FILE={path} ROLLCALL__ZOOM__1__OAUTH_URL=http://elsewhere.example:8080/oauth/token");
    let c = load(&main, &vars);
    assert_eq!(c.zoom[1].client_secret.expose_secret(), "s-1234");

    // Rocket.Chat's token file is confined the same way, whatever the host.
    let chat = "[[rocketchat]]\nname = \"c\"\nurl = \"https://chat.example.com\"\nuser_id = \"u\"\nauth_token_file = \"/proc/self/environ\"\n";
    let (_dir, main) = config_dir(&main_allowing_chat(), &[("accounts.d/chat.toml", chat)]);
    let found = load_problems(&main, "");
    only(&found, "accounts.d/chat.toml: rocketchat[0].auth_token_file: \"/proc/self/environ\" (it resolves to \"/proc/");
    assert!(
        found[0].ends_with("is under /proc: an included file may not read it"),
        "{found:#?}"
    );
    // The same keys in the main file are the operator's own choice.
    let own = evil.replace("name = \"evil\"", "name = \"own\"");
    let (_dir, main) = config_dir(&format!("{MAIN_WITH_INCLUDE}{own}"), &[]);
    assert_eq!(
        load(&main, "").zoom[1].oauth_url,
        "http://elsewhere.example:8080/oauth/token"
    );
}

#[test]
fn an_included_secret_must_resolve_inside_the_allowed_directories() {
    let secrets = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let inside = secrets.path().join("zoom");
    std::fs::write(&inside, "s-1234\n").unwrap();
    std::fs::write(outside.path().join("db"), "postgres://u:pw@db/x\n").unwrap();
    // A symlink in the allowed directory that leads out of it, and one that stays inside.
    let out_link = secrets.path().join("sneaky");
    std::os::unix::fs::symlink(outside.path().join("db"), &out_link).unwrap();
    let in_link = secrets.path().join("current");
    std::os::unix::fs::symlink(&inside, &in_link).unwrap();
    let entry = |name: &str, file: &Path| {
        format!("[[zoom]]\nname = \"{name}\"\naccount_id = \"{name}-acc\"\nclient_id = \"cid\"\nclient_secret_file = {:?}\n", file.display().to_string())
    };
    let ok = entry("a1", &inside) + &entry("a2", &in_link);
    let (dir, main) = config_dir(
        &main_allowing(secrets.path(), ""),
        &[("accounts.d/a.toml", &ok)],
    );
    let c = load(&main, "");
    assert_eq!(c.zoom[2].client_secret.expose_secret(), "s-1234");

    let bad = entry("b1", &out_link) + &entry("b2", &outside.path().join("db"));
    std::fs::write(dir.path().join("accounts.d/b.toml"), bad).unwrap();
    let found = load_problems(&main, "");
    let resolved = outside.path().canonicalize().unwrap().join("db");
    let first = format!(
        "accounts.d/b.toml: zoom[0].client_secret_file: {:?} (it resolves to {:?}) is outside the directories an included file may read secrets from ({}); the main file's include_policy.secret_dirs lists them",
        out_link.display().to_string(),
        resolved.display().to_string(),
        secrets.path().canonicalize().unwrap().display()
    );
    assert_eq!(found[0], first);
    assert!(
        found[1].starts_with("accounts.d/b.toml: zoom[1].client_secret_file: "),
        "{found:#?}"
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(!found.join("\n").contains("pw@db"), "{found:#?}");

    // By default only /run/secrets and /run/credentials: a temporary directory is outside.
    let (_dir, main) = config_dir(
        MAIN_WITH_INCLUDE,
        &[("accounts.d/a.toml", &entry("a1", &inside))],
    );
    let found = load_problems(&main, "");
    only(&found, "accounts.d/a.toml: zoom[0].client_secret_file: ");
    assert!(
        found[0].contains("(/run/secrets, /run/credentials)"),
        "{found:#?}"
    );
}

#[test]
fn included_hosts_come_from_zoom_the_main_file_or_its_allowlist() {
    let chat = |name: &str, url: &str| {
        format!("[[rocketchat]]\nname = \"{name}\"\nurl = \"{url}\"\nuser_id = \"{name}-u\"\nauth_token = \"t-1234\"\n")
    };
    let sdk = "[[videosdk]]\nname = \"sdk\"\napi_key = \"k\"\napi_secret = \"s-1234\"\napi_url = \"https://api.zoom.us/v2\"\n";
    let file = chat("campus", "https://chat.campus.example/") + sdk;
    let (dir, main) = config_dir(MAIN_WITH_INCLUDE, &[("accounts.d/a.toml", &file)]);
    let found = load_problems(&main, "");
    only(&found, "accounts.d/a.toml: rocketchat[0].url: \"https://chat.campus.example\" is not a host an included file may send credentials to");

    // Allowed by name (a bare host is https) ...
    let allow = main_allowing(
        Path::new("/run/secrets"),
        "hosts = [\"chat.campus.example\"]\n",
    );
    std::fs::write(&main, allow).unwrap();
    assert_eq!(load(&main, "").rocketchat[0].name, "campus");
    // ... but not over another scheme or port.
    let other = chat("campus", "http://chat.campus.example:8080");
    std::fs::write(dir.path().join("accounts.d/a.toml"), &other).unwrap();
    only(
        &load_problems(&main, ""),
        "accounts.d/a.toml: rocketchat[0].url: \"http://chat.campus.example:8080\" is not a host",
    );

    // A host the main file's own entries use is allowed; so is one the environment sets.
    let main_chat = format!(
        "{MAIN_WITH_INCLUDE}{}",
        chat("hq", "http://chat.campus.example:8080/")
    );
    std::fs::write(&main, main_chat).unwrap();
    assert_eq!(load(&main, "").rocketchat[1].name, "campus");
    std::fs::write(&main, MAIN_WITH_INCLUDE).unwrap();
    let c = load(
        &main,
        "ROLLCALL__ROCKETCHAT__0__URL=https://chat.env.example",
    );
    assert_eq!(c.rocketchat[0].url, "https://chat.env.example");
}

#[test]
fn include_policy_problems_name_the_key() {
    let text = format!("{MAIN_WITH_INCLUDE}[include_policy]\nsecret_dirs = [\"secrets\"]\nhosts = [\"https://chat.example.com/api\", \"ftp://x\"]\n");
    let (_dir, main) = config_dir(&text, &[]);
    let found = load_problems(&main, "");
    let hosts = "expected a host or an origin such as \"chat.example.com\" or \"http://127.0.0.1:3000\" (no path), got";
    assert_eq!(
        found,
        [
            "include_policy.secret_dirs[0]: expected an absolute directory, got \"secrets\""
                .to_owned(),
            format!("include_policy.hosts[0]: {hosts} \"https://chat.example.com/api\""),
            format!("include_policy.hosts[1]: {hosts} \"ftp://x\""),
        ]
    );
}

// ---- one upstream account, one entry -----------------------------------------------------------------------

#[test]
fn one_upstream_account_has_one_entry_whatever_the_files() {
    let chat = |name: &str, url: &str, user: &str| {
        format!("[[rocketchat]]\nname = \"{name}\"\nurl = \"{url}\"\nuser_id = \"{user}\"\nauth_token = \"t-1234\"\n")
    };
    let sdk = |name: &str, key: &str| {
        format!("[[videosdk]]\nname = \"{name}\"\napi_key = \"{key}\"\napi_secret = \"s-1234\"\n")
    };
    // Same Zoom account as the main file's, same SDK key twice in one file, same workspace and user
    // across files (a trailing slash and the host's case make no other server); another user of the
    // same workspace is another entry.
    let a = zoom_entry("again", "").replace("again-acc", "acc")
        + &sdk("s1", "key-1")
        + &sdk("s2", "key-1")
        + &chat("c1", "https://chat.example.com", "u1");
    let b = chat("c2", "https://CHAT.example.com/", "u1")
        + &chat("c3", "https://chat.example.com", "u2");
    let files = [("accounts.d/a.toml", a.as_str()), ("accounts.d/b.toml", &b)];
    let (_dir, main) = config_dir(&main_allowing_chat(), &files);
    let tail = "one upstream account, one entry (two would collect it twice under two names)";
    assert_eq!(
        load_problems(&main, ""),
        [
            format!("accounts.d/a.toml: zoom[0].account_id: the same Zoom account_id as zoom[0].account_id in {} (\"main\"): {tail}", main.display()),
            format!("accounts.d/a.toml: videosdk[1].api_key: the same Video SDK api_key as videosdk[0].api_key (\"s1\"): {tail}"),
            format!("accounts.d/b.toml: rocketchat[0].user_id: the same url and user_id as rocketchat[0].user_id in accounts.d/a.toml (\"c1\"): {tail}"),
        ]
    );
}

// ---- streams: per-account streams ----------------------------------------------------------------------------

#[test]
fn streams_name_streams_of_the_entrys_own_platform() {
    // `text of MINIMAL | what replaces it | every problem the result has, separated by &`
    let zoom = "a [[zoom]] entry has zoom_host_report, zoom_daily_usage";
    let sdk =
        "a [[videosdk]] entry has zoom_sdk_sessions, zoom_sdk_session_users, zoom_sdk_daily_usage";
    let cases = [
        format!(r#"client_id = "cid" | client_id = "cid"\nstreams = ["zoom_daily_usage", "zoom_hots_report"] | zoom[0].streams[1]: unknown stream "zoom_hots_report" ({zoom})"#),
        format!(r#"client_id = "cid" | client_id = "cid"\nstreams = ["zoom_sdk_sessions"] | zoom[0].streams[0]: "zoom_sdk_sessions" is a [[videosdk]] stream ({zoom})"#),
        format!(r#"client_id = "cid" | client_id = "cid"\nstreams = [] | zoom[0].streams: empty: list at least one stream ({zoom}), or leave the key out for all"#),
        r#"client_id = "cid" | client_id = "cid"\nstreams = "zoom_daily_usage" | "#.to_owned(),
        r#"client_id = "cid" | client_id = "cid"\nstreams = 3 | zoom[0].streams: expected an array of stream names such as ["zoom_host_report"]"#.to_owned(),
        r#"api_key = "key" | api_key = "key"\nstreams = ["zoom_sdk_session_users"] | videosdk[0].streams: zoom_sdk_session_users needs zoom_sdk_sessions: the users are walked from the session list"#.to_owned(),
        r#"api_key = "key" | api_key = "key"\nstreams = ["zoom_sdk_sessions", "zoom_sdk_daily_usage"] | videosdk[0].streams: zoom_sdk_sessions needs zoom_sdk_session_users: a month of sessions completes only with its sessions' users"#.to_owned(),
        format!(r#"api_key = "key" | api_key = "key"\nstreams = ["rc_active_users"] | videosdk[0].streams[0]: "rc_active_users" is a [[rocketchat]] stream ({sdk})"#),
        r#"user_id = "uid" | user_id = "uid"\nstreams = ["rc_active_users"] | "#.to_owned(),
    ];
    for case in cases {
        let [from, to, expected]: [&str; 3] =
            case.split(" | ").collect::<Vec<_>>().try_into().unwrap();
        let text = edit(from.trim(), to.trim());
        let expected: Vec<&str> = expected.split(" & ").filter(|e| !e.is_empty()).collect();
        match Config::from_toml_str(&text, []) {
            Ok(_) => assert!(expected.is_empty(), "{case}: valid"),
            Err(err) => assert_eq!(invalid(Err(err)), expected, "{case}"),
        }
    }
    // From the environment: names separated by commas.
    let c = parse(MINIMAL, "ROLLCALL__VIDEOSDK__0__STREAMS=zoom_sdk_daily_usage,zoom_sdk_sessions,zoom_sdk_session_users");
    let streams = c.videosdk[0].streams.as_deref().unwrap_or_default();
    assert_eq!(
        streams,
        [
            "zoom_sdk_daily_usage",
            "zoom_sdk_sessions",
            "zoom_sdk_session_users"
        ]
    );
    let found = problems(MINIMAL, "ROLLCALL__ZOOM__0__STREAMS=zoom_daily_usage,nope");
    has(
        &found,
        &format!("zoom[0].streams[1]: unknown stream \"nope\" ({zoom})"),
    );
}

// ---- the README stands alone ---------------------------------------------------------------------------------

/// A user's clone has only this repository: the README must not send them to the team's shared folder,
/// and must say what it took from there (the new keys, how compose secrets become readable).
#[test]
fn the_readme_stands_alone_and_documents_the_new_keys() {
    const README: &str = include_str!("../../README.md");
    for gone in ["../shared", "DESIGN.md", "DESIGN §"] {
        assert!(!README.contains(gone), "the README still mentions {gone}");
    }
    for needed in [
        "`include_policy.secret_dirs`",
        "`include_policy.hosts`",
        "`streams`",
        "sudo chown 10001:10001 secrets/",
    ] {
        assert!(README.contains(needed), "the README does not say {needed}");
    }
}
