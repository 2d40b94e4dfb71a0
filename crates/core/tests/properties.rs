//! Property tests: parsing never panics and only ever answers with a documented
//! code (checked against a small model of the §3 check order); valid records
//! survive serialise → parse; the envelope round-trips and refuses anything
//! that was not sealed under the same key.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Entries, REQUIRED, TODAY, full_record, to_json};
use kyc_core::envelope::{self, EncryptionPolicy, EnvelopeKey};
use kyc_core::submission::FIELDS;
use kyc_core::types::IdType;
use kyc_core::{ErrorCode, RawSubmission, Rejection, Submission};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;
use std::collections::HashSet;
use time::macros::date;

fn field_names() -> Vec<&'static str> {
    FIELDS.iter().map(|f| f.name).collect()
}

fn is_field(key: &str) -> bool {
    FIELDS.iter().any(|f| f.name == key)
}

// ---------------------------------------------------------------------------
// Strategies: arbitrary objects
// ---------------------------------------------------------------------------

/// Keys: mostly real field names, so deeper checks are reached, plus near
/// misses and arbitrary Unicode.
fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(field_names()).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{0,12}",
        1 => any::<String>(),
    ]
}

/// Strings that hit the interesting branches: arbitrary Unicode, blanks, NUL,
/// and plausible values of every rule.
fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        1 => select(vec![
            "", " ", "\t\n", "\0", "a\0b", "approved", "rejected", "female", "male", "drvlic",
            "passport", "usa", "DEU", "XXX", "1990-05-17", "2023-02-29", "2024-02-29",
            "2999-01-01", "::1", "192.0.2.1", "256.0.0.1", "a@b.co", "a@b", "x",
        ])
        .prop_map(str::to_owned),
        1 => "[ -~]{0,12}",
        1 => "[0-9]{4}-[0-9]{2}-[0-9]{2}",
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        any_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A value: mostly strings (the contract's "string data only"), sometimes not.
fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => any_string().prop_map(Value::String),
        1 => any_json(),
    ]
}

fn any_object() -> impl Strategy<Value = Entries> {
    prop::collection::vec((any_key(), any_value()), 0..30)
}

/// The full valid record with a few fields overwritten by arbitrary values.
fn mutated_record() -> impl Strategy<Value = (Entries, Vec<String>)> {
    prop::collection::vec((select(field_names()), any_value()), 1..4).prop_map(|overrides| {
        let names = overrides.iter().map(|(k, _)| k.to_string()).collect();
        let entries = overrides
            .into_iter()
            .fold(full_record(), |e, (k, v)| common::with(e, k, v));
        (entries, names)
    })
}

// ---------------------------------------------------------------------------
// The model of `docs/api.md` §3 for an object whose keys are unique
// ---------------------------------------------------------------------------

fn is_blank(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.trim().is_empty())
}

/// Bad under every field's rule: not a string, or a string holding NUL.
fn always_bad(value: &Value) -> bool {
    value.as_str().is_none_or(|s| s.contains('\0'))
}

/// What the check order of `docs/api.md` §3 says must happen, as far as it can be told
/// without re-implementing every field rule: `Some(rejection)` when the outcome
/// is determined, `None` when it is "Ok or invalid_format".
fn expected_before_formats(entries: &[(String, Value)]) -> Option<Rejection> {
    let mut seen = HashSet::new();
    if !entries.iter().all(|(k, _)| seen.insert(k.as_str())) {
        return Some(Rejection::new(ErrorCode::InvalidPayload));
    }
    if let Some((unknown, _)) = entries.iter().find(|(k, _)| !is_field(k)) {
        return Some(Rejection::invalid_parameter(unknown));
    }
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|name| {
            entries
                .iter()
                .find(|(k, _)| k == *name)
                .is_none_or(|(_, v)| is_blank(v))
        })
        .map(|name| name.to_string())
        .collect();
    (!missing.is_empty()).then(|| Rejection::missing(missing))
}

fn check(bytes: &[u8]) -> Result<Submission, Rejection> {
    RawSubmission::from_slice(bytes)?.validate(TODAY)
}

