//! Encryption at rest for the two sensitive numbers (spec §7): AES-256-GCM under
//! a service data key from configuration, stored as `nonce ‖ ciphertext ‖ tag`
//! next to the id of the key that sealed it, so keys can rotate row by row.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kyc_core::envelope::EnvelopeKey;
use secrecy::{ExposeSecret, SecretString};

/// A data key and its id.
#[derive(Debug, Clone)]
pub struct DataKey {
    id: String,
    key: EnvelopeKey,
}

/// Why a configured data key is unusable. Deliberately without the decoder's
/// error as a source: that names the offending byte, which is part of a secret.
#[derive(Debug, thiserror::Error)]
pub enum BadDataKey {
    /// The text is not standard Base64.
    #[error("data key must be standard Base64 (of 32 bytes)")]
    NotBase64,
    /// The key decodes to this many bytes, not 32.
    #[error("data key must be 32 bytes, not {0}")]
    WrongLength(usize),
}

impl DataKey {
    /// `secret` is standard Base64 of 32 random bytes.
    pub fn from_base64(
        id: impl Into<String>,
        secret: &SecretString,
    ) -> Result<DataKey, BadDataKey> {
        let bytes = BASE64
            .decode(secret.expose_secret().trim())
            .map_err(|_| BadDataKey::NotBase64)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| BadDataKey::WrongLength(b.len()))?;
        Ok(DataKey {
            id: id.into(),
            key: EnvelopeKey::from_bytes(bytes),
        })
    }

    /// The key's id, stored next to every value it sealed.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `plaintext` encrypted and authenticated under a fresh random nonce.
    pub fn seal(&self, plaintext: &str) -> Vec<u8> {
        self.key.seal(plaintext.as_bytes())
    }

    /// `None` when the bytes were not sealed by this key or were altered.
    pub fn open(&self, sealed: &[u8]) -> Option<String> {
        String::from_utf8(self.key.open(sealed)?).ok()
    }
}
