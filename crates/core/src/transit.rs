//! Transit sealing: how an intake hands a message to the workers so that nothing
//! secret rests on the broker and only intake-authenticated ids are trusted.
//!
//! The intake has authenticated the client, opened its envelope (`docs/api.md` §7) and
//! validated the body. It then publishes the validated body as plain JSON sealed
//! with AES-256-GCM under the current transit key, which only intakes and workers
//! hold. The message carries no API key.
//!
//! A single submission travels in transit version 2 ([`Frame`]): its ids, reply
//! mode and trace in an authenticated prefix of the body, no headers. Batches,
//! image references and messages sealed before version 2 use version 1:
//!
//! - Message body: `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`, raw bytes.
//! - Header [`HEADER_TRANSIT_KEY_ID`](crate::wire::HEADER_TRANSIT_KEY_ID): the id
//!   of the transit key that sealed it.
//! - Associated data ([`SealedIds::associated_data`]): a canonical byte string of
//!   the key id, submission id, project id, receive time and idempotency key. The
//!   values themselves travel in their usual headers; a worker rebuilds the
//!   associated data from those headers, so a changed header (another project's
//!   id, say), a changed body or a forged tag all fail to open.
//!
//! A worker trusts the ids of a message only if it opens under a key of its
//! [`TransitKeyring`] (the current key or an older one still listed).

use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng;
use std::fmt;
use time::OffsetDateTime;
use uuid::Uuid;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// How many bytes sealing adds to a body at most (a version 2 prefix of the
/// longest kind, nonce and tag): a body at the HTTP limit is up to this much
/// longer on the broker.
pub const SEAL_OVERHEAD: usize = MAX_PREFIX_LEN + NONCE_LEN + TAG_LEN;
/// The first bytes of every associated data: names the scheme and its version.
const DOMAIN: &[u8] = b"kyc-ingest/transit/v1\0";

type Nonce = aes_gcm::aead::Nonce<Aes256Gcm>;

/// The values a transit seal binds: what a worker may take from an intake
/// message once it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedIds<'a> {
    /// The id the intake gave the submission.
    pub submission_id: Uuid,
    /// The project the intake authenticated the request for.
    pub project_id: Uuid,
    /// When the intake received the request.
    pub received_at: OffsetDateTime,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<&'a str>,
}

impl SealedIds<'_> {
    /// The canonical associated data for a seal under key `key_id`:
    ///
    /// ```text
    /// "kyc-ingest/transit/v1\0"
    /// u16 BE length ‖ key id (UTF-8)
    /// submission id (16 bytes) ‖ project id (16 bytes)
    /// receive time: Unix time in nanoseconds, i128 BE (16 bytes)
    /// 0x00                                   (no idempotency key)
    /// | 0x01 ‖ u16 BE length ‖ key (UTF-8)   (an idempotency key)
    /// ```
    ///
    /// Every variable-length part is length-prefixed, so no two value sets share
    /// a byte string.
    pub fn associated_data(&self, key_id: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(DOMAIN.len() + 64 + key_id.len());
        aad.extend_from_slice(DOMAIN);
        put_str(&mut aad, key_id);
        aad.extend_from_slice(self.submission_id.as_bytes());
        aad.extend_from_slice(self.project_id.as_bytes());
        aad.extend_from_slice(&self.received_at.unix_timestamp_nanos().to_be_bytes());
        match self.idempotency_key {
            None => aad.push(0),
            Some(key) => {
                aad.push(1);
                put_str(&mut aad, key);
            }
        }
        aad
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Key ids and idempotency keys are short (≤ 200 characters); a longer one is
    // cut at u16::MAX, which still cannot make two different values collide with
    // the same length prefix unless their first 64 KiB agree.
    let bytes = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// One transit key: an id and 32 secret bytes.
#[derive(Clone)]
pub struct TransitKey {
    id: String,
    cipher: Aes256Gcm,
}

impl fmt::Debug for TransitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransitKey({:?}, <secret>)", self.id)
    }
}

