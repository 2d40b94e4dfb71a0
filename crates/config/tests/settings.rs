//! Settings layering (defaults → `KYC_CONFIG` file → `KYC__…` environment) and
//! every validation rule, through `Settings::load_from`, which takes the
//! environment as an argument: no test here reads or changes the process's own.

#![allow(clippy::unwrap_used)]

use kyc_config::Settings;
use kyc_config::settings::SettingsError;
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A TOML file of its own for one test, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "kyc-config-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        ConfigFile(path)
    }

    fn path(&self) -> String {
        self.0.to_str().unwrap().to_owned()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn load(env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::load_from(env.iter().map(|&(k, v)| (k, v)))
}

fn error(env: &[(&str, &str)]) -> String {
    match load(env) {
        Ok(settings) => panic!("{env:?} loaded: {settings:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn with_nothing_set_the_defaults_point_at_the_local_machine() {
    let settings = load(&[]).unwrap();
    assert_eq!(settings.amqp.prefix, "kyc");
    assert_eq!(
        settings.amqp.url.expose_secret(),
        "amqp://guest:guest@127.0.0.1:5672/%2f"
    );
    assert_eq!(
        settings.database.url.expose_secret(),
        "postgres://postgres@127.0.0.1:5432/kyc"
    );
    assert_eq!(settings.http.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.worker.batch_size, 500);
    assert_eq!(settings.worker.prefetch, 1_000);
    assert_eq!(settings.http.body_limit_bytes, 65_536);
    assert!(!settings.log.json);
}

#[test]
fn environment_wins_over_the_file_which_wins_over_the_defaults() {
    let file = ConfigFile::new(
        r#"
[amqp]
prefix = "from-file"
confirm_timeout_ms = 1234

[worker]
batch_size = 10
prefetch = 20

[log]
json = true
"#,
    );
    let path = file.path();
    let settings = load(&[
        ("KYC_CONFIG", &path),
        ("KYC__AMQP__PREFIX", "from-env"),
        ("KYC__WORKER__PREFETCH", "30"),
        ("KYC__DATABASE__URL", "postgres://elsewhere/db"),
        // Not ours: ignored.
        ("OTHER__AMQP__PREFIX", "nope"),
        ("KYC_AMQP_PREFIX", "nope"),
    ])
    .unwrap();
    // Environment over file.
    assert_eq!(settings.amqp.prefix, "from-env");
    assert_eq!(settings.worker.prefetch, 30);
    // Environment over default.
    assert_eq!(
        settings.database.url.expose_secret(),
        "postgres://elsewhere/db"
    );
    // File over default.
    assert_eq!(settings.amqp.confirm_timeout_ms, 1234);
    assert_eq!(settings.worker.batch_size, 10);
    assert!(settings.log.json);
    // Defaults where neither says anything.
    assert_eq!(settings.http.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.amqp.publish_channels, 4);
}

#[test]
fn typed_values_are_parsed_from_the_environment() {
    let settings = load(&[
        ("KYC__HTTP__ADDR", "0.0.0.0:9000"),
        ("KYC__HTTP__OPERATOR_ADDR", "127.0.0.1:9100"),
        ("KYC__LOG__JSON", "true"),
        ("KYC__HTTP__RATE_LIMIT_PER_SECOND", "0"),
    ])
    .unwrap();
    assert_eq!(settings.http.addr.to_string(), "0.0.0.0:9000");
    assert_eq!(
        settings
            .http
            .operator_addr
            .map(|a| a.to_string())
            .as_deref(),
        Some("127.0.0.1:9100")
    );
    assert!(settings.log.json);
    assert_eq!(settings.http.rate_limit_per_second, 0);
}

#[test]
fn a_layer_that_cannot_be_read_is_a_load_error() {
    let missing = std::env::temp_dir().join("kyc-config-test-does-not-exist.toml");
    let missing = missing.to_str().unwrap();
    let e = load(&[("KYC_CONFIG", missing)]).unwrap_err();
    assert!(matches!(e, SettingsError::Load(_)), "{e:?}");
    assert!(e.to_string().starts_with("configuration: "), "{e}");

    let bad = ConfigFile::new("[worker\nbatch_size = ");
    let e = load(&[("KYC_CONFIG", &bad.path())]).unwrap_err();
    assert!(matches!(e, SettingsError::Load(_)), "bad TOML: {e:?}");

    let wrong_type = ConfigFile::new("[worker]\nbatch_size = \"many\"\n");
    let e = load(&[("KYC_CONFIG", &wrong_type.path())]).unwrap_err();
    assert!(matches!(e, SettingsError::Load(_)), "file type: {e:?}");

    let e = load(&[("KYC__WORKER__BATCH_SIZE", "many")]).unwrap_err();
    assert!(matches!(e, SettingsError::Load(_)), "env type: {e:?}");
    let e = load(&[("KYC__HTTP__ADDR", "not an address")]).unwrap_err();
    assert!(matches!(e, SettingsError::Load(_)), "env address: {e:?}");
}

#[test]
fn every_validation_rule_names_itself() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("KYC__WORKER__BATCH_SIZE", "0")],
            "worker.batch_size must be at least 1",
        ),
        (
            &[("KYC__WORKER__BATCH_SIZE", "1001")],
            "worker.prefetch must be at least worker.batch_size",
        ),
        (
            &[("KYC__WORKER__BULK_CONSUMERS", "0")],
            "worker.bulk_consumers must be at least 1",
        ),
        (
            &[("KYC__AMQP__PREFIX", "a b")],
            "amqp.prefix must be a non-empty name without spaces",
        ),
        (
            &[("KYC__AMQP__PUBLISH_CHANNELS", "0")],
            "amqp.publish_channels and amqp.max_in_flight must be at least 1",
        ),
        (
            &[("KYC__AMQP__MAX_IN_FLIGHT", "0")],
            "amqp.publish_channels and amqp.max_in_flight must be at least 1",
        ),
        (
            &[("KYC__HTTP__MAX_CONNECTIONS", "0")],
            "http.max_connections must be at least 1",
        ),
        (
            // Exactly the longest ?wait plus the confirm timeout is not enough.
            &[("KYC__HTTP__REQUEST_TIMEOUT_MS", "35000")],
            "http.request_timeout_ms must exceed the longest ?wait (30 s) plus amqp.confirm_timeout_ms",
        ),
        (
            &[
                ("KYC__HTTP__REQUEST_TIMEOUT_MS", "40000"),
                ("KYC__AMQP__CONFIRM_TIMEOUT_MS", "10000"),
            ],
            "http.request_timeout_ms must exceed the longest ?wait (30 s) plus amqp.confirm_timeout_ms",
        ),
        (
            &[("KYC__HTTP__HEADER_READ_TIMEOUT_MS", "0")],
            "http.header_read_timeout_ms and http.body_timeout_ms must be at least 1",
        ),
        (
            &[("KYC__HTTP__BODY_TIMEOUT_MS", "0")],
            "http.header_read_timeout_ms and http.body_timeout_ms must be at least 1",
        ),
        (
            &[("KYC__DIRECTORY__MAX_ENTRIES", "0")],
            "directory.max_entries and directory.max_unknown_entries must be at least 1",
        ),
        (
            &[("KYC__DIRECTORY__MAX_UNKNOWN_ENTRIES", "0")],
            "directory.max_entries and directory.max_unknown_entries must be at least 1",
        ),
        (
            &[("KYC__HTTP__BODY_LIMIT_BYTES", "0")],
            "http.body_limit_bytes must be at least 1",
        ),
    ];
    for (env, message) in cases {
        let e = load(env).unwrap_err();
        assert!(matches!(e, SettingsError::Invalid(_)), "{env:?}: {e:?}");
        assert_eq!(
            e.to_string(),
            format!("configuration: {message}"),
            "{env:?}"
        );
    }
    // Just inside every boundary, the same settings load.
    for env in [
        &[("KYC__WORKER__BATCH_SIZE", "1000")][..],
        &[("KYC__HTTP__REQUEST_TIMEOUT_MS", "35001")][..],
        &[
            ("KYC__WORKER__BATCH_SIZE", "1"),
            ("KYC__WORKER__PREFETCH", "1"),
        ][..],
        &[("KYC__WORKER__BULK_CONSUMERS", "1")][..],
    ] {
        load(env).unwrap_or_else(|e| panic!("{env:?}: {e}"));
    }
}

