//! The `[crypto]` section and the keys it yields: [`Settings::secrets`] refuses
//! to start without a data key and a transit key unless `KYC__DEV=true`.

use super::{Settings, SettingsError};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

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
