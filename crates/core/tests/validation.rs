//! Spec §2 field rules and the §3 check order, table-driven.
//!
//! Every case has a name and every assertion message carries it, so a failure
//! says which row of which table broke. Records go through the real byte parser
//! (`RawSubmission::from_slice`) and are validated against a fixed `TODAY`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Entries, REQUIRED, TODAY, full_record, minimal_record, repeat, to_json, with, without,
};
use kyc_core::types::{Gender, IdType, IsoDate, KycStatus};
use kyc_core::{ErrorCode, RawSubmission, Rejection, Submission};
use serde_json::{Value, json};
use time::macros::date;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn check(entries: &[(String, Value)]) -> Result<Submission, Rejection> {
    check_bytes(&to_json(entries))
}

fn check_bytes(bytes: &[u8]) -> Result<Submission, Rejection> {
    RawSubmission::from_slice(bytes)?.validate(TODAY)
}

#[track_caller]
fn assert_ok(case: &str, entries: &[(String, Value)]) -> Submission {
    match check(entries) {
        Ok(submission) => submission,
        Err(rejection) => panic!("{case}: expected Ok, got {rejection:?}"),
    }
}

/// Asserts the code, the parameters, the exact `docs/api.md` §3 message and the wire body.
#[track_caller]
fn assert_rejection(
    case: &str,
    result: Result<Submission, Rejection>,
    code: ErrorCode,
    parameters: &[&str],
) {
    let rejection = match result {
        Ok(submission) => panic!("{case}: expected {code}, got Ok({submission:?})"),
        Err(rejection) => rejection,
    };
    assert_eq!(rejection.code, code, "{case}: code ({rejection:?})");
    assert_eq!(rejection.parameters, parameters, "{case}: parameters");
    let message = match code {
        ErrorCode::InvalidParameter => format!("invalid parameter: {}", parameters[0]),
        ErrorCode::InvalidFormat => format!("invalid format: {}", parameters[0]),
        ErrorCode::MissingData => "Required input data is missing".to_owned(),
        ErrorCode::InvalidPayload => "Invalid payload".to_owned(),
        other => panic!("{case}: validation never yields {other}"),
    };
    assert_eq!(rejection.message(), message, "{case}: message");
    let body = serde_json::to_value(rejection.to_body()).unwrap();
    let mut expected = json!({ "errorCode": code.as_str(), "message": message });
    if !parameters.is_empty() {
        expected["parameters"] = json!(parameters);
    }
    assert_eq!(body, expected, "{case}: error body");
}

#[track_caller]
fn assert_rejected(case: &str, entries: &[(String, Value)], code: ErrorCode, parameters: &[&str]) {
    assert_rejection(case, check(entries), code, parameters);
}

#[track_caller]
fn assert_bad_format(case: &str, entries: &[(String, Value)], field: &str) {
    assert_rejected(case, entries, ErrorCode::InvalidFormat, &[field]);
}

/// The stored form of a submission: its serialisation, where absent optional
/// fields are omitted.
fn stored(submission: &Submission) -> serde_json::Map<String, Value> {
    match serde_json::to_value(submission).unwrap() {
        Value::Object(map) => map,
        other => panic!("a Submission serialises to an object, got {other}"),
    }
}

/// The stored value of one field of a record that must be accepted.
#[track_caller]
fn stored_field(case: &str, entries: &[(String, Value)], field: &str) -> Option<Value> {
    stored(&assert_ok(case, entries)).get(field).cloned()
}

fn reversed(mut entries: Entries) -> Entries {
    entries.reverse();
    entries
}

/// Moves `key` to the front of the document.
fn first(entries: Entries, key: &str) -> Entries {
    let (front, rest): (Entries, Entries) = entries.into_iter().partition(|(k, _)| k == key);
    front.into_iter().chain(rest).collect()
}

const OPTIONAL: [&str; 20] = [
    "firstName",
    "lastName",
    "idType",
    "issuingCountry",
    "nationality",
    "gender",
    "issueDate",
    "expireDate",
    "ipAddress",
    "identityNumber",
    "documentNumber",
    "address_city",
    "address_country",
    "address_state",
    "address_street",
    "address_full",
    "cf1",
    "cf2",
    "cf3",
    "userid",
];