/// Asserts the outcome follows the check order; returns the rejection, if any.
fn assert_follows_check_order(
    entries: &[(String, Value)],
) -> Result<Option<Rejection>, TestCaseError> {
    let result = check(&to_json(entries));
    match expected_before_formats(entries) {
        Some(expected) => {
            prop_assert_eq!(result.as_ref().err(), Some(&expected), "check order");
            Ok(Some(expected))
        }
        None => match result {
            Ok(_) => {
                let bad = entries.iter().find(|(_, v)| always_bad(v));
                prop_assert!(bad.is_none(), "accepted {:?}", bad);
                Ok(None)
            }
            Err(rejection) => {
                prop_assert_eq!(rejection.code, ErrorCode::InvalidFormat);
                prop_assert_eq!(rejection.parameters.len(), 1);
                let name = &rejection.parameters[0];
                let position = entries.iter().position(|(k, _)| k == name);
                prop_assert!(
                    position.is_some(),
                    "invalid_format names a key that is not in the document: {}",
                    name
                );
                // Nothing before the named field was always bad (it would have
                // been named instead).
                let first_bad = entries.iter().position(|(_, v)| always_bad(v));
                prop_assert!(
                    first_bad.is_none_or(|i| i >= position.unwrap_or(0)),
                    "{:?}",
                    entries
                );
                Ok(Some(rejection))
            }
        },
    }
}

fn is_validation_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidPayload
            | ErrorCode::InvalidParameter
            | ErrorCode::MissingData
            | ErrorCode::InvalidFormat
    )
}

proptest! {
    #[test]
    fn arbitrary_objects_are_judged_in_the_spec_check_order(entries in any_object()) {
        assert_follows_check_order(&entries)?;
    }

    #[test]
    fn a_mutated_valid_record_fails_only_at_a_mutated_field((entries, mutated) in mutated_record()) {
        if let Some(rejection) = assert_follows_check_order(&entries)? {
            // Changing issueDate can make the untouched expireDate precede it.
            let may_fail = |name: &String| {
                mutated.contains(name) || (name == "expireDate" && mutated.iter().any(|m| m == "issueDate"))
            };
            prop_assert!(rejection.parameters.iter().all(may_fail), "{:?} after mutating {:?}", rejection, mutated);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_give_a_documented_code(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(rejection) = RawSubmission::from_slice(&bytes) {
            prop_assert_eq!(rejection, Rejection::new(ErrorCode::InvalidPayload));
        }
        if let Err(rejection) = Submission::parse(&bytes) {
            prop_assert!(is_validation_code(rejection.code), "{:?}", rejection);
        }
        for policy in [EncryptionPolicy::Optional, EncryptionPolicy::Required] {
            if let Err(rejection) = envelope::open(&bytes, "some api key", policy) {
                prop_assert_eq!(rejection, Rejection::new(ErrorCode::InvalidPayload));
            }
        }
    }

    #[test]
    fn corrupted_valid_json_never_panics(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = to_json(&full_record());
        let i = position.index(bytes.len());
        bytes[i] = byte;
        if let Err(rejection) = Submission::parse(&bytes) {
            prop_assert!(is_validation_code(rejection.code), "{:?}", rejection);
        }
    }
}

// ---------------------------------------------------------------------------
// Strategies: valid records
// ---------------------------------------------------------------------------

fn email() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9+_-]{1,10}(\\.[a-zA-Z0-9!#$%&'*/=?^_`{|}~-]{1,8}){0,2}@([a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\\.){1,3}[a-zA-Z]{2,6}"
}

/// 1..=max characters of arbitrary Unicode except NUL, trimmed, non-blank.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 1..=max).prop_map(|chars| {
        let s: String = chars
            .into_iter()
            .map(|c| if c == '\0' { '?' } else { c })
            .collect();
        match s.trim() {
            "" => "x".to_owned(),
            trimmed => trimmed.to_owned(),
        }
    })
}

fn date_between(from: time::Date, to: time::Date) -> impl Strategy<Value = time::Date> {
    (from.to_julian_day()..=to.to_julian_day())
        .prop_map(|day| time::Date::from_julian_day(day).unwrap())
}

