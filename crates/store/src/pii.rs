//! Encryption at rest for the sensitive numbers (`docs/api.md` §7): AES-256-GCM
//! under a service data key from configuration.
//!
//! The data key is a keyring: one current key, which seals every new value, and
//! older keys by id, which still open what they sealed, so a key rotates without
//! making old rows unreadable (`kycctl data-key reseal` then moves old rows to
//! the current key). Each row stores the id of the key that sealed it.
//!
//! A sealed value is `1 ‖ nonce ‖ ciphertext ‖ tag`, with the row's id and the
//! column's name bound as associated data: a ciphertext copied into another row
//! or another column does not open. Values sealed before that format
//! (`nonce ‖ ciphertext ‖ tag`, nothing bound; the row's `pii_format` is 0) still
//! open, until a reseal rewrites them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kyc_core::envelope::EnvelopeKey;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// The format byte of a value sealed with its place bound (`pii_format` 1).
const FORMAT_BOUND: u8 = 1;

/// The `pii_format` of everything sealed now.
pub const CURRENT_FORMAT: i16 = 1;

/// The data keyring: the current key and older ones, each with its id.
#[derive(Debug, Clone)]
pub struct DataKey {
    id: String,
    key: EnvelopeKey,
    older: Vec<(String, EnvelopeKey)>,
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
            older: Vec::new(),
        })
    }

    /// The keyring of a current key and older ones, each (id, Base64 of 32 bytes),
    /// as the settings give them.
    pub fn keyring(
        current: &(String, SecretString),
        older: &[(String, SecretString)],
    ) -> Result<DataKey, BadDataKey> {
        DataKey::from_base64(current.0.clone(), &current.1)?
            .with_older(older.iter().map(|(id, key)| (id.as_str(), key)))
    }

    /// This keyring with older keys (id, Base64 of 32 bytes) that still open what
    /// they sealed but seal nothing new.
    pub fn with_older<'a>(
        mut self,
        older: impl IntoIterator<Item = (&'a str, &'a SecretString)>,
    ) -> Result<DataKey, BadDataKey> {
        for (id, secret) in older {
            let key = DataKey::from_base64(id, secret)?;
            self.older.push((key.id, key.key));
        }
        Ok(self)
    }

    /// The key's id, stored next to every value it sealed.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `plaintext` sealed under the current key for column `column` of row `row`.
    pub fn seal(&self, row: Uuid, column: &str, plaintext: &str) -> Vec<u8> {
        let sealed = self
            .key
            .seal_with_aad(plaintext.as_bytes(), &place(row, column));
        let mut out = Vec::with_capacity(1 + sealed.len());
        out.push(FORMAT_BOUND);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value of column `column` of row `row` that the key `key_id` sealed
    /// (in the row's `pii_format`); `None` when that key is not in the ring, or
    /// the value was altered or moved from another row or column.
    pub fn open(
        &self,
        key_id: &str,
        format: i16,
        row: Uuid,
        column: &str,
        sealed: &[u8],
    ) -> Option<String> {
        let key = self.key_by_id(key_id)?;
        let plain = match format {
            0 => key.open(sealed)?,
            _ => match sealed.split_first() {
                Some((&FORMAT_BOUND, rest)) => key.open_with_aad(rest, &place(row, column))?,
                _ => return None,
            },
        };
        String::from_utf8(plain).ok()
    }

    /// Whether `key_id` is in the ring.
    pub fn knows(&self, key_id: &str) -> bool {
        self.key_by_id(key_id).is_some()
    }

    fn key_by_id(&self, key_id: &str) -> Option<&EnvelopeKey> {
        if key_id == self.id {
            return Some(&self.key);
        }
        self.older
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, k)| k)
    }
}

/// The associated data that ties a sealed value to its place.
fn place(row: Uuid, column: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(40 + column.len());
    aad.extend_from_slice(b"kyc-ingest/pii/v1\0");
    aad.extend_from_slice(row.as_bytes());
    aad.extend_from_slice(column.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> DataKey {
        DataKey::from_base64(id, &SecretString::from(BASE64.encode([byte; 32])))
            .expect("a valid key")
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_own_row_and_column() {
        let ring = key("a", 1);
        let (row, other) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = ring.seal(row, "identity_number_enc", "X123");
        assert_eq!(
            ring.open("a", 1, row, "identity_number_enc", &sealed)
                .as_deref(),
            Some("X123")
        );
        assert_eq!(
            ring.open("a", 1, other, "identity_number_enc", &sealed),
            None
        );
        assert_eq!(ring.open("a", 1, row, "document_number_enc", &sealed), None);
        assert_eq!(ring.open("b", 1, row, "identity_number_enc", &sealed), None);
    }

    #[test]
    fn older_keys_open_what_they_sealed_and_the_current_one_seals() {
        let row = Uuid::now_v7();
        let old = key("old", 1);
        let sealed_before = old.seal(row, "c", "before");
        let ring = key("new", 2)
            .with_older([("old", &SecretString::from(BASE64.encode([1u8; 32])))])
            .expect("valid older key");
        assert_eq!(ring.id(), "new");
        assert_eq!(
            ring.open("old", 1, row, "c", &sealed_before).as_deref(),
            Some("before")
        );
        let sealed_now = ring.seal(row, "c", "now");
        assert_eq!(
            ring.open("new", 1, row, "c", &sealed_now).as_deref(),
            Some("now")
        );
        assert_eq!(old.open("new", 1, row, "c", &sealed_now), None);
    }

    #[test]
    fn values_of_the_unbound_format_still_open() {
        let ring = key("a", 3);
        let legacy = EnvelopeKey::from_bytes([3; 32]).seal(b"legacy");
        assert_eq!(
            ring.open("a", 0, Uuid::now_v7(), "c", &legacy).as_deref(),
            Some("legacy")
        );
    }
}