/// Why a configured transit key is unusable. Never names a byte of the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadTransitKey {
    /// The key (named by its id) is not standard Base64.
    #[error("transit key {0:?}: must be standard Base64 of 32 bytes")]
    NotBase64(String),
    /// The key (named by its id) decodes to the given length, not 32 bytes.
    #[error("transit key {0:?}: must be 32 bytes, not {1}")]
    WrongLength(String, usize),
    /// The key id is empty, too long or has a character outside `[A-Za-z0-9._-]`.
    #[error("transit key id {0:?}: must be 1–64 characters of [A-Za-z0-9._-]")]
    BadId(String),
    /// A keyring entry has no `:` between id and key.
    #[error("transit keyring entry must be `id:base64`")]
    BadEntry,
    /// Two keys of one keyring share an id.
    #[error("transit key id {0:?} is listed twice")]
    Duplicate(String),
}

/// Whether a key id is acceptable: short, printable, no separator characters.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl TransitKey {
    /// A key from its id and raw bytes.
    pub fn new(id: impl Into<String>, bytes: [u8; 32]) -> Result<TransitKey, BadTransitKey> {
        let id = id.into();
        if !valid_id(&id) {
            return Err(BadTransitKey::BadId(id));
        }
        Ok(TransitKey {
            id,
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(bytes)),
        })
    }

    /// A key from its id and standard Base64 of 32 bytes.
    pub fn from_base64(id: impl Into<String>, base64: &str) -> Result<TransitKey, BadTransitKey> {
        let id = id.into();
        let Ok(bytes) = BASE64.decode(base64.trim()) else {
            return Err(BadTransitKey::NotBase64(id));
        };
        let bytes: [u8; 32] = match bytes.try_into() {
            Ok(bytes) => bytes,
            Err(b) => return Err(BadTransitKey::WrongLength(id, b.len())),
        };
        TransitKey::new(id, bytes)
    }

    /// The key's id, carried with every message it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn seal(&self, ids: &SealedIds<'_>, plaintext: &[u8]) -> Vec<u8> {
        self.seal_aad(&ids.associated_data(&self.id), plaintext)
    }

    fn seal_aad(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        self.seal_onto(out, Aad::Given(aad), plaintext)
    }

    /// Appends `nonce ‖ ciphertext ‖ tag` of `plaintext` to `out`: nonce,
    /// ciphertext and tag in one buffer, encrypted where it lies (one
    /// allocation per message rather than two and a copy).
    fn seal_onto(&self, mut out: Vec<u8>, aad: Aad<'_>, plaintext: &[u8]) -> Vec<u8> {
        let start = out.len();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let (head, rest) = out.split_at_mut(start + NONCE_LEN);
        let aad = match aad {
            Aad::Given(aad) => aad,
            Aad::Prefix => &head[..start],
        };
        // Encryption fails only for inputs over 64 GiB, far beyond any body limit.
        let tag = self
            .cipher
            .encrypt_inout_detached(&Nonce::from(nonce), aad, rest.into())
            .unwrap_or_else(|_| unreachable!("AES-GCM plaintext over 2^36 bytes"));
        out.extend_from_slice(tag.as_slice());
        out
    }

    fn open(&self, ids: &SealedIds<'_>, sealed: &[u8]) -> Option<Vec<u8>> {
        self.open_aad(&ids.associated_data(&self.id), sealed)
    }

    fn open_aad(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).ok()?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }
}

/// The associated data of a seal: given apart, or the bytes already in the
/// buffer in front of the nonce (transit version 2's prefix).
enum Aad<'a> {
    Given(&'a [u8]),
    Prefix,
}

/// The transit keys a process holds: the current one (intakes seal with it) and
/// older ones still accepted (workers open with any of them), so a key can be
/// rotated while messages sealed under the old one are still queued.
#[derive(Debug, Clone)]
pub struct TransitKeyring {
    current: TransitKey,
    older: Vec<TransitKey>,
}

/// A message sealed for the workers: the key id for its header, and its body.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The id of the key that sealed it, for the message's key-id header.
    pub key_id: String,
    /// Nonce, ciphertext and tag.
    pub body: Vec<u8>,
}

impl TransitKeyring {
    /// A keyring of `current` and `older` keys; ids must be distinct.
    pub fn new(
        current: TransitKey,
        older: Vec<TransitKey>,
    ) -> Result<TransitKeyring, BadTransitKey> {
        let mut seen = vec![current.id.as_str()];
        for key in &older {
            if seen.contains(&key.id.as_str()) {
                return Err(BadTransitKey::Duplicate(key.id.clone()));
            }
            seen.push(&key.id);
        }
        Ok(TransitKeyring { current, older })
    }

