//! The intake's seal: proof, for a worker, that an intake of this deployment has
//! already authenticated a message.
//!
//! A worker normally authenticates a message by its `x-api-key`. That is wrong for
//! a message the intake has already answered `200 success` for if the key was
//! rotated in between: the message would be refused, and a submission the client
//! was told is durably queued would be lost. So the intake adds the project id and
//! an HMAC-SHA256 over (submission id, project id) under a key derived from the
//! service data key, which only intake and workers hold. A worker that can verify
//! the seal trusts the project id; one that cannot (a direct publisher, a data key
//! that differs) falls back to the API key.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// The HMAC key, derived from the data key so that no extra secret is needed.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<secret>)")
    }
}

impl SealKey {
    /// Derives the seal key from the service data key's bytes (domain-separated,
    /// so the data key itself is never used as an HMAC key).
    pub fn derive(data_key: &[u8]) -> SealKey {
        let mut hash = Sha256::new();
        hash.update(b"kyc-ingest/intake-seal/v1\0");
        hash.update(data_key);
        SealKey(hash.finalize().into())
    }

    fn mac(&self, submission_id: Uuid, project_id: Uuid) -> HmacSha256 {
        // HMAC accepts keys of any length.
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(submission_id.as_bytes());
        mac.update(project_id.as_bytes());
        mac
    }

    /// The seal for a message, as lower-case hex.
    pub fn seal(&self, submission_id: Uuid, project_id: Uuid) -> String {
        let tag = self.mac(submission_id, project_id).finalize().into_bytes();
        let mut out = String::with_capacity(64);
        for b in tag {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Whether `seal` is this key's seal for the pair (compared in constant time).
    pub fn verify(&self, submission_id: Uuid, project_id: Uuid, seal: &str) -> bool {
        let Some(tag) = decode_hex(seal) else {
            return false;
        };
        self.mac(submission_id, project_id)
            .verify_slice(&tag)
            .is_ok()
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_verifies_only_for_its_pair_and_key() {
        let key = SealKey::derive(&[7u8; 32]);
        let (s, p) = (Uuid::now_v7(), Uuid::now_v7());
        let seal = key.seal(s, p);
        assert!(key.verify(s, p, &seal));
        assert!(!key.verify(p, s, &seal), "swapped ids");
        assert!(!key.verify(s, Uuid::now_v7(), &seal), "another project");
        assert!(
            !SealKey::derive(&[8u8; 32]).verify(s, p, &seal),
            "another data key"
        );
        assert!(!key.verify(s, p, &seal[..62]), "truncated");
        assert!(!key.verify(s, p, "zz"), "not hex");
        let mut flipped = seal.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        assert!(
            !key.verify(s, p, &String::from_utf8(flipped).unwrap_or_default()),
            "altered"
        );
    }
}
