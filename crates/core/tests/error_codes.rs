//! Spec §3 error codes: wire strings, HTTP statuses, messages, and the error body
//! shape `{"errorCode", "message", "parameters"?}`.

#![allow(clippy::unwrap_used)]

use kyc_core::{ErrorBody, ErrorCode, Rejection};
use serde_json::json;

/// The `docs/api.md` §3 table (plus §6's `not_found`), copied by hand: the code under test
/// must agree with the document, not with itself.
const TABLE: [(ErrorCode, &str, u16, &str); 18] = [
    (
        ErrorCode::InvalidPayload,
        "invalid_payload",
        400,
        "Invalid payload",
    ),
    (
        ErrorCode::MissingData,
        "missing_data",
        400,
        "Required input data is missing",
    ),
    (
        ErrorCode::InvalidProject,
        "invalid_project",
        400,
        "Invalid project",
    ),
    (
        ErrorCode::InvalidAdmin,
        "invalid_admin",
        400,
        "Invalid admin",
    ),
    (
        ErrorCode::InvalidParameter,
        "invalid_parameter",
        400,
        "invalid parameter",
    ),
    (
        ErrorCode::InvalidFormat,
        "invalid_format",
        400,
        "invalid format",
    ),
    (
        ErrorCode::ProcessingError,
        "processing_error",
        400,
        "Failed to complete migration",
    ),
    (ErrorCode::Forbidden, "forbidden", 403, "Forbidden"),
    (
        ErrorCode::NotFound,
        "not_found",
        404,
        "Submission not found",
    ),
    (
        ErrorCode::MethodNotAllowed,
        "method_not_allowed",
        405,
        "Method not allowed",
    ),
    (
        ErrorCode::RequestTimeout,
        "request_timeout",
        408,
        "Request timeout",
    ),
    (
        ErrorCode::PayloadTooLarge,
        "payload_too_large",
        413,
        "Payload too large",
    ),
    (
        ErrorCode::RateLimited,
        "rate_limited",
        429,
        "Too many requests",
    ),
    (
        ErrorCode::Unavailable,
        "unavailable",
        503,
        "Service unavailable",
    ),
    (ErrorCode::InvalidDate, "invalid_date", 400, "Invalid date"),
    (
        ErrorCode::InvalidSubmission,
        "invalid_submission",
        400,
        "Invalid submission",
    ),
    (ErrorCode::InvalidData, "invalid_data", 400, "Invalid data"),
    (
        ErrorCode::InvalidIdType,
        "invalid_idType",
        400,
        "Invalid idType",
    ),
];

#[test]
fn every_code_has_the_wire_string_status_and_message_of_the_spec() {
    for (code, wire, status, message) in TABLE {
        assert_eq!(code.as_str(), wire, "{wire}: as_str");
        assert_eq!(code.to_string(), wire, "{wire}: Display");
        assert_eq!(
            serde_json::to_value(code).unwrap(),
            json!(wire),
            "{wire}: serde"
        );
        assert_eq!(
            serde_json::from_value::<ErrorCode>(json!(wire)).unwrap(),
            code,
            "{wire}: serde back"
        );
        assert_eq!(ErrorCode::from_wire(wire), Some(code), "{wire}: from_wire");
        assert_eq!(code.http_status(), status, "{wire}: HTTP status");
        assert_eq!(code.base_message(), message, "{wire}: message");
    }
}

#[test]
fn all_lists_every_code_once_in_table_order() {
    let from_table: Vec<ErrorCode> = TABLE.iter().map(|row| row.0).collect();
    assert_eq!(ErrorCode::ALL.to_vec(), from_table);
}

#[test]
fn unknown_wire_strings_are_not_codes() {
    for s in [
        "",
        "Invalid_payload",
        "INVALID_PAYLOAD",
        "invalid-payload",
        "ok",
        "forbidden ",
    ] {
        assert_eq!(ErrorCode::from_wire(s), None, "{s:?}");
        assert!(
            serde_json::from_value::<ErrorCode>(json!(s)).is_err(),
            "{s:?}: serde"
        );
    }
}

#[test]
fn a_code_without_a_field_is_answered_with_its_fixed_message() {
    for (code, wire, _, message) in TABLE {
        let body = serde_json::to_string(&ErrorBody::from_code(code)).unwrap();
        assert_eq!(
            body,
            format!(r#"{{"errorCode":"{wire}","message":"{message}"}}"#),
            "{wire}"
        );
        assert_eq!(
            Rejection::from(code).message(),
            message,
            "{wire}: Rejection::message"
        );
    }
}

#[test]
fn the_403_body_is_exactly_the_one_in_the_spec() {
    let body = serde_json::to_string(&ErrorBody::from_code(ErrorCode::Forbidden)).unwrap();
    assert_eq!(body, r#"{"errorCode":"forbidden","message":"Forbidden"}"#);
    let body = serde_json::to_string(&ErrorBody::from_code(ErrorCode::NotFound)).unwrap();
    assert_eq!(
        body,
        r#"{"errorCode":"not_found","message":"Submission not found"}"#
    );
}

#[test]
fn field_errors_name_the_field_in_message_and_parameters() {
    let cases = [
        (
            "invalid_parameter",
            Rejection::invalid_parameter("foo"),
            r#"{"errorCode":"invalid_parameter","message":"invalid parameter: foo","parameters":["foo"]}"#,
        ),
        (
            "invalid_format",
            Rejection::invalid_format("birthDate"),
            r#"{"errorCode":"invalid_format","message":"invalid format: birthDate","parameters":["birthDate"]}"#,
        ),
        (
            "missing_data with two fields",
            Rejection::missing(vec!["admin".into(), "kycStatus".into()]),
            r#"{"errorCode":"missing_data","message":"Required input data is missing","parameters":["admin","kycStatus"]}"#,
        ),
    ];
    for (case, rejection, expected) in cases {
        assert_eq!(
            rejection.to_string(),
            rejection.message(),
            "{case}: Display"
        );
        let body = serde_json::to_string(&rejection.to_body()).unwrap();
        assert_eq!(body, expected, "{case}");
        let back: ErrorBody = serde_json::from_str(&body).unwrap();
        assert_eq!(back, rejection.to_body(), "{case}: round trip");
    }
}

#[test]
fn an_error_body_without_parameters_reads_back_as_none() {
    let body: ErrorBody =
        serde_json::from_str(r#"{"errorCode":"rate_limited","message":"Too many requests"}"#)
            .unwrap();
    assert_eq!(body, ErrorBody::from_code(ErrorCode::RateLimited));
    assert_eq!(body.parameters, None);
}
