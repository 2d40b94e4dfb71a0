//! Sealing images under the data key, and their keyed digest.
//!
//! A sealed image is `1 ‖ nonce ‖ ciphertext ‖ tag` (AES-256-GCM, the same
//! sealing as the sensitive columns, `kyc_core::envelope::EnvelopeKey`), with
//! this associated data:
//!
//! ```text
//! "kyc-ingest/image/v1\0" ‖ u16 BE length ‖ object key ‖ submission id (16 bytes) ‖ kind
//! ```
//!
//! so an object copied under another key, to another submission or as another
//! kind does not open. The data key's id is stored with the row.
//!
//! The digest that makes a re-upload idempotent is HMAC-SHA256 of the plain
//! image under a key derived from the current data key (HMAC-SHA256 of a fixed
//! label under the data key): never a bare hash of identity evidence, which
//! anyone holding the same photo could confirm.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use kyc_core::envelope::EnvelopeKey;
use kyc_core::wire::ImageKind;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::fmt;
use uuid::Uuid;

/// The format byte of a sealed image.
const FORMAT: u8 = 1;
const DOMAIN: &[u8] = b"kyc-ingest/image/v1\0";
const DIGEST_LABEL: &[u8] = b"kyc-ingest/image-digest/v1";

/// The data keyring as images use it: the current key seals and digests, older
/// keys still open what they sealed.
#[derive(Clone)]
pub struct ImageKeys {
    id: String,
    key: EnvelopeKey,
    digest_key: [u8; 32],
    older: Vec<(String, EnvelopeKey)>,
}

impl fmt::Debug for ImageKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageKeys({:?}, <secret>)", self.id)
    }
}

/// A configured data key that is not standard Base64 of 32 bytes (named by id,
/// never by a byte of it).
#[derive(Debug, thiserror::Error)]
#[error("data key {0:?} must be standard Base64 of 32 bytes")]
pub struct BadImageKey(pub String);

fn decode(id: &str, secret: &SecretString) -> Result<[u8; 32], BadImageKey> {
    BASE64
        .decode(secret.expose_secret().trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| BadImageKey(id.to_owned()))
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl ImageKeys {
    /// The keyring of the current data key and older ones, each (id, Base64 of
    /// 32 bytes), as the settings give them (`Settings::secrets`).
    pub fn keyring(
        current: &(String, SecretString),
        older: &[(String, SecretString)],
    ) -> Result<ImageKeys, BadImageKey> {
        let bytes = decode(&current.0, &current.1)?;
        let older = older
            .iter()
            .map(|(id, secret)| Ok((id.clone(), EnvelopeKey::from_bytes(decode(id, secret)?))))
            .collect::<Result<_, BadImageKey>>()?;
        Ok(ImageKeys {
            id: current.0.clone(),
            key: EnvelopeKey::from_bytes(bytes),
            digest_key: hmac(&bytes, &[DIGEST_LABEL]),
            older,
        })
    }

    /// The id of the current key, stored with every image it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The keyed digest of a plain image, lowercase hex.
    pub fn digest(&self, plain: &[u8]) -> String {
        kyc_core::hex::encode(&hmac(&self.digest_key, &[plain]))
    }

    /// `plain` sealed under the current key for its place.
    pub fn seal(
        &self,
        object_key: &str,
        submission: Uuid,
        kind: ImageKind,
        plain: &[u8],
    ) -> Vec<u8> {
        self.key
            .seal_with_aad_after(&[FORMAT], plain, &place(object_key, submission, kind))
    }

    /// Opens an image sealed by key `key_id` for this place; `None` if that key
    /// is not in the ring, or the object was altered or moved.
    pub fn open(
        &self,
        key_id: &str,
        object_key: &str,
        submission: Uuid,
        kind: ImageKind,
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        let key = if key_id == self.id {
            &self.key
        } else {
            &self.older.iter().find(|(id, _)| id == key_id)?.1
        };
        match sealed.split_first() {
            Some((&FORMAT, rest)) => key.open_with_aad(rest, &place(object_key, submission, kind)),
            _ => None,
        }
    }
}

fn place(object_key: &str, submission: Uuid, kind: ImageKind) -> Vec<u8> {
    let key = &object_key.as_bytes()[..object_key.len().min(usize::from(u16::MAX))];
    let mut aad = Vec::with_capacity(DOMAIN.len() + 2 + key.len() + 16 + 16);
    aad.extend_from_slice(DOMAIN);
    aad.extend_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_be_bytes());
    aad.extend_from_slice(key);
    aad.extend_from_slice(submission.as_bytes());
    aad.extend_from_slice(kind.as_str().as_bytes());
    aad
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ring(id: &str, byte: u8) -> ImageKeys {
        ImageKeys::keyring(
            &(id.to_owned(), SecretString::from(BASE64.encode([byte; 32]))),
            &[],
        )
        .unwrap()
    }

    #[test]
    fn an_image_opens_only_at_its_place() {
        let keys = ring("a", 1);
        let id = Uuid::now_v7();
        let sealed = keys.seal("images/x", id, ImageKind::IdImage, b"\xFF\xD8\xFFdata");
        assert!(!sealed.windows(3).any(|w| w == b"\xFF\xD8\xFF"));
        assert_eq!(
            keys.open("a", "images/x", id, ImageKind::IdImage, &sealed)
                .as_deref(),
            Some(&b"\xFF\xD8\xFFdata"[..])
        );
        assert_eq!(
            keys.open("a", "images/y", id, ImageKind::IdImage, &sealed),
            None
        );
        assert_eq!(
            keys.open("a", "images/x", Uuid::now_v7(), ImageKind::IdImage, &sealed),
            None
        );
        assert_eq!(
            keys.open("a", "images/x", id, ImageKind::SelfieImage, &sealed),
            None
        );
        assert_eq!(
            keys.open("b", "images/x", id, ImageKind::IdImage, &sealed),
            None
        );
    }

    #[test]
    fn older_keys_still_open_and_digests_are_keyed() {
        let old = ring("old", 1);
        let id = Uuid::now_v7();
        let sealed = old.seal("images/x", id, ImageKind::SelfieImage, b"img");
        let now = ImageKeys::keyring(
            &(
                "new".to_owned(),
                SecretString::from(BASE64.encode([2u8; 32])),
            ),
            &[(
                "old".to_owned(),
                SecretString::from(BASE64.encode([1u8; 32])),
            )],
        )
        .unwrap();
        assert_eq!(
            now.open("old", "images/x", id, ImageKind::SelfieImage, &sealed)
                .as_deref(),
            Some(&b"img"[..])
        );
        assert_eq!(old.digest(b"img"), ring("old", 1).digest(b"img"));
        assert_ne!(old.digest(b"img"), now.digest(b"img"));
        assert_eq!(old.digest(b"img").len(), 64);
    }
}
