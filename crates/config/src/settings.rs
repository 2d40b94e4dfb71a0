//! Typed settings from three layers: built-in defaults → optional file named by
//! `KYC_CONFIG` (TOML) → environment variables `KYC__SECTION__KEY`.
//!
//! With no configuration at all every process talks to the broker and database of
//! the local machine, which is what `kycctl dev`, the tests and a laptop want.
//! Secrets are the exception: the intake and the worker refuse to start without a
//! data key and a transit key ([`Settings::secrets`]) unless `KYC__DEV=true` asks
//! for the built-in development keys.
//! Every binary reads the whole structure and uses the sections it needs, so one
//! environment can serve all of them.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything any kyc-ingest process can be configured with; each section
/// defaults to the local machine.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Settings {
    /// `KYC__DEV=true`: a development machine. Missing keys are replaced by
    /// built-in development keys (with a loud warning) instead of refusing to
    /// start. Never in production.
    pub dev: bool,
    /// `[http]`: the intake's server.
    pub http: Http,
    /// `[database]`: PostgreSQL.
    pub database: Database,
    /// `[amqp]`: RabbitMQ and publishing.
    pub amqp: Amqp,
    /// `[crypto]`: the data key for personal numbers at rest and the transit keys
    /// sealing intake messages.
    pub crypto: Crypto,
    /// `[worker]`: batching and draining.
    pub worker: Worker,
    /// `[directory]`: the project/admin lookup cache.
    pub directory: Directory,
    /// `[log]`: log format.
    pub log: Log,
}

/// The intake's HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Http {
    /// `KYC__HTTP__ADDR`; port 0 picks a free port (tests).
    pub addr: SocketAddr,
    /// Largest accepted body (`docs/api.md` §3: default 64 KiB → 413 beyond).
    pub body_limit_bytes: usize,
    /// Per-project requests per second (`docs/api.md` §3 `rate_limited`); 0 disables.
    pub rate_limit_per_second: u32,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub drain_timeout_ms: u64,
    /// `KYC__HTTP__OPERATOR_ADDR`: where `/metrics` and `/readyz` are served
    /// apart from the API. Unset, they share the public listener.
    pub operator_addr: Option<SocketAddr>,
    /// A request's headers must arrive within this time after its connection
    /// opens or after the previous response on it: the slow-client and
    /// keep-alive idle timeout.
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive within this time (408 `request_timeout`).
    pub body_timeout_ms: u64,
    /// A request must be answered within this time (503 `unavailable`); above
    /// the longest `?wait` (30 s) plus the confirm timeout.
    pub request_timeout_ms: u64,
    /// Open connections at most per listener; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Requests per second from one client address, checked before
    /// authentication; 0 (the default) turns it off, as behind a load balancer
    /// every client shares the balancer's address.
    pub per_address_rate_limit: u32,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 64 * 1024,
            rate_limit_per_second: 5_000,
            drain_timeout_ms: 10_000,
            operator_addr: None,
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            request_timeout_ms: 45_000,
            max_connections: 4_096,
            per_address_rate_limit: 0,
        }
    }
}

/// PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Database {
    /// `KYC__DATABASE__URL`.
    pub url: SecretString,
    /// Pool size per process.
    pub max_connections: u32,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/kyc"),
            max_connections: 10,
        }
    }
}

/// RabbitMQ, and how publishing to it is bounded.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Amqp {
    /// `KYC__AMQP__URL`.
    pub url: SecretString,
    /// `KYC__AMQP__PREFIX`: names every exchange and queue (`<prefix>.submissions`…).
    pub prefix: String,
    /// Confirm-mode channels the intake (and `kycctl push`) spread publishes over.
    pub publish_channels: usize,
    /// How long a publish may wait for its confirm before it counts as failed
    /// (the intake's client gets 503, `kycctl push` stops).
    pub confirm_timeout_ms: u64,
    /// Publishes awaiting confirms per process; beyond it requests get 503 at once.
    pub max_in_flight: usize,
    /// `KYC__AMQP__DEAD_LETTER_MAX_LENGTH`: dead letters kept at most (the
    /// dead queue's `x-max-length`); beyond it the oldest are dropped.
    pub dead_letter_max_length: u32,
    /// `KYC__AMQP__DEAD_LETTER_TTL_MS`: how long a dead letter is kept (the dead
    /// queue's `x-message-ttl`).
    pub dead_letter_ttl_ms: u64,
}

impl Default for Amqp {
    fn default() -> Self {
        Amqp {
            url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            prefix: "kyc".to_owned(),
            publish_channels: 4,
            confirm_timeout_ms: 5_000,
            max_in_flight: 8_192,
            dead_letter_max_length: 100_000,
            dead_letter_ttl_ms: 14 * 24 * 3600 * 1000,
        }
    }
}

