//! The encryption envelope of `docs/api.md` §7.
//!
//! AES-256-GCM; key = SHA-256 of the project's API key; a fresh 12-byte random
//! nonce per message; wire form = standard Base64 of `nonce ‖ ciphertext ‖ tag`.
//! Requests come as `{"body": "<base64>"}`, encrypted success responses go out as
//! `{"isEncrypted": true, "data": "<base64>"}`.
//!
//! Every failure to open an envelope is `invalid_payload`: the caller learns
//! nothing about *why* (bad Base64, short input, wrong key, tampered tag), which is
//! what an authenticated cipher should reveal.

use crate::error::{ErrorCode, Rejection};
use crate::submission::RawSubmission;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

type Nonce = aes_gcm::aead::Nonce<Aes256Gcm>;

/// A project's envelope key: SHA-256 of its API key.
#[derive(Clone)]
pub struct EnvelopeKey(Aes256Gcm);

impl std::fmt::Debug for EnvelopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnvelopeKey(<secret>)")
    }
}

impl EnvelopeKey {
    /// The ARGOS key-derivation convention: the 32-byte SHA-256 digest of the API key.
    pub fn from_api_key(api_key: &str) -> EnvelopeKey {
        EnvelopeKey::from_bytes(Sha256::digest(api_key.as_bytes()).into())
    }

    /// A raw 32-byte key (the service's data key for PII at rest uses this too).
    pub fn from_bytes(bytes: [u8; 32]) -> EnvelopeKey {
        // The expanded key schedule, once: a worker seals two fields per record.
        EnvelopeKey(Aes256Gcm::new(&Key::<Aes256Gcm>::from(bytes)))
    }

    /// `nonce ‖ ciphertext ‖ tag` with a fresh random nonce, from the thread's
    /// CSPRNG (ChaCha, seeded and reseeded from the OS): no system call per seal.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        self.seal_with_nonce(&Nonce::from(nonce), plaintext)
    }

    fn seal_with_nonce(&self, nonce: &Nonce, plaintext: &[u8]) -> Vec<u8> {
        self.seal_parts(&[], nonce, plaintext, &[])
    }

    /// Like [`seal`](Self::seal), with `aad` bound as associated data: the result
    /// opens only with the same `aad` (used to tie a sealed value to its place).
    pub fn seal_with_aad(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        self.seal_with_aad_after(&[], plaintext, aad)
    }

    /// `prefix ‖` [`seal_with_aad`](Self::seal_with_aad)`(plaintext, aad)`,
    /// written once into one buffer (for large values such as images, which
    /// are then neither copied before encryption nor moved after it).
    pub fn seal_with_aad_after(&self, prefix: &[u8], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        self.seal_parts(prefix, &Nonce::from(nonce), plaintext, aad)
    }

    /// `prefix ‖ nonce ‖ ciphertext ‖ tag`: the cipher reads `msg` and writes
    /// the ciphertext straight into its place in the result.
    fn seal_parts(&self, prefix: &[u8], nonce: &Nonce, msg: &[u8], aad: &[u8]) -> Vec<u8> {
        let start = prefix.len() + NONCE_LEN;
        let mut out = vec![0u8; start + msg.len() + TAG_LEN];
        out[..prefix.len()].copy_from_slice(prefix);
        out[prefix.len()..start].copy_from_slice(nonce.as_slice());
        let (body, tag) = out[start..].split_at_mut(msg.len());
        let buffer = InOutBuf::new(msg, body).expect("the plaintext and its place have one length");
        // Encryption fails only for inputs over 64 GiB, far beyond any body limit.
        let computed = self
            .0
            .encrypt_inout_detached(nonce, aad, buffer)
            .unwrap_or_else(|_| unreachable!("AES-GCM plaintext over 2^36 bytes"));
        tag.copy_from_slice(computed.as_slice());
        out
    }

    /// Opens what [`seal_with_aad`](Self::seal_with_aad) sealed with the same
    /// `aad`; `None` otherwise.
    pub fn open_with_aad(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, msg) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).ok()?;
        self.0.decrypt(&nonce, Payload { msg, aad }).ok()
    }

    /// Opens `nonce ‖ ciphertext ‖ tag`; `None` if it is short, or the tag does not
    /// verify under this key.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).ok()?;
        self.0.decrypt(&nonce, ciphertext).ok()
    }

    /// Base64 of [`seal`](Self::seal).
    pub fn encrypt_to_base64(&self, plaintext: &[u8]) -> String {
        BASE64.encode(self.seal(plaintext))
    }

    /// The same with a caller-chosen nonce; for known-answer tests only.
    #[doc(hidden)]
    pub fn encrypt_to_base64_with_nonce(&self, nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> String {
        BASE64.encode(self.seal_with_nonce(&Nonce::from(nonce), plaintext))
    }

    /// Reverses [`encrypt_to_base64`](Self::encrypt_to_base64); any failure is
    /// `invalid_payload`.
    pub fn decrypt_base64(&self, data: &str) -> Result<Vec<u8>, Rejection> {
        let sealed = BASE64
            .decode(data.trim())
            .map_err(|_| Rejection::new(ErrorCode::InvalidPayload))?;
        self.open(&sealed)
            .ok_or_else(|| Rejection::new(ErrorCode::InvalidPayload))
    }
}