    /// Parses the keyring setting: `id:base64` entries separated by commas (white
    /// space around entries ignored, empty entries skipped).
    pub fn parse_older(setting: &str) -> Result<Vec<TransitKey>, BadTransitKey> {
        setting
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (id, key) = entry.split_once(':').ok_or(BadTransitKey::BadEntry)?;
                TransitKey::from_base64(id.trim(), key)
            })
            .collect()
    }

    /// The key new messages are sealed with.
    pub fn current(&self) -> &TransitKey {
        &self.current
    }

    /// The key named `key_id`, current or older.
    fn key(&self, key_id: &str) -> Option<&TransitKey> {
        std::iter::once(&self.current)
            .chain(&self.older)
            .find(|key| key.id == key_id)
    }

    /// Seals `plaintext` under the current key, binding `ids`.
    pub fn seal(&self, ids: &SealedIds<'_>, plaintext: &[u8]) -> Sealed {
        Sealed {
            key_id: self.current.id.clone(),
            body: self.current.seal(ids, plaintext),
        }
    }

    /// The plaintext of a message sealed under key `key_id` (current or older)
    /// with exactly these `ids`; `None` for an unknown key id, altered bytes,
    /// altered ids or a forged tag.
    pub fn open(&self, key_id: &str, ids: &SealedIds<'_>, sealed: &[u8]) -> Option<Vec<u8>> {
        self.key(key_id)?.open(ids, sealed)
    }
}

/// Put in front of the associated data of a sealed *batch* message
/// (`crate::wire::SubmissionBatchV1`), so that a sealed batch never opens as a
/// single submission nor the other way round.
const BATCH_DOMAIN: &[u8] = b"kyc-ingest/transit-batch/v1\0";

impl TransitKeyring {
    /// Seals a batch body under the current key, binding `ids` (the batch's own
    /// id in `submission_id`, its project and receive time; the records' ids
    /// travel inside the sealed body) and the batch domain.
    pub fn seal_batch(&self, ids: &SealedIds<'_>, plaintext: &[u8]) -> Sealed {
        Sealed {
            key_id: self.current.id.clone(),
            body: self
                .current
                .seal_aad(&batch_aad(ids, &self.current.id), plaintext),
        }
    }

    /// Opens what [`seal_batch`](Self::seal_batch) sealed; `None` as for
    /// [`open`](Self::open), and for a single message's seal.
    pub fn open_batch(&self, key_id: &str, ids: &SealedIds<'_>, sealed: &[u8]) -> Option<Vec<u8>> {
        let key = self.key(key_id)?;
        key.open_aad(&batch_aad(ids, &key.id), sealed)
    }
}

/// Put in front of the associated data of a sealed image reference
/// (`crate::wire::ImageReferenceV1`): it never opens as a submission or a batch.
const IMAGE_DOMAIN: &[u8] = b"kyc-ingest/transit-image/v1\0";

impl TransitKeyring {
    /// Seals an image reference under the current key, binding `ids` (the
    /// submission's id, its project and the upload's receive time) and the
    /// image domain.
    pub fn seal_image(&self, ids: &SealedIds<'_>, plaintext: &[u8]) -> Sealed {
        let mut aad = IMAGE_DOMAIN.to_vec();
        aad.extend_from_slice(&ids.associated_data(&self.current.id));
        Sealed {
            key_id: self.current.id.clone(),
            body: self.current.seal_aad(&aad, plaintext),
        }
    }

    /// Opens what [`seal_image`](Self::seal_image) sealed; `None` as for
    /// [`open`](Self::open), and for any other kind of seal.
    pub fn open_image(&self, key_id: &str, ids: &SealedIds<'_>, sealed: &[u8]) -> Option<Vec<u8>> {
        let key = self.key(key_id)?;
        let mut aad = IMAGE_DOMAIN.to_vec();
        aad.extend_from_slice(&ids.associated_data(&key.id));
        key.open_aad(&aad, sealed)
    }
}

fn batch_aad(ids: &SealedIds<'_>, key_id: &str) -> Vec<u8> {
    let mut aad = BATCH_DOMAIN.to_vec();
    aad.extend_from_slice(&ids.associated_data(key_id));
    aad
}

mod frame;
pub use frame::{Frame, MAX_PREFIX_LEN};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