impl Amqp {
    /// [`Amqp::confirm_timeout_ms`] as a duration.
    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.confirm_timeout_ms)
    }
}

/// Encryption at rest and in transit.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Crypto {
    /// `KYC__CRYPTO__DATA_KEY`: Base64 of 32 random bytes, encrypting identity and
    /// document numbers at rest. Required unless [`Settings::dev`].
    pub data_key: Option<SecretString>,
    /// `KYC__CRYPTO__DATA_KEY_ID`: stored next to each sealed value.
    pub data_key_id: String,
    /// `KYC__CRYPTO__OLDER_DATA_KEYS`: retired data keys that still open what they
    /// sealed, as `id:base64,id:base64` (until `kycctl data-key reseal` has moved
    /// their rows to the current key).
    pub older_data_keys: Option<SecretString>,
    /// `KYC__CRYPTO__TRANSIT_KEY`: Base64 of 32 random bytes; the intake seals
    /// every message it publishes with it, workers open with it. Required unless
    /// [`Settings::dev`].
    pub transit_key: Option<SecretString>,
    /// `KYC__CRYPTO__TRANSIT_KEY_ID`: travels with every sealed message
    /// (`x-transit-key-id`); 1–64 characters of `[A-Za-z0-9._-]`.
    pub transit_key_id: String,
    /// `KYC__CRYPTO__TRANSIT_KEYRING`: older transit keys workers still open
    /// messages with, as `id:base64` entries separated by commas. Keep a retired
    /// key here until no message sealed with it is queued (dead letters included).
    pub transit_keyring: Option<SecretString>,
}

impl Default for Crypto {
    fn default() -> Self {
        Crypto {
            data_key: None,
            data_key_id: "dev".to_owned(),
            older_data_keys: None,
            transit_key: None,
            transit_key_id: "t1".to_owned(),
            transit_keyring: None,
        }
    }
}

/// The built-in development data key: 32 zero bytes, Base64. Anything sealed with
/// it is as good as plain text; used only with `KYC__DEV=true`.
pub const DEVELOPMENT_DATA_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
/// The built-in development transit key (32 bytes of 0x01), id `dev`; used only
/// with `KYC__DEV=true`.
pub const DEVELOPMENT_TRANSIT_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

impl Crypto {
    /// [`Crypto::older_data_keys`] as (id, key) pairs; the keys are not decoded
    /// here (the store checks them).
    pub fn older_data_keys(&self) -> Result<Vec<(String, SecretString)>, SettingsError> {
        let Some(list) = &self.older_data_keys else {
            return Ok(Vec::new());
        };
        list.expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| match entry.split_once(':') {
                Some((id, key)) if !id.trim().is_empty() && id.trim() != self.data_key_id => Ok((
                    id.trim().to_owned(),
                    SecretString::from(key.trim().to_owned()),
                )),
                _ => Err(SettingsError::Invalid(
                    "crypto.older_data_keys must be `id:base64` pairs separated by commas, \
                     with ids other than crypto.data_key_id",
                )),
            })
            .collect()
    }
}

/// The secrets the intake and the worker need, checked.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// The data key's id and Base64 text.
    pub data_key: (String, SecretString),
    /// Retired data keys (id, Base64) that still open what they sealed.
    pub older_data_keys: Vec<(String, SecretString)>,
    /// The transit keys: the current one and any older ones.
    pub transit: kyc_core::transit::TransitKeyring,
}

