//! Submission ids (`docs/api.md` §4, §5): UUIDv5 for idempotency keys, UUIDv7 otherwise,
//! and the idempotency-key syntax.

#![allow(clippy::unwrap_used)]

use kyc_core::id::{MAX_IDEMPOTENCY_KEY_CHARS, content_key, submission_id, valid_idempotency_key};
use uuid::Uuid;

const PROJECT: Uuid = uuid::uuid!("0190f1a2-3b4c-7d5e-8f60-718293a4b5c6");
const OTHER_PROJECT: Uuid = uuid::uuid!("0190f1a2-3b4c-7d5e-8f60-718293a4b5c7");

#[test]
fn the_same_key_in_the_same_project_always_gives_the_same_v5_id() {
    let a = submission_id(PROJECT, Some("order-4711"));
    let b = submission_id(PROJECT, Some("order-4711"));
    assert_eq!(a, b);
    assert_eq!(a.get_version_num(), 5);
}

#[test]
fn the_derived_id_is_standard_uuid_v5_over_project_and_key() {
    // Known answers from Python: uuid.uuid5(UUID(PROJECT), key). Ids must never
    // change across releases, or a retried request would be stored twice.
    let cases = [
        (
            "ascii key",
            "order-4711",
            "beff7c6d-1068-50f6-966a-241e3144140f",
        ),
        (
            "non-ASCII key (UTF-8 bytes)",
            "ключ",
            "a22e6c66-1f7e-525a-be52-6515b173b50c",
        ),
    ];
    for (case, key, expected) in cases {
        assert_eq!(
            submission_id(PROJECT, Some(key)).to_string(),
            expected,
            "{case}"
        );
    }
}

#[test]
fn different_projects_or_keys_give_different_ids() {
    let base = submission_id(PROJECT, Some("order-4711"));
    assert_ne!(
        base,
        submission_id(OTHER_PROJECT, Some("order-4711")),
        "other project"
    );
    assert_ne!(
        base,
        submission_id(PROJECT, Some("order-4712")),
        "other key"
    );
    assert_ne!(
        base,
        submission_id(PROJECT, Some("Order-4711")),
        "keys are case-sensitive"
    );
}

#[test]
fn without_a_key_each_id_is_a_fresh_v7() {
    let ids: Vec<Uuid> = (0..100).map(|_| submission_id(PROJECT, None)).collect();
    assert!(ids.iter().all(|id| id.get_version_num() == 7), "all v7");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no repeats");
    // v7 ids from one process are time-ordered (the uuid crate's counter keeps
    // them monotonic within a millisecond), which keeps the primary key index
    // append-mostly.
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "monotonic");
}

#[test]
fn idempotency_keys_are_1_to_200_printable_ascii_characters() {
    assert_eq!(MAX_IDEMPOTENCY_KEY_CHARS, 200);
    let cases: [(&str, String, bool); 12] = [
        ("one character", "a".into(), true),
        ("exactly 200", "k".repeat(200), true),
        ("201", "k".repeat(201), false),
        ("empty", String::new(), false),
        (
            "UUID-like",
            "7f1c2a9e-0c7b-4b8e-9a51-3c2d1e0f9a8b".into(),
            true,
        ),
        (
            "every printable ASCII character",
            (0x20u8..0x7f).map(char::from).collect(),
            true,
        ),
        ("newline", "abc\n".into(), false),
        ("tab", "a\tb".into(), false),
        ("NUL", "a\0b".into(), false),
        ("DEL", "abc\x7f".into(), false),
        ("non-ASCII", "ключ".into(), false),
        ("200 non-ASCII characters", "é".repeat(200), false),
    ];
    for (case, key, ok) in cases {
        assert_eq!(valid_idempotency_key(&key), ok, "{case}");
    }
}

#[test]
fn content_keys_are_the_sha256_of_the_body() {
    assert_eq!(
        content_key(b"abc"),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        content_key(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(
        valid_idempotency_key(&content_key(b"anything")),
        "usable as an idempotency key"
    );
}
