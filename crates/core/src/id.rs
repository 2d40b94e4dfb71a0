//! Submission ids (`docs/api.md` §4, §5).
//!
//! - No idempotency key: a fresh UUIDv7, time-ordered so the primary-key index
//!   stays append-mostly.
//! - An idempotency key (HTTP `Idempotency-Key`, or AMQP `message_id`): UUIDv5 with
//!   the project id as namespace and the key as name, so the same key in the same
//!   project always names the same submission, and two projects never collide.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The longest idempotency key accepted (`docs/api.md` §5).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;

/// The id for a submission; stable when `idempotency_key` is given.
pub fn submission_id(project_id: Uuid, idempotency_key: Option<&str>) -> Uuid {
    match idempotency_key {
        Some(key) => Uuid::new_v5(&project_id, key.as_bytes()),
        None => Uuid::now_v7(),
    }
}

/// Whether a client-supplied idempotency key is acceptable: 1–200 characters,
/// printable ASCII, so it can travel as an HTTP header and an AMQP short string.
pub fn valid_idempotency_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().count() <= MAX_IDEMPOTENCY_KEY_CHARS
        && key.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// An idempotency key derived from a message's bytes, for direct publishers that
/// set no `message_id`: a redelivery of the same message then finds its row, at the
/// price that two byte-identical messages count as one submission.
pub fn content_key(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut key = String::with_capacity(7 + 64);
    key.push_str("sha256:");
    crate::hex::push(&mut key, &digest);
    key
}