/// Why [`Settings::secrets`] refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// A required key is not configured and [`Settings::dev`] is off. Names the
    /// environment variable.
    #[error(
        "{0} is not set: set it to Base64 of 32 random bytes (head -c 32 /dev/urandom | base64), \
         or set KYC__DEV=true to run with the built-in development keys (never in production)"
    )]
    Missing(&'static str),
    /// `KYC__CRYPTO__OLDER_DATA_KEYS` is not a list of `id:base64` pairs.
    #[error("{0}")]
    OlderDataKeys(#[from] SettingsError),
    /// A transit key or keyring entry is malformed (never quotes the key).
    #[error("KYC__CRYPTO__TRANSIT_KEY / KYC__CRYPTO__TRANSIT_KEYRING: {0}")]
    Transit(#[from] kyc_core::transit::BadTransitKey),
}

impl Settings {
    /// The data key and the transit keyring, or which variable is missing.
    ///
    /// A configured key is always used. A missing one is an error, unless
    /// [`Settings::dev`] is set: then the built-in development key stands in, with
    /// a loud warning. The intake and the worker call this before anything else,
    /// so neither ever runs on a key nobody chose.
    pub fn secrets(&self) -> Result<Secrets, SecretsError> {
        use kyc_core::transit::{TransitKey, TransitKeyring};
        use secrecy::ExposeSecret;
        let c = &self.crypto;
        let data_key = self.data_key()?;
        let current = match &c.transit_key {
            Some(key) => TransitKey::from_base64(c.transit_key_id.clone(), key.expose_secret())?,
            None if self.dev => {
                tracing::warn!(
                    "KYC__DEV=true and KYC__CRYPTO__TRANSIT_KEY is not set: messages on the broker \
                     are sealed with the BUILT-IN DEVELOPMENT TRANSIT KEY, which protects nothing."
                );
                TransitKey::from_base64("dev", DEVELOPMENT_TRANSIT_KEY)?
            }
            None => return Err(SecretsError::Missing("KYC__CRYPTO__TRANSIT_KEY")),
        };
        let older = match &c.transit_keyring {
            Some(ring) => TransitKeyring::parse_older(ring.expose_secret())?,
            None => Vec::new(),
        };
        Ok(Secrets {
            data_key,
            older_data_keys: c.older_data_keys()?,
            transit: TransitKeyring::new(current, older)?,
        })
    }

    /// The current data key (id, Base64), or the development key under
    /// [`Settings::dev`]; `kycctl data-key`, which needs no transit key, uses it
    /// alone.
    pub fn data_key(&self) -> Result<(String, SecretString), SecretsError> {
        let c = &self.crypto;
        match &c.data_key {
            Some(key) => Ok((c.data_key_id.clone(), key.clone())),
            None if self.dev => {
                tracing::warn!(
                    "KYC__DEV=true and KYC__CRYPTO__DATA_KEY is not set: identity and document \
                     numbers are sealed with the BUILT-IN DEVELOPMENT KEY, which protects nothing. \
                     Never store real data this way."
                );
                Ok(("dev".to_owned(), SecretString::from(DEVELOPMENT_DATA_KEY)))
            }
            None => Err(SecretsError::Missing("KYC__CRYPTO__DATA_KEY")),
        }
    }
}

/// The worker's batching, prefetch and draining.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Worker {
    /// `KYC__WORKER__BATCH_SIZE`: deliveries per transaction.
    pub batch_size: usize,
    /// `KYC__WORKER__BATCH_LINGER_MS`: how long a partial batch waits for more.
    pub batch_linger_ms: u64,
    /// Unacknowledged deliveries the broker may push ahead (≥ batch size, so the
    /// next batch is already local while one is being stored).
    pub prefetch: u16,
    /// How long the worker may take to finish its batch after SIGTERM.
    pub drain_timeout_ms: u64,
    /// `KYC__WORKER__METRICS_ADDR`: where the worker serves `/metrics`
    /// (Prometheus text); unset, it serves none.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            batch_size: 500,
            batch_linger_ms: 20,
            prefetch: 1_000,
            drain_timeout_ms: 20_000,
            metrics_addr: None,
        }
    }
}

impl Worker {
    /// [`Worker::batch_linger_ms`] as a duration.
    pub fn batch_linger(&self) -> Duration {
        Duration::from_millis(self.batch_linger_ms)
    }
}

/// The project/admin lookup cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Directory {
    /// How long a lookup is trusted; a rotated key or removed admin stops working
    /// within this time.
    pub ttl_ms: u64,
    /// Known keys (and projects, admin lists) kept, least recently used evicted.
    pub max_entries: usize,
    /// Unknown keys remembered as unknown, least recently used evicted: apart
    /// from the known ones, so a flood of random keys cannot evict a real one.
    pub max_unknown_entries: usize,
}

