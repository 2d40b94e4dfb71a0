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

mod images;
mod secrets;
mod sections;
mod webhooks;

pub use images::{ImageBackend, Images};
pub use secrets::{Crypto, DEVELOPMENT_DATA_KEY, DEVELOPMENT_TRANSIT_KEY, Secrets, SecretsError};
pub use sections::{Amqp, Database, Directory, Http, Log, Worker};
pub use webhooks::Webhooks;

use serde::Deserialize;

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
    /// `[webhooks]`: the webhook dispatcher and the URLs it accepts.
    pub webhooks: Webhooks,
    /// `[images]`: the object store of submission images and their limits.
    pub images: Images,
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
        let mut settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("KYC")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    // `KYC__AMQP__URLS=amqp://…,amqp://…`: a list.
                    .list_separator(",")
                    .with_list_parse_key("amqp.urls")
                    .source(Some(env)),
            )
            .build()?
            .try_deserialize()?;
        settings
            .amqp
            .resolve_addresses()
            .map_err(SettingsError::Invalid)?;
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
        if self.worker.bulk_batch_messages == 0
            || usize::from(self.worker.bulk_prefetch) < self.worker.bulk_batch_messages
        {
            return invalid(
                "worker.bulk_prefetch must be at least worker.bulk_batch_messages, which must be at least 1",
            );
        }
        if self.worker.bulk_consumers == 0 {
            return invalid("worker.bulk_consumers must be at least 1");
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
        self.webhooks.check().map_err(SettingsError::Invalid)?;
        self.images.check().map_err(SettingsError::Invalid)?;
        if self.http.body_limit_bytes == 0 {
            return invalid("http.body_limit_bytes must be at least 1");
        }
        Ok(())
    }
}
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
