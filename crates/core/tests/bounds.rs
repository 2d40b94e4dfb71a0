//! Spec §2, "Shape of the document": how many keys an object may have and how
//! long a key may be. Parsing stays linear in the body, and nothing a client
//! sends is copied unbounded into an error message.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TODAY, full_record, many_unknown_keys, to_json, with};
use kyc_core::submission::{MAX_KEY_BYTES, MAX_KEYS};
use kyc_core::{ErrorCode, RawSubmission, Rejection, Submission};
use serde_json::Value;

fn check_bytes(bytes: &[u8]) -> Result<Submission, Rejection> {
    RawSubmission::from_slice(bytes)?.validate(TODAY)
}

fn code(bytes: &[u8]) -> ErrorCode {
    check_bytes(bytes).unwrap_err().code
}

#[test]
fn sixty_kilobytes_of_distinct_unknown_keys_is_invalid_payload() {
    let body = many_unknown_keys(4_500);
    assert!(
        body.len() > 60_000 && body.len() < 64 * 1024,
        "{}",
        body.len()
    );
    assert_eq!(code(&body), ErrorCode::InvalidPayload);
}

#[test]
fn up_to_the_key_limit_an_unknown_key_is_still_invalid_parameter() {
    // 64 keys: the 25 fields and 39 unknown ones; the first unknown key is named.
    let mut entries = full_record();
    for i in 0..MAX_KEYS - entries.len() {
        entries.push((format!("extra{i}"), Value::String("x".into())));
    }
    assert_eq!(entries.len(), MAX_KEYS);
    assert_eq!(
        check_bytes(&to_json(&entries)).unwrap_err(),
        Rejection::invalid_parameter("extra0")
    );
    // One more is no longer a submission object.
    entries.push(("one_too_many".into(), Value::String("x".into())));
    assert_eq!(code(&to_json(&entries)), ErrorCode::InvalidPayload);
}

#[test]
fn a_key_over_the_length_limit_is_invalid_payload() {
    let at_limit = "k".repeat(MAX_KEY_BYTES);
    assert_eq!(
        check_bytes(&to_json(&with(full_record(), &at_limit, "x"))).unwrap_err(),
        Rejection::invalid_parameter(&at_limit)
    );
    let over = "k".repeat(MAX_KEY_BYTES + 1);
    assert_eq!(
        code(&to_json(&with(full_record(), &over, "x"))),
        ErrorCode::InvalidPayload
    );
}

#[test]
fn a_repeated_unknown_key_is_still_invalid_payload() {
    let mut entries = full_record();
    entries.push(("a".into(), Value::String("1".into())));
    entries.push(("b".into(), Value::String("2".into())));
    entries.push(("a".into(), Value::String("3".into())));
    assert_eq!(code(&to_json(&entries)), ErrorCode::InvalidPayload);
}