/// The encrypted request form `{"body": "<base64>"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedRequest {
    /// The sealed submission JSON, standard Base64.
    pub body: String,
}

/// The encrypted success-response form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedResponse {
    /// Always `true`: tells the client to decrypt `data`.
    pub is_encrypted: bool,
    /// The sealed success body, standard Base64.
    pub data: String,
}

impl EncryptedResponse {
    /// Encrypts a success body for a client that sent an encrypted request.
    pub fn seal<T: Serialize>(key: &EnvelopeKey, body: &T) -> EncryptedResponse {
        // Serialising our own response types cannot fail (string keys, no maps of
        // non-string keys).
        let plain = serde_json::to_vec(body).unwrap_or_default();
        EncryptedResponse {
            is_encrypted: true,
            data: key.encrypt_to_base64(&plain),
        }
    }
}

/// Whether a project accepts plain bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionPolicy {
    /// Plain and encrypted bodies are both accepted.
    Optional,
    /// Plain bodies are refused with `invalid_payload`.
    Required,
}

/// A request body after the envelope, if any, was opened.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The submission's fields, as sent, in document order.
    pub raw: RawSubmission,
    /// The request was encrypted, so the success response must be too.
    pub was_encrypted: bool,
    /// The decrypted JSON bytes when the request was encrypted (`raw` parsed from
    /// them); `None` for a plain request, whose bytes the caller already has.
    pub decrypted: Option<Vec<u8>>,
}

impl Opened {
    /// The plain JSON bytes of the submission: the decrypted bytes, or `received`
    /// (the request body) when it was not encrypted.
    pub fn plain<'a>(&'a self, received: &'a [u8]) -> &'a [u8] {
        self.decrypted.as_deref().unwrap_or(received)
    }
}

/// Detects the `{"body": "<base64>"}` form, decrypts it with the key derived from
/// `api_key`, and parses the JSON object inside; a plain object is passed through.
///
/// `body` is not a field of the contract, so an object whose only key is `body`
/// with a string value is unambiguously an envelope.
pub fn open(bytes: &[u8], api_key: &str, policy: EncryptionPolicy) -> Result<Opened, Rejection> {
    let raw = RawSubmission::from_slice(bytes)?;
    if let [entry] = raw.entries()
        && entry.key() == "body"
        && let Some(data) = entry.value.as_text()
    {
        let plain = EnvelopeKey::from_api_key(api_key).decrypt_base64(data)?;
        return Ok(Opened {
            raw: RawSubmission::from_slice(&plain)?,
            was_encrypted: true,
            decrypted: Some(plain),
        });
    }
    if policy == EncryptionPolicy::Required {
        return Err(Rejection::new(ErrorCode::InvalidPayload));
    }
    Ok(Opened {
        raw,
        was_encrypted: false,
        decrypted: None,
    })
}

/// Builds the `{"body": …}` request form (used by `kycctl push --encrypt` and tests).
pub fn encrypt_request(api_key: &str, plain_json: &[u8]) -> Vec<u8> {
    let request = EncryptedRequest {
        body: EnvelopeKey::from_api_key(api_key).encrypt_to_base64(plain_json),
    };
    serde_json::to_vec(&request).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_is_the_prefix_the_nonce_then_what_the_one_shot_aead_api_returns() {
        let key = EnvelopeKey::from_bytes([7; 32]);
        let nonce = Nonce::from([9u8; NONCE_LEN]);
        let msg: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let sealed = key.seal_parts(b"P", &nonce, &msg, b"place");
        let one_shot = key
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: &msg,
                    aad: b"place",
                },
            )
            .unwrap();
        assert_eq!(sealed[0], b'P');
        assert_eq!(sealed[1..1 + NONCE_LEN], [9u8; NONCE_LEN]);
        assert_eq!(sealed[1 + NONCE_LEN..], one_shot[..]);
        assert_eq!(key.open_with_aad(&sealed[1..], b"place").unwrap(), msg);
        assert!(key.open_with_aad(&sealed[1..], b"elsewhere").is_none());
        // Without a prefix: what `seal_with_aad` returns, and it opens.
        let plain = key.seal_with_aad(&msg, b"place");
        assert_eq!(plain.len(), NONCE_LEN + msg.len() + TAG_LEN);
        assert_eq!(key.open_with_aad(&plain, b"place").unwrap(), msg);
    }
}