#[test]
fn an_empty_prefix_from_the_file_is_refused() {
    let file = ConfigFile::new("[amqp]\nprefix = \"\"\n");
    assert_eq!(
        error(&[("KYC_CONFIG", &file.path())]),
        "configuration: amqp.prefix must be a non-empty name without spaces"
    );
}

const NODE_1: &str = "amqp://u:p@10.0.0.1:5672/%2f";
const NODE_2: &str = "amqp://u:p@10.0.0.2:5672/%2f";
const NODE_3: &str = "amqps://u:p%2Cq@10.0.0.3:5671/%2f";

#[test]
fn several_broker_addresses_from_a_comma_separated_url() {
    let list = format!("{NODE_1}, {NODE_2},{NODE_3}");
    let settings = load(&[("KYC__AMQP__URL", &list)]).unwrap();
    assert_eq!(settings.amqp.addresses(), [NODE_1, NODE_2, NODE_3]);
    // One address stays one address.
    let settings = load(&[("KYC__AMQP__URL", NODE_2)]).unwrap();
    assert_eq!(settings.amqp.addresses(), [NODE_2]);
    assert_eq!(settings.amqp.url.expose_secret(), NODE_2);
}

#[test]
fn several_broker_addresses_from_urls_in_the_environment_and_the_file() {
    let list = format!("{NODE_1},{NODE_2},{NODE_3}");
    let settings = load(&[("KYC__AMQP__URLS", &list)]).unwrap();
    assert_eq!(settings.amqp.addresses(), [NODE_1, NODE_2, NODE_3]);
    // Every connection reads `url`: it holds the whole list.
    assert_eq!(settings.amqp.url.expose_secret(), list);

    let file = ConfigFile::new(&format!("[amqp]\nurls = [\"{NODE_3}\", \"{NODE_1}\"]\n"));
    let settings = load(&[("KYC_CONFIG", &file.path())]).unwrap();
    assert_eq!(settings.amqp.addresses(), [NODE_3, NODE_1]);
    // The environment's list wins over the file's.
    let settings = load(&[("KYC_CONFIG", &file.path()), ("KYC__AMQP__URLS", NODE_2)]).unwrap();
    assert_eq!(settings.amqp.addresses(), [NODE_2]);
    // The same list given both ways is no conflict.
    let settings = load(&[("KYC__AMQP__URLS", &list), ("KYC__AMQP__URL", &list)]).unwrap();
    assert_eq!(settings.amqp.addresses(), [NODE_1, NODE_2, NODE_3]);
}

#[test]
fn broker_address_lists_that_make_no_sense_are_refused() {
    let both = error(&[("KYC__AMQP__URL", NODE_1), ("KYC__AMQP__URLS", NODE_2)]);
    assert!(both.contains("amqp.url and amqp.urls"), "{both}");
    let empty = error(&[("KYC__AMQP__URL", " , ")]);
    assert!(empty.contains("at least one broker"), "{empty}");
    let http = error(&[("KYC__AMQP__URLS", &format!("{NODE_1},http://10.0.0.2/"))]);
    assert!(http.contains("amqp:// or amqps://"), "{http}");
    let twice = error(&[("KYC__AMQP__URL", &format!("{NODE_1},{NODE_2},{NODE_1}"))]);
    assert!(twice.contains("listed twice"), "{twice}");
    let file = ConfigFile::new(&format!("[amqp]\nurls = [\"{NODE_1},{NODE_2}\"]\n"));
    let comma = error(&[("KYC_CONFIG", &file.path())]);
    assert!(comma.contains("one URL per entry"), "{comma}");
    // No message quotes an address (they carry passwords).
    for message in [both, empty, http, twice, comma] {
        assert!(!message.contains("u:p@"), "{message}");
    }
}