impl Default for Directory {
    fn default() -> Self {
        Directory {
            ttl_ms: 5_000,
            max_entries: 100_000,
            max_unknown_entries: 10_000,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Log {
    /// `KYC__LOG__JSON=true` for JSON lines.
    pub json: bool,
}

/// A configuration that cannot be loaded or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A layer could not be read or does not fit the structure (a missing file,
    /// bad TOML, a value of the wrong type).
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// The values were read but do not make sense together; says which rule.
    #[error("configuration: {0}")]
    Invalid(&'static str),
}

impl Settings {
    /// Loads defaults → `KYC_CONFIG` file (if set) → `KYC__…` environment, and
    /// checks the combination.
    pub fn load() -> Result<Settings, SettingsError> {
        // Names or values that are not Unicode cannot be ours: skipped.
        Settings::load_from(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// [`Settings::load`] with `env` in place of the process environment: the
    /// file is the one `env` names in `KYC_CONFIG`, and only `env`'s `KYC__…`
    /// variables apply. Lets tests layer settings without touching the process.
    pub fn load_from<I, K, V>(env: I) -> Result<Settings, SettingsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env: config::Map<String, String> = env
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        let mut builder = config::Config::builder();
        if let Some(path) = env.get("KYC_CONFIG") {
            builder = builder.add_source(config::File::with_name(path).required(true));
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("KYC")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env)),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |rule: &'static str| Err(SettingsError::Invalid(rule));
        if self.worker.batch_size == 0 {
            return invalid("worker.batch_size must be at least 1");
        }
        if usize::from(self.worker.prefetch) < self.worker.batch_size {
            return invalid("worker.prefetch must be at least worker.batch_size");
        }
        if self.amqp.prefix.is_empty() || self.amqp.prefix.contains(char::is_whitespace) {
            return invalid("amqp.prefix must be a non-empty name without spaces");
        }
        if self.amqp.publish_channels == 0 || self.amqp.max_in_flight == 0 {
            return invalid("amqp.publish_channels and amqp.max_in_flight must be at least 1");
        }
        if self.amqp.dead_letter_max_length == 0 || self.amqp.dead_letter_ttl_ms == 0 {
            return invalid(
                "amqp.dead_letter_max_length and amqp.dead_letter_ttl_ms must be at least 1",
            );
        }
        self.crypto.older_data_keys()?;
        if self.http.max_connections == 0 {
            return invalid("http.max_connections must be at least 1");
        }
        if self.http.request_timeout_ms <= 30_000 + self.amqp.confirm_timeout_ms {
            return invalid(
                "http.request_timeout_ms must exceed the longest ?wait (30 s) plus amqp.confirm_timeout_ms",
            );
        }
        if self.http.header_read_timeout_ms == 0 || self.http.body_timeout_ms == 0 {
            return invalid(
                "http.header_read_timeout_ms and http.body_timeout_ms must be at least 1",
            );
        }
        if self.directory.max_entries == 0 || self.directory.max_unknown_entries == 0 {
            return invalid(
                "directory.max_entries and directory.max_unknown_entries must be at least 1",
            );
        }
        if self.http.body_limit_bytes == 0 {
            return invalid("http.body_limit_bytes must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: &str = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=";

    fn keyed() -> Settings {
        let mut s = Settings::default();
        s.crypto.data_key = Some(SecretString::from(KEY));
        s.crypto.transit_key = Some(SecretString::from(KEY));
        s
    }

    #[test]
    fn without_keys_and_without_dev_the_missing_variable_is_named() {
        let err = Settings::default().secrets().unwrap_err().to_string();
        assert!(err.starts_with("KYC__CRYPTO__DATA_KEY is not set"), "{err}");
        let mut s = keyed();
        s.crypto.transit_key = None;
        let err = s.secrets().unwrap_err().to_string();
        assert!(
            err.starts_with("KYC__CRYPTO__TRANSIT_KEY is not set"),
            "{err}"
        );
        let mut s = keyed();
        s.crypto.data_key = None;
        let err = s.secrets().unwrap_err().to_string();
        assert!(err.starts_with("KYC__CRYPTO__DATA_KEY is not set"), "{err}");
    }

    #[test]
    fn dev_fills_in_missing_keys_and_configured_keys_win() {
        let mut s = Settings {
            dev: true,
            ..Settings::default()
        };
        let secrets = s.secrets().unwrap();
        assert_eq!(secrets.data_key.0, "dev");
        assert_eq!(secrets.transit.current().id(), "dev");
        s.crypto.transit_key = Some(SecretString::from(KEY));
        s.crypto.transit_key_id = "t7".to_owned();
        assert_eq!(s.secrets().unwrap().transit.current().id(), "t7");
    }

    #[test]
    fn bad_transit_keys_are_refused_without_quoting_them() {
        let mut s = keyed();
        s.crypto.transit_key = Some(SecretString::from("c2VjcmV0"));
        let err = s.secrets().unwrap_err().to_string();
        assert!(
            err.contains("32 bytes") && !err.contains("c2VjcmV0"),
            "{err}"
        );
        let mut s = keyed();
        s.crypto.transit_keyring = Some(SecretString::from(format!("old:{KEY},t1:{KEY}")));
        assert!(s.secrets().is_err(), "the current id listed again");
        s.crypto.transit_keyring = Some(SecretString::from(format!("old:{KEY}")));
        assert!(s.secrets().is_ok());
    }
}
