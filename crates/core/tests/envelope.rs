//! The `docs/api.md` §7 envelope's request and response forms and the encryption
//! policy, with fixed examples (the randomised checks are in properties.rs).

#![allow(clippy::unwrap_used)]

mod common;

use common::{full_record, to_json};
use kyc_core::envelope::{self, EncryptedResponse, EncryptionPolicy, EnvelopeKey};
use kyc_core::{ErrorCode, RawSubmission, Rejection};
use serde_json::{Value, json};

const API_KEY: &str = "kyc_test_0123456789abcdef0123456789abcdef";

#[track_caller]
fn assert_invalid_payload(case: &str, result: Result<envelope::Opened, Rejection>) {
    match result {
        Ok(opened) => panic!("{case}: expected invalid_payload, got {opened:?}"),
        Err(rejection) => assert_eq!(
            rejection,
            Rejection::new(ErrorCode::InvalidPayload),
            "{case}"
        ),
    }
}

#[test]
fn a_plain_body_passes_through_when_encryption_is_optional() {
    let plain = to_json(&full_record());
    let opened = envelope::open(&plain, API_KEY, EncryptionPolicy::Optional).unwrap();
    assert!(!opened.was_encrypted);
    assert_eq!(opened.raw, RawSubmission::from_slice(&plain).unwrap());
}

#[test]
fn an_encrypted_request_opens_under_either_policy() {
    let plain = to_json(&full_record());
    let request = envelope::encrypt_request(API_KEY, &plain);
    let form: Value = serde_json::from_slice(&request).unwrap();
    assert_eq!(
        form.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["body"],
        "request form"
    );
    for policy in [EncryptionPolicy::Optional, EncryptionPolicy::Required] {
        let opened = envelope::open(&request, API_KEY, policy).unwrap();
        assert!(opened.was_encrypted, "{policy:?}");
        assert_eq!(
            opened.raw,
            RawSubmission::from_slice(&plain).unwrap(),
            "{policy:?}"
        );
    }
}

#[test]
fn each_encryption_uses_a_fresh_nonce() {
    let key = EnvelopeKey::from_api_key(API_KEY);
    let a = key.encrypt_to_base64(b"same plaintext");
    let b = key.encrypt_to_base64(b"same plaintext");
    assert_ne!(a, b);
    assert_eq!(
        key.decrypt_base64(&a).unwrap(),
        key.decrypt_base64(&b).unwrap()
    );
}

#[test]
fn bodies_that_do_not_open_are_invalid_payload() {
    let key = EnvelopeKey::from_api_key(API_KEY);
    let not_an_object = key.encrypt_to_base64(b"[1,2,3]");
    let not_json = key.encrypt_to_base64(b"hello");
    let cases: Vec<(&str, Vec<u8>, EncryptionPolicy)> = vec![
        ("not JSON", b"{body".to_vec(), EncryptionPolicy::Optional),
        (
            "body is not Base64",
            br#"{"body":"!!!not base64!!!"}"#.to_vec(),
            EncryptionPolicy::Optional,
        ),
        (
            "body is empty",
            br#"{"body":""}"#.to_vec(),
            EncryptionPolicy::Optional,
        ),
        (
            "body shorter than nonce and tag",
            br#"{"body":"AAAA"}"#.to_vec(),
            EncryptionPolicy::Optional,
        ),
        (
            "plaintext is not an object",
            json!({ "body": not_an_object }).to_string().into_bytes(),
            EncryptionPolicy::Optional,
        ),
        (
            "plaintext is not JSON",
            json!({ "body": not_json }).to_string().into_bytes(),
            EncryptionPolicy::Optional,
        ),
        (
            "body is not a string, encryption required",
            br#"{"body":42}"#.to_vec(),
            EncryptionPolicy::Required,
        ),
        (
            "body next to another key, encryption required",
            br#"{"body":"AAAA","x":"y"}"#.to_vec(),
            EncryptionPolicy::Required,
        ),
        (
            "empty object, encryption required",
            b"{}".to_vec(),
            EncryptionPolicy::Required,
        ),
    ];
    for (case, bytes, policy) in cases {
        assert_invalid_payload(case, envelope::open(&bytes, API_KEY, policy));
    }
}

#[test]
fn a_body_key_that_is_not_an_envelope_is_left_to_validation() {
    // With encryption optional, `{"body": 42}` is a plain record with an unknown key.
    let opened = envelope::open(br#"{"body":42}"#, API_KEY, EncryptionPolicy::Optional).unwrap();
    assert!(!opened.was_encrypted);
    let rejection = opened.raw.validate(common::TODAY).unwrap_err();
    assert_eq!(rejection, Rejection::invalid_parameter("body"));
}

#[test]
fn an_encrypted_response_has_the_documented_shape_and_decrypts() {
    let key = EnvelopeKey::from_api_key(API_KEY);
    let body =
        json!({ "message": "success", "submissionId": "0190f1a2-3b4c-7d5e-8f60-000000000001" });
    let response = serde_json::to_value(EncryptedResponse::seal(&key, &body)).unwrap();
    assert_eq!(response["isEncrypted"], json!(true));
    assert_eq!(
        response.as_object().unwrap().len(),
        2,
        "isEncrypted and data only: {response}"
    );
    let data = response["data"].as_str().unwrap();
    let plain: Value = serde_json::from_slice(&key.decrypt_base64(data).unwrap()).unwrap();
    assert_eq!(plain, body);
}

#[test]
fn debug_output_does_not_reveal_the_key() {
    let debug = format!("{:?}", EnvelopeKey::from_api_key(API_KEY));
    assert_eq!(debug, "EnvelopeKey(<secret>)");
}
