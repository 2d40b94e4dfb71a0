//! Known-answer test for the `docs/api.md` §7 envelope against an independent
//! implementation: fixtures/envelope_kat.json was produced by
//! fixtures/make_kat.py with Python's `cryptography` (AESGCM).

#![allow(clippy::unwrap_used)]

use kyc_core::envelope::{self, EncryptionPolicy, EnvelopeKey};
use kyc_core::types::IdType;
use kyc_core::{ErrorCode, RawSubmission};
use serde::Deserialize;
use time::macros::date;

#[derive(Deserialize)]
struct Kat {
    api_key: String,
    key_sha256_hex: String,
    nonce_hex: String,
    plaintext: String,
    base64: String,
}

fn kat() -> Kat {
    serde_json::from_str(include_str!("fixtures/envelope_kat.json")).expect("fixture is valid JSON")
}

fn hex<const N: usize>(s: &str) -> [u8; N] {
    assert_eq!(s.len(), 2 * N, "hex length of {s}");
    std::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex digit"))
}

fn envelope_body(base64: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "body": base64 })).unwrap()
}

#[test]
fn the_python_ciphertext_decrypts_to_the_plaintext() {
    let kat = kat();
    let plain = EnvelopeKey::from_api_key(&kat.api_key)
        .decrypt_base64(&kat.base64)
        .unwrap();
    assert_eq!(String::from_utf8(plain).unwrap(), kat.plaintext);
}

#[test]
fn encrypting_with_the_same_nonce_reproduces_the_python_ciphertext() {
    let kat = kat();
    let nonce = hex::<12>(&kat.nonce_hex);
    let ours = EnvelopeKey::from_api_key(&kat.api_key)
        .encrypt_to_base64_with_nonce(nonce, kat.plaintext.as_bytes());
    assert_eq!(ours, kat.base64);
}

#[test]
fn the_envelope_key_is_the_sha256_of_the_api_key() {
    // from_bytes(digest computed by Python) must behave exactly like from_api_key.
    let kat = kat();
    let nonce = hex::<12>(&kat.nonce_hex);
    let key = EnvelopeKey::from_bytes(hex::<32>(&kat.key_sha256_hex));
    assert_eq!(
        key.encrypt_to_base64_with_nonce(nonce, kat.plaintext.as_bytes()),
        kat.base64
    );
}

#[test]
fn open_decrypts_the_body_form_into_the_record() {
    let kat = kat();
    let opened = envelope::open(
        &envelope_body(&kat.base64),
        &kat.api_key,
        EncryptionPolicy::Optional,
    )
    .unwrap();
    assert!(opened.was_encrypted, "was_encrypted");
    let expected = RawSubmission::from_slice(kat.plaintext.as_bytes()).unwrap();
    assert_eq!(
        opened.raw, expected,
        "the decrypted record, keys in document order"
    );

    let submission = opened.raw.validate(date!(2024 - 06 - 15)).unwrap();
    assert_eq!(
        submission.id_type,
        Some(IdType::DriversLicense),
        "drvlic alias"
    );
    assert_eq!(
        submission.issuing_country.unwrap().as_str(),
        "USA",
        "upper-cased"
    );
    assert_eq!(submission.full_name, "Jane Doe");
}

#[test]
fn open_with_encryption_required_accepts_the_body_form_and_refuses_plain() {
    let kat = kat();
    let opened = envelope::open(
        &envelope_body(&kat.base64),
        &kat.api_key,
        EncryptionPolicy::Required,
    )
    .unwrap();
    assert!(opened.was_encrypted);

    let plain = envelope::open(
        kat.plaintext.as_bytes(),
        &kat.api_key,
        EncryptionPolicy::Required,
    )
    .expect_err("plain body with encryption required");
    assert_eq!(plain.code, ErrorCode::InvalidPayload);
    assert!(plain.parameters.is_empty());
}

#[test]
fn open_with_another_api_key_is_invalid_payload() {
    let kat = kat();
    let rejection = envelope::open(
        &envelope_body(&kat.base64),
        "kyc_live_other",
        EncryptionPolicy::Optional,
    )
    .expect_err("wrong key");
    assert_eq!(rejection.code, ErrorCode::InvalidPayload);
}