fn iso(date: time::Date) -> String {
    kyc_core::types::IsoDate(date).to_string()
}

/// A country code from the table, in random case.
fn country() -> impl Strategy<Value = String> {
    (
        select(kyc_core::country::ALPHA3.to_vec()),
        any::<[bool; 3]>(),
    )
        .prop_map(|(code, lower)| {
            code.iter()
                .zip(lower)
                .map(|(&b, lower)| char::from(if lower { b.to_ascii_lowercase() } else { b }))
                .collect()
        })
}

fn id_type() -> impl Strategy<Value = String> {
    let mut codes: Vec<&str> = IdType::ALL.iter().map(|t| t.as_str()).collect();
    codes.push("drvlic");
    select(codes).prop_map(str::to_owned)
}

/// Surrounding white space that validation must trim away.
fn padding() -> impl Strategy<Value = (&'static str, &'static str)> {
    (
        select(vec!["", "", " ", "\t", "\u{2003}"]),
        select(vec!["", "", " ", "\n", "\u{00a0}"]),
    )
}

/// Zero or more entries of one record (two for the issue/expiry pair).
type FieldStrategy = BoxedStrategy<Entries>;

fn entry(name: &str, value: String) -> (String, Value) {
    (name.to_owned(), Value::String(value))
}

fn present(name: &'static str, value: impl Strategy<Value = String> + 'static) -> FieldStrategy {
    (value, padding())
        .prop_map(move |(v, (before, after))| vec![entry(name, format!("{before}{v}{after}"))])
        .boxed()
}

/// An optional field: a value, or left out, or sent as "" (which means absent).
fn optional(name: &'static str, value: impl Strategy<Value = String> + 'static) -> FieldStrategy {
    prop_oneof![
        3 => present(name, value),
        1 => Just(vec![]),
        1 => Just(vec![entry(name, String::new())]),
    ]
    .boxed()
}

/// issueDate and expireDate, each optional, never expiring before issue.
fn document_dates() -> FieldStrategy {
    let any_date = || date_between(date!(0000 - 01 - 01), date!(9999 - 12 - 31));
    (any_date(), any_date(), any::<[bool; 2]>())
        .prop_map(|(a, b, [with_issue, with_expire])| {
            let mut entries = Vec::new();
            if with_issue {
                entries.push(entry("issueDate", iso(a.min(b))));
            }
            if with_expire {
                entries.push(entry("expireDate", iso(a.max(b))));
            }
            entries
        })
        .boxed()
}

/// A valid record in random document order.
fn valid_record() -> impl Strategy<Value = Entries> {
    let fields: Vec<FieldStrategy> = vec![
        present("admin", email()),
        present("email", email()),
        present("fullName", text(200)),
        present(
            "birthDate",
            date_between(date!(1900 - 01 - 01), TODAY).prop_map(iso),
        ),
        present(
            "kycStatus",
            select(vec!["approved", "rejected"]).prop_map(str::to_owned),
        ),
        optional("firstName", text(100)),
        optional("lastName", text(100)),
        optional("idType", id_type()),
        optional("issuingCountry", country()),
        optional("nationality", country()),
        optional(
            "gender",
            select(vec!["female", "male"]).prop_map(str::to_owned),
        ),
        document_dates(),
        optional(
            "ipAddress",
            any::<std::net::IpAddr>().prop_map(|ip| ip.to_string()),
        ),
        optional("identityNumber", text(100)),
        optional("documentNumber", text(100)),
        optional("address_city", text(200)),
        optional("address_country", text(200)),
        optional("address_state", text(200)),
        optional("address_street", text(200)),
        optional("address_full", text(500)),
        optional("cf1", text(1000)),
        optional("cf2", text(1000)),
        optional("cf3", text(1000)),
        optional("userid", text(200)),
    ];
    fields
        .prop_map(|fields| fields.into_iter().flatten().collect::<Entries>())
        .prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_valid_record_survives_serialise_then_parse(entries in valid_record()) {
        let first = check(&to_json(&entries));
        prop_assert!(first.is_ok(), "generated record refused: {:?}\n{:?}", first, entries);
        let first = first.unwrap();
        let bytes = serde_json::to_vec(&first).unwrap();
        let second = check(&bytes);
        prop_assert!(second.is_ok(), "serialised record refused: {:?}", second);
        prop_assert_eq!(second.unwrap(), first);
    }
}