/// Free-text fields and their limits in characters, copied from the `docs/api.md` §2
/// table (deliberately not from `kyc_core::submission::FIELDS`).
const TEXT_LIMITS: [(&str, usize); 13] = [
    ("fullName", 200),
    ("firstName", 100),
    ("lastName", 100),
    ("identityNumber", 100),
    ("documentNumber", 100),
    ("address_city", 200),
    ("address_country", 200),
    ("address_state", 200),
    ("address_street", 200),
    ("address_full", 500),
    ("cf1", 1000),
    ("cf2", 1000),
    ("cf3", 1000),
];

// ---------------------------------------------------------------------------
// Valid records
// ---------------------------------------------------------------------------

#[test]
fn the_full_record_is_accepted_and_stored_unchanged() {
    let submission = assert_ok("full record", &full_record());
    let expected: serde_json::Map<String, Value> = full_record().into_iter().collect();
    assert_eq!(stored(&submission), expected, "full record: stored form");
    assert_eq!(submission.admin.as_str(), "admin@example.com");
    assert_eq!(submission.full_name, "Jane Doe");
    assert_eq!(submission.birth_date, IsoDate(date!(1990 - 05 - 17)));
    assert_eq!(submission.kyc_status, KycStatus::Approved);
    assert_eq!(submission.id_type, Some(IdType::Passport));
    assert_eq!(submission.gender, Some(Gender::Female));
    assert_eq!(
        submission
            .issuing_country
            .map(|c| c.as_str().to_owned())
            .as_deref(),
        Some("USA")
    );
    assert_eq!(submission.expire_date, Some(IsoDate(date!(2030 - 01 - 15))));
    assert_eq!(submission.ip_address, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(submission.userid.as_deref(), Some("user-000123"));
}

#[test]
fn the_required_fields_alone_are_enough() {
    let submission = assert_ok("minimal record", &minimal_record());
    let expected: serde_json::Map<String, Value> = minimal_record().into_iter().collect();
    assert_eq!(
        stored(&submission),
        expected,
        "minimal record: only required fields stored"
    );
    assert_eq!(submission.first_name, None);
    assert_eq!(submission.ip_address, None);
}

#[test]
fn document_order_of_a_valid_record_does_not_matter() {
    let forward = assert_ok("spec order", &full_record());
    let backward = assert_ok("reversed order", &reversed(full_record()));
    assert_eq!(forward, backward);
}

#[test]
fn debug_output_does_not_reveal_personal_data() {
    let submission = assert_ok("full record", &full_record());
    let debug = format!("{submission:?}");
    for (field, value) in full_record() {
        let value = value.as_str().unwrap().to_owned();
        if ["kycStatus", "idType"].contains(&field.as_str()) {
            continue; // not personal; printed on purpose
        }
        assert!(!debug.contains(&value), "Debug leaks {field}: {debug}");
    }
}

// ---------------------------------------------------------------------------
// invalid_parameter
// ---------------------------------------------------------------------------

#[test]
fn an_unknown_key_is_invalid_parameter_naming_the_first_in_document_order() {
    let cases: Vec<(&str, Entries, &str)> = vec![
        (
            "unknown key at the end",
            with(full_record(), "foo", "bar"),
            "foo",
        ),
        (
            "unknown key first",
            first(with(full_record(), "foo", "bar"), "foo"),
            "foo",
        ),
        (
            "two unknown keys: document order, not alphabetical",
            with(with(full_record(), "zeta", "1"), "alpha", "1"),
            "zeta",
        ),
        (
            "field names are case-sensitive",
            with(full_record(), "FullName", "Jane Doe"),
            "FullName",
        ),
        (
            "snake_case spelling of a camelCase field",
            with(full_record(), "full_name", "x"),
            "full_name",
        ),
        (
            "white space around a key is not trimmed",
            with(full_record(), " email", "a@b.co"),
            " email",
        ),
        (
            "the envelope key inside a record",
            with(full_record(), "body", "x"),
            "body",
        ),
        ("empty key", with(full_record(), "", "x"), ""),
        (
            "unknown key with an empty value",
            with(full_record(), "extra", ""),
            "extra",
        ),
        (
            "unknown key with a non-string value",
            with(full_record(), "extra", json!({"a": 1})),
            "extra",
        ),
        (
            "images are not part of this API",
            with(full_record(), "selfie", "aGVsbG8="),
            "selfie",
        ),
    ];
    for (case, entries, name) in cases {
        assert_rejected(case, &entries, ErrorCode::InvalidParameter, &[name]);
    }
}

// ---------------------------------------------------------------------------
// missing_data
// ---------------------------------------------------------------------------

#[test]
fn each_required_field_absent_empty_or_blank_is_missing_data() {
    for field in REQUIRED {
        let cases: Vec<(String, Entries)> = vec![
            (format!("{field} absent"), without(full_record(), field)),
            (format!("{field} empty"), with(full_record(), field, "")),
            (format!("{field} spaces"), with(full_record(), field, "   ")),
            (
                format!("{field} tabs and newlines"),
                with(full_record(), field, "\t\r\n "),
            ),
            (
                format!("{field} unicode white space"),
                with(full_record(), field, "\u{00a0}\u{2003}"),
            ),
        ];
        for (case, entries) in cases {
            assert_rejected(&case, &entries, ErrorCode::MissingData, &[field]);
        }
    }
}

#[test]
fn missing_data_lists_all_missing_fields_in_spec_table_order() {
    let cases: Vec<(&str, Entries, &[&str])> = vec![
        ("empty object", vec![], &REQUIRED),
        (
            "only optional fields",
            REQUIRED.iter().fold(full_record(), |e, f| without(e, f)),
            &REQUIRED,
        ),
        (
            "two missing, document order reversed",
            reversed(without(with(full_record(), "email", ""), "birthDate")),
            &["email", "birthDate"],
        ),
        (
            "kycStatus and admin blank, admin last in the document",
            with(
                without(with(full_record(), "kycStatus", " "), "admin"),
                "admin",
                "",
            ),
            &["admin", "kycStatus"],
        ),
    ];
    for (case, entries, missing) in cases {
        assert_rejected(case, &entries, ErrorCode::MissingData, missing);
    }
}

// ---------------------------------------------------------------------------
// invalid_format: value types, NUL, first bad value
// ---------------------------------------------------------------------------

#[test]
fn a_non_string_value_is_invalid_format_for_every_field() {
    let non_strings = [
        ("number", json!(42)),
        ("float", json!(1.5)),
        ("bool", json!(true)),
        ("null", Value::Null),
        ("array", json!(["a@b.co"])),
        ("empty array", json!([])),
        ("object", json!({"value": "x"})),
    ];
    for field in REQUIRED.iter().chain(OPTIONAL.iter()) {
        for (kind, value) in &non_strings {
            let case = format!("{field} as {kind}");
            assert_bad_format(&case, &with(full_record(), field, value.clone()), field);
        }
    }
}

/// An object whose only key is serde_json's private raw-value token is still an
/// object. Read as a `serde_json::Value` (with the `raw_value` feature on), it
/// would become the string inside it, and a field would take an object.
#[test]
fn an_object_keyed_by_serde_jsons_raw_value_token_is_not_a_string() {
    for (field, value) in full_record() {
        let inside = serde_json::to_string(&value).unwrap();
        let object = json!({ "$serde_json::private::RawValue": inside });
        let case = format!("{field} as a raw-value token object");
        assert_bad_format(&case, &with(full_record(), &field, object), &field);
    }
}

#[test]
fn a_nul_character_in_any_value_is_invalid_format() {
    let text_fields = TEXT_LIMITS.iter().map(|(f, _)| *f).chain(["userid"]);
    for field in text_fields {
        for (kind, value) in [
            ("inside", "ab\0cd"),
            ("alone", "\0"),
            ("at the end", "abc\0"),
        ] {
            let case = format!("NUL {kind} {field}");
            assert_bad_format(&case, &with(full_record(), field, value), field);
        }
    }
    assert_bad_format(
        "NUL in email",
        &with(full_record(), "email", "a\0b@example.com"),
        "email",
    );
}

#[test]
fn invalid_format_names_the_first_bad_value_in_document_order() {
    let two_bad = with(with(full_record(), "email", "nope"), "birthDate", "never");
    let cases: Vec<(&str, Entries, &str)> = vec![
        ("email before birthDate", two_bad.clone(), "email"),
        ("birthDate before email", reversed(two_bad), "birthDate"),
        (
            "an optional field early in the document beats a required one",
            first(
                with(with(full_record(), "admin", "x"), "cf3", repeat('x', 1001)),
                "cf3",
            ),
            "cf3",
        ),
        (
            "a non-string after a bad string",
            with(with(full_record(), "gender", "other"), "userid", json!(7)),
            "gender",
        ),
        (
            "expireDate before issueDate is reported at expireDate's position",
            with(
                with(full_record(), "expireDate", "2019-01-01"),
                "ipAddress",
                "bad",
            ),
            "expireDate",
        ),
        (
            "... so a bad value placed earlier wins",
            first(
                with(
                    with(full_record(), "expireDate", "2019-01-01"),
                    "ipAddress",
                    "bad",
                ),
                "ipAddress",
            ),
            "ipAddress",
        ),
    ];
    for (case, entries, name) in cases {
        assert_bad_format(case, &entries, name);
    }
}

// ---------------------------------------------------------------------------
// Check order of `docs/api.md` §3
// ---------------------------------------------------------------------------

#[test]
fn checks_run_in_spec_order_payload_then_unknown_then_missing_then_format() {
    let unknown_only: Entries = vec![("foo".to_owned(), json!("x"))];
    let cases: Vec<(&str, Vec<u8>, ErrorCode, &[&str])> = vec![
        (
            "an unknown key wins over every required field missing",
            to_json(&unknown_only),
            ErrorCode::InvalidParameter,
            &["foo"],
        ),
        (
            "an unknown key wins over a bad value earlier in the document",
            to_json(&with(with(full_record(), "email", "nope"), "foo", "x")),
            ErrorCode::InvalidParameter,
            &["foo"],
        ),
        (
            "missing wins over a bad value",
            to_json(&with(
                without(full_record(), "admin"),
                "birthDate",
                "1990-02-30",
            )),
            ErrorCode::MissingData,
            &["admin"],
        ),
        (
            "missing wins over a non-string value",
            to_json(&with(
                without(full_record(), "kycStatus"),
                "fullName",
                json!(5),
            )),
            ErrorCode::MissingData,
            &["kycStatus"],
        ),
        (
            "a duplicate key is a payload error before anything else",
            {
                let mut entries = with(full_record(), "foo", "x");
                entries.push(("foo".to_owned(), json!("y")));
                to_json(&entries)
            },
            ErrorCode::InvalidPayload,
            &[],
        ),
    ];
    for (case, bytes, code, parameters) in cases {
        assert_rejection(case, check_bytes(&bytes), code, parameters);
    }
}

// ---------------------------------------------------------------------------
// invalid_payload
// ---------------------------------------------------------------------------

#[test]
fn a_body_that_is_not_exactly_one_json_object_is_invalid_payload() {
    let record = to_json(&full_record());
    let record_str = String::from_utf8(record.clone()).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", b"".to_vec()),
        ("only white space", b"  \n".to_vec()),
        ("not JSON", b"hello".to_vec()),
        ("form encoding", b"email=a%40b.co&fullName=Jane".to_vec()),
        ("array", b"[]".to_vec()),
        (
            "record inside an array",
            format!("[{record_str}]").into_bytes(),
        ),
        ("string", br#""{}""#.to_vec()),
        ("number", b"42".to_vec()),
        ("null", b"null".to_vec()),
        ("boolean", b"true".to_vec()),
        ("truncated", record[..record.len() - 1].to_vec()),
        ("trailing garbage", format!("{record_str} x").into_bytes()),
        ("a second object", format!("{record_str}{{}}").into_bytes()),
        (
            "the record twice",
            format!("{record_str}\n{record_str}").into_bytes(),
        ),
        ("trailing comma", br#"{"email":"a@b.co",}"#.to_vec()),
        ("single quotes", b"{'email':'a@b.co'}".to_vec()),
        (
            "duplicate key",
            br#"{"email":"a@b.co","email":"c@d.co"}"#.to_vec(),
        ),
        (
            "duplicate key with the same value",
            br#"{"email":"a@b.co","email":"a@b.co"}"#.to_vec(),
        ),
        (
            "duplicate unknown key",
            br#"{"shoeSize":"44","email":"a@b.co","shoeSize":"45"}"#.to_vec(),
        ),
        (
            "duplicate key after an unknown one",
            br#"{"email":"a@b.co","shoeSize":"44","email":"c@d.co"}"#.to_vec(),
        ),
        (
            "duplicate key spelled with an escape",
            br#"{"email":"a@b.co","\u0065mail":"c@d.co"}"#.to_vec(),
        ),
        (
            "invalid UTF-8 in a value",
            b"{\"fullName\":\"\xff\xfe\"}".to_vec(),
        ),
        (
            "lone surrogate escape",
            br#"{"fullName":"\ud800"}"#.to_vec(),
        ),
        (
            "byte order mark",
            [b"\xef\xbb\xbf".as_slice(), &record].concat(),
        ),
    ];
    for (case, bytes) in cases {
        assert_rejection(case, check_bytes(&bytes), ErrorCode::InvalidPayload, &[]);
    }
}

#[test]
fn white_space_around_the_object_is_allowed() {
    let record = String::from_utf8(to_json(&full_record())).unwrap();
    let padded = format!(" \n\t{record}\r\n ");
    assert!(check_bytes(padded.as_bytes()).is_ok(), "padded record");
}

// ---------------------------------------------------------------------------
// Trimming and absent optional fields
// ---------------------------------------------------------------------------

#[test]
fn values_are_trimmed_and_nothing_else_is_rewritten() {
    let cases: [(&str, &str, &str, &str); 8] = [
        ("padded full name", "fullName", "  Jane Doe \t", "Jane Doe"),
        (
            "inner white space kept",
            "fullName",
            " Jane   Doe ",
            "Jane   Doe",
        ),
        ("case kept in names", "lastName", "\nMcDONALD\n", "McDONALD"),
        (
            "padded email, case kept",
            "email",
            " Jane.Doe@Example.COM ",
            "Jane.Doe@Example.COM",
        ),
        ("padded date", "birthDate", "\t1990-05-17\n", "1990-05-17"),
        ("padded enum", "kycStatus", " rejected ", "rejected"),
        ("padded id type", "idType", "  visa  ", "visa"),
        (
            "unicode white space trimmed",
            "cf1",
            "\u{2003}note\u{00a0}",
            "note",
        ),
    ];
    for (case, field, input, output) in cases {
        let value = stored_field(case, &with(full_record(), field, input), field);
        assert_eq!(value, Some(json!(output)), "{case}");
    }
}

#[test]
fn an_optional_field_sent_empty_or_blank_counts_as_absent() {
    for field in OPTIONAL {
        for (kind, value) in [("empty", ""), ("blank", "  \t ")] {
            let case = format!("{field} {kind}");
            let stored = stored_field(&case, &with(full_record(), field, value), field);
            assert_eq!(stored, None, "{case}: stored as absent");
            let stored = stored_field(&case, &without(full_record(), field), field);
            assert_eq!(stored, None, "{field} absent");
        }
    }
}

#[test]
fn an_empty_issue_date_does_not_constrain_expire_date() {
    let entries = with(
        with(full_record(), "issueDate", ""),
        "expireDate",
        "2001-01-01",
    );
    assert_ok("empty issueDate, early expireDate", &entries);
}

// ---------------------------------------------------------------------------
// Text lengths
// ---------------------------------------------------------------------------

#[test]
fn text_limits_are_inclusive_and_counted_in_characters_not_bytes() {
    let limits = TEXT_LIMITS.iter().copied().chain([("userid", 200)]);
    for (field, max) in limits {
        // 'é' is two bytes and '𝄞' four in UTF-8: a byte count would reject these.
        for c in ['x', 'é', '𝄞'] {
            let at_max = repeat(c, max);
            let case = format!("{field}: {max} × {c:?}");
            let value = stored_field(&case, &with(full_record(), field, at_max.as_str()), field);
            assert_eq!(value, Some(json!(at_max)), "{case}: stored unchanged");

            let case = format!("{field}: {max} × {c:?} plus surrounding white space");
            let padded = format!("  {at_max}\t");
            assert_ok(&case, &with(full_record(), field, padded));

            let case = format!("{field}: {} × {c:?}", max + 1);
            assert_bad_format(
                &case,
                &with(full_record(), field, repeat(c, max + 1)),
                field,
            );
        }
        let case = format!("{field}: a single character");
        assert_ok(&case, &with(full_record(), field, "J"));
    }
}

// ---------------------------------------------------------------------------
// E-mail
// ---------------------------------------------------------------------------

fn long_email(total: usize) -> String {
    // 64-character local part, labels of 63, 63 and (total - 137) characters, ".com".
    let local = repeat('a', 64);
    let third = repeat('d', total - 64 - 1 - 63 - 1 - 63 - 1 - 4);
    format!(
        "{local}@{}.{}.{third}.com",
        repeat('b', 63),
        repeat('c', 63)
    )
}

#[test]
fn e_mail_syntax_is_checked_for_admin_and_email() {
    let good = [
        ("short", "a@b.co".to_owned()),
        (
            "dots and plus",
            "first.last+tag@mail.example.org".to_owned(),
        ),
        (
            "atext specials",
            "o'brien_x-y!#$%&*/=?^`{|}~@example.ie".to_owned(),
        ),
        ("upper case", "JANE@EXAMPLE.COM".to_owned()),
        ("digits in the domain", "user@123.example.com".to_owned()),
        ("hyphen inside a label", "user@my-host.example".to_owned()),
        ("punycode domain", "user@xn--bcher-kva.example".to_owned()),
        (
            "64-character local part",
            format!("{}@example.com", repeat('a', 64)),
        ),
        ("254 characters in all", long_email(254)),
    ];
    let bad = [
        ("no at sign", "plainaddress".to_owned()),
        ("no local part", "@example.com".to_owned()),
        ("no domain", "user@".to_owned()),
        ("single-label domain", "user@localhost".to_owned()),
        ("two at signs", "user@@example.com".to_owned()),
        ("at sign in the domain", "a@b@example.com".to_owned()),
        ("space in the local part", "us er@example.com".to_owned()),
        ("space in the domain", "user@exa mple.com".to_owned()),
        ("leading dot", ".user@example.com".to_owned()),
        (
            "trailing dot in the local part",
            "user.@example.com".to_owned(),
        ),
        (
            "double dot in the local part",
            "us..er@example.com".to_owned(),
        ),
        ("double dot in the domain", "user@example..com".to_owned()),
        ("trailing dot in the domain", "user@example.com.".to_owned()),
        (
            "label starting with a hyphen",
            "user@-example.com".to_owned(),
        ),
        ("label ending with a hyphen", "user@example-.com".to_owned()),
        ("one-letter top-level domain", "user@example.c".to_owned()),
        ("non-ASCII local part", "jäne@example.com".to_owned()),
        ("non-ASCII domain", "user@bücher.de".to_owned()),
        ("quoted local part", "\"jane doe\"@example.com".to_owned()),
        ("address literal", "user@[192.0.2.1]".to_owned()),
        ("display name form", "Jane <jane@example.com>".to_owned()),
        (
            "65-character local part",
            format!("{}@example.com", repeat('a', 65)),
        ),
        (
            "64-character domain label",
            format!("user@{}.com", repeat('b', 64)),
        ),
        ("255 characters in all", long_email(255)),
    ];
    for field in ["admin", "email"] {
        for (name, value) in &good {
            let case = format!("{field}: {name}");
            let stored = stored_field(&case, &with(full_record(), field, value.as_str()), field);
            assert_eq!(stored, Some(json!(value)), "{case}: stored as given");
        }
        for (name, value) in &bad {
            let case = format!("{field}: {name}");
            assert_bad_format(&case, &with(full_record(), field, value.as_str()), field);
        }
    }
}

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

#[test]
fn dates_must_be_real_calendar_dates_written_yyyy_mm_dd() {
    let good = [
        ("leap day in a leap year", "2024-02-29"),
        ("leap day in a 400-year", "2000-02-29"),
        ("first day of the year", "2001-01-01"),
        ("last day of the year", "2001-12-31"),
        ("thirty-day month end", "2001-04-30"),
    ];
    let bad = [
        ("leap day in a common year", "2023-02-29"),
        ("leap day in a 100-year", "1900-02-29"),
        ("February 30", "2024-02-30"),
        ("April 31", "2024-04-31"),
        ("month 13", "2024-13-01"),
        ("month 00", "2024-00-10"),
        ("day 00", "2024-01-00"),
        ("day 32", "2024-01-32"),
        ("one-digit month", "2024-1-01"),
        ("one-digit day", "2024-01-1"),
        ("two-digit year", "24-01-01"),
        ("five-digit year", "12024-01-01"),
        ("signed year", "+2001-01-01"),
        ("slashes", "2001/01/01"),
        ("day first", "01-01-2001"),
        ("no separators", "20010101"),
        ("with a time", "2001-01-01T00:00:00Z"),
        ("with a time after a space", "2001-01-01 00:00"),
        ("letters", "2001-0a-01"),
        ("full-width digits", "２００１-01-01"),
        ("word", "yesterday"),
    ];
    for field in ["birthDate", "issueDate", "expireDate"] {
        // Keep issueDate ≤ expireDate out of the way: test each date on its own.
        let base = if field == "birthDate" {
            full_record()
        } else {
            without(without(full_record(), "issueDate"), "expireDate")
        };
        for (name, value) in good {
            let case = format!("{field}: {name}");
            let stored = stored_field(&case, &with(base.clone(), field, value), field);
            assert_eq!(stored, Some(json!(value)), "{case}: stored unchanged");
        }
        for (name, value) in bad {
            let case = format!("{field}: {name}");
            assert_bad_format(&case, &with(base.clone(), field, value), field);
        }
    }
}

#[test]
fn birth_date_must_not_be_in_the_future() {
    assert_eq!(
        TODAY,
        date!(2024 - 06 - 15),
        "the cases below assume this TODAY"
    );
    let cases = [
        ("today", "2024-06-15", true),
        ("yesterday", "2024-06-14", true),
        ("long ago", "1900-01-01", true),
        ("tomorrow", "2024-06-16", false),
        ("next year", "2025-06-15", false),
        ("far future", "9999-12-31", false),
    ];
    for (case, value, ok) in cases {
        let entries = with(full_record(), "birthDate", value);
        if ok {
            assert_ok(case, &entries);
        } else {
            assert_bad_format(case, &entries, "birthDate");
        }
    }
}

#[test]
fn birth_date_today_is_judged_by_the_date_passed_to_validate() {
    let raw = RawSubmission::from_slice(&to_json(&with(full_record(), "birthDate", "2030-01-01")))
        .unwrap();
    assert!(
        raw.clone().validate(date!(2030 - 01 - 01)).is_ok(),
        "born on that day"
    );
    let rejection = raw
        .validate(date!(2029 - 12 - 31))
        .expect_err("born the next day");
    assert_eq!(rejection, Rejection::invalid_format("birthDate"));
}

#[test]
fn document_dates_may_be_in_the_future() {
    let entries = with(
        with(full_record(), "issueDate", "2090-01-01"),
        "expireDate",
        "2099-01-01",
    );
    assert_ok("issue and expiry in the future", &entries);
}

#[test]
fn expire_date_must_not_be_before_issue_date() {
    let pair = |issue: &str, expire: &str| {
        with(
            with(full_record(), "issueDate", issue),
            "expireDate",
            expire,
        )
    };
    let cases: Vec<(&str, Entries, Option<&str>)> = vec![
        (
            "one day before",
            pair("2020-01-15", "2020-01-14"),
            Some("expireDate"),
        ),
        (
            "years before",
            pair("2020-01-15", "2001-01-01"),
            Some("expireDate"),
        ),
        ("equal dates", pair("2020-01-15", "2020-01-15"), None),
        ("one day after", pair("2020-01-15", "2020-01-16"), None),
        (
            "expireDate first in the document, still expireDate",
            first(pair("2020-01-15", "2019-01-01"), "expireDate"),
            Some("expireDate"),
        ),
        (
            "issueDate malformed: reported at issueDate",
            pair("2020-13-15", "2019-01-01"),
            Some("issueDate"),
        ),
        (
            "expireDate alone",
            without(pair("2020-01-15", "2001-01-01"), "issueDate"),
            None,
        ),
        (
            "issueDate alone",
            without(pair("2020-01-15", "2001-01-01"), "expireDate"),
            None,
        ),
    ];
    for (case, entries, bad) in cases {
        match bad {
            Some(field) => assert_bad_format(case, &entries, field),
            None => {
                assert_ok(case, &entries);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Closed sets: kycStatus, gender, idType, countries
// ---------------------------------------------------------------------------

/// For each field: values that are stored as the given output, and bad values.
#[allow(clippy::type_complexity)]
fn closed_sets() -> Vec<(
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<&'static str>,
)> {
    vec![
        (
            "kycStatus",
            vec![("approved", "approved"), ("rejected", "rejected")],
            vec![
                "Approved",
                "APPROVED",
                "pending",
                "approve",
                "approved.",
                "accepted",
            ],
        ),
        (
            "gender",
            vec![("female", "female"), ("male", "male")],
            vec!["Female", "MALE", "f", "m", "other", "unknown"],
        ),
        (
            "idType",
            vec![
                ("drivers_license", "drivers_license"),
                ("government_id", "government_id"),
                ("passport", "passport"),
                ("residence_permit", "residence_permit"),
                (
                    "vehicle_registration_certificate",
                    "vehicle_registration_certificate",
                ),
                ("visa", "visa"),
                ("aadhaar", "aadhaar"),
                ("pancard", "pancard"),
                ("drvlic", "drivers_license"),
            ],
            vec![
                "Passport",
                "PASSPORT",
                "DRVLIC",
                "id_card",
                "driver_license",
                "drivers license",
                "pan_card",
            ],
        ),
        (
            "issuingCountry",
            vec![
                ("USA", "USA"),
                ("usa", "USA"),
                ("Deu", "DEU"),
                ("gBr", "GBR"),
                ("ala", "ALA"),
            ],
            vec![
                "US",
                "USAA",
                "XXX",
                "UKK",
                "YUG",
                "123",
                "U S",
                "ÜSA",
                "United States",
            ],
        ),
        (
            "nationality",
            vec![
                ("FRA", "FRA"),
                ("fra", "FRA"),
                ("jPn", "JPN"),
                ("ssd", "SSD"),
            ],
            vec!["FR", "FRAN", "ZZZ", "EUR", "fr a", "1FR"],
        ),
    ]
}

#[test]
fn closed_set_fields_accept_exactly_their_values() {
    for (field, good, bad) in closed_sets() {
        for (input, output) in good {
            let case = format!("{field} = {input:?}");
            let stored = stored_field(&case, &with(full_record(), field, input), field);
            assert_eq!(stored, Some(json!(output)), "{case}: stored form");
        }
        for input in bad {
            let case = format!("{field} = {input:?}");
            assert_bad_format(&case, &with(full_record(), field, input), field);
        }
    }
}

#[test]
fn the_drvlic_alias_is_stored_as_drivers_license() {
    let submission = assert_ok("drvlic", &with(full_record(), "idType", " drvlic "));
    assert_eq!(submission.id_type, Some(IdType::DriversLicense));
}

#[test]
fn every_country_of_the_table_is_accepted_in_any_case() {
    for code in kyc_core::country::ALPHA3 {
        let upper = String::from_utf8(code.to_vec()).unwrap();
        let lower = upper.to_ascii_lowercase();
        let case = format!("nationality = {lower}");
        let stored = stored_field(
            &case,
            &with(minimal_record(), "nationality", lower.as_str()),
            "nationality",
        );
        assert_eq!(stored, Some(json!(upper)), "{case}");
    }
}

// ---------------------------------------------------------------------------
// IP addresses
// ---------------------------------------------------------------------------

#[test]
fn ip_address_must_be_an_ipv4_or_ipv6_literal() {
    let good = [
        ("IPv4", "192.0.2.1"),
        ("IPv4 unspecified", "0.0.0.0"),
        ("IPv4 broadcast", "255.255.255.255"),
        ("IPv6 unspecified", "::"),
        ("IPv6 loopback", "::1"),
        ("IPv6 compressed", "2001:db8::8a2e:370:7334"),
        ("IPv6 full", "2001:0db8:0000:0000:0000:ff00:0042:8329"),
        ("IPv6 upper-case", "2001:DB8::1"),
        ("IPv4-mapped IPv6", "::ffff:192.0.2.1"),
    ];
    let bad = [
        ("octet over 255", "256.1.1.1"),
        ("three octets", "192.0.2"),
        ("five octets", "192.0.2.1.5"),
        ("leading zero (octal-looking)", "010.0.0.1"),
        ("CIDR suffix", "192.0.2.0/24"),
        ("with a port", "192.0.2.1:80"),
        ("triple colon", "2001:db8:::1"),
        ("two double colons", "2001::db8::1"),
        ("non-hex digit", "2001:db8::g"),
        ("bracketed", "[::1]"),
        ("zone id", "fe80::1%eth0"),
        ("host name", "localhost"),
        ("integer form", "3221225985"),
    ];
    for (name, value) in good {
        let case = format!("ipAddress: {name}");
        let submission = assert_ok(&case, &with(full_record(), "ipAddress", value));
        assert_eq!(
            submission.ip_address,
            Some(value.parse().unwrap()),
            "{case}: parsed value"
        );
    }
    for (name, value) in bad {
        let case = format!("ipAddress: {name}");
        assert_bad_format(&case, &with(full_record(), "ipAddress", value), "ipAddress");
    }
}