// ---------------------------------------------------------------------------
// The envelope
// ---------------------------------------------------------------------------

fn sealed_input() -> impl Strategy<Value = (String, Vec<u8>)> {
    (any::<String>(), prop::collection::vec(any::<u8>(), 0..1024))
}

fn assert_invalid_payload(result: Result<Vec<u8>, Rejection>) -> Result<(), TestCaseError> {
    prop_assert_eq!(result, Err(Rejection::new(ErrorCode::InvalidPayload)));
    Ok(())
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unbase64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

proptest! {
    #[test]
    fn encrypt_then_decrypt_round_trips((api_key, plain) in sealed_input()) {
        let key = EnvelopeKey::from_api_key(&api_key);
        let sealed = key.encrypt_to_base64(&plain);
        prop_assert_eq!(unbase64(&sealed).len(), 12 + plain.len() + 16, "nonce ‖ ciphertext ‖ tag");
        prop_assert_eq!(key.decrypt_base64(&sealed).unwrap(), plain);
    }

    #[test]
    fn another_key_cannot_decrypt((api_key, plain) in sealed_input(), other in any::<String>()) {
        prop_assume!(other != api_key);
        let sealed = EnvelopeKey::from_api_key(&api_key).encrypt_to_base64(&plain);
        assert_invalid_payload(EnvelopeKey::from_api_key(&other).decrypt_base64(&sealed))?;
    }

    #[test]
    fn truncated_data_is_refused((api_key, plain) in sealed_input(), cut in any::<prop::sample::Index>()) {
        let key = EnvelopeKey::from_api_key(&api_key);
        let sealed = unbase64(&key.encrypt_to_base64(&plain));
        let shorter = &sealed[..cut.index(sealed.len())];
        assert_invalid_payload(key.decrypt_base64(&base64(shorter)))?;
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused((api_key, plain) in sealed_input(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let key = EnvelopeKey::from_api_key(&api_key);
        let mut sealed = unbase64(&key.encrypt_to_base64(&plain));
        let i = at.index(sealed.len());
        sealed[i] ^= 1 << bit;
        assert_invalid_payload(key.decrypt_base64(&base64(&sealed)))?;
    }

    #[test]
    fn non_base64_is_refused(
        (api_key, plain) in sealed_input(),
        at in any::<prop::sample::Index>(),
        junk in prop::char::any().prop_filter("outside the standard alphabet", |c| {
            !c.is_ascii_alphanumeric() && !"+/=".contains(*c) && !c.is_whitespace()
        }),
    ) {
        let key = EnvelopeKey::from_api_key(&api_key);
        let mut text = key.encrypt_to_base64(&plain);
        let i = at.index(text.len());
        text.insert(i, junk);
        assert_invalid_payload(key.decrypt_base64(&text))?;
    }

    #[test]
    fn open_returns_the_sealed_object((api_key, mut entries) in (any::<String>(), any_object())) {
        let mut seen = HashSet::new();
        entries.retain(|(k, _)| seen.insert(k.clone())); // duplicates are a different test
        let plain = to_json(&entries);
        let request = envelope::encrypt_request(&api_key, &plain);
        for policy in [EncryptionPolicy::Optional, EncryptionPolicy::Required] {
            let opened = envelope::open(&request, &api_key, policy).unwrap();
            prop_assert!(opened.was_encrypted);
            // Compared with parsing the plaintext, not with `entries`: JSON
            // floats do not round-trip exactly, and that is not the envelope's
            // business (non-string values are refused later anyway).
            prop_assert_eq!(&opened.raw, &RawSubmission::from_slice(&plain).unwrap());
            let read: Vec<&str> = opened.raw.entries().iter().map(|e| e.key()).collect();
            let sent: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            prop_assert_eq!(read, sent, "keys in document order");
        }
    }
}
