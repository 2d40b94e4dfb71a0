//! Every error code of `docs/api.md` §3 over HTTP, with exact status and body; the order
//! of checks; and that nothing refused is queued or stored.

use kyc_core::envelope::encrypt_request;
use kyc_testkit::{ADMIN, Api, TestEnv, amqp, ordered_json, record};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;

/// Which `x-api-key` a request carries.
#[derive(Debug, Clone, Copy)]
enum Key {
    /// The project's own key.
    Valid,
    /// The key of a project that was disabled.
    Disabled,
    /// No header at all.
    Absent,
    /// A header with an empty value.
    Empty,
    /// A key no project has.
    Unknown,
}

#[derive(Debug)]
enum Request {
    Post(Key, Vec<u8>),
    Get(Key, String),
}

#[derive(Debug)]
struct Case {
    name: &'static str,
    request: Request,
    status: u16,
    /// The exact expected body.
    body: Value,
}

fn error(code: &str, message: &str) -> Value {
    json!({"errorCode": code, "message": message})
}

fn error_with(code: &str, message: &str, parameters: &[&str]) -> Value {
    json!({"errorCode": code, "message": message, "parameters": parameters})
}

fn invalid_payload() -> Value {
    error("invalid_payload", "Invalid payload")
}

fn missing(parameters: &[&str]) -> Value {
    error_with("missing_data", "Required input data is missing", parameters)
}

fn invalid_parameter(name: &str) -> Value {
    error_with(
        "invalid_parameter",
        &format!("invalid parameter: {name}"),
        &[name],
    )
}

fn invalid_format(name: &str) -> Value {
    error_with(
        "invalid_format",
        &format!("invalid format: {name}"),
        &[name],
    )
}

fn forbidden() -> Value {
    error("forbidden", "Forbidden")
}

fn too_large() -> Value {
    error("payload_too_large", "Payload too large")
}

fn not_found() -> Value {
    error("not_found", "Submission not found")
}

/// `record(userid)` with some fields replaced or added.
fn with(changes: &[(&str, Value)]) -> Vec<u8> {
    let mut value = record("u-1");
    for (key, v) in changes {
        value[*key] = v.clone();
    }
    serde_json::to_vec(&value).unwrap()
}

/// `record(userid)` without some fields.
fn without(fields: &[&str]) -> Vec<u8> {
    let mut value = record("u-1");
    for field in fields {
        value.as_object_mut().unwrap().remove(*field);
    }
    serde_json::to_vec(&value).unwrap()
}

/// A valid record padded with blanks to `size` bytes (blanks are valid JSON).
fn padded(size: usize) -> Vec<u8> {
    let mut body = serde_json::to_vec(&record("u-1")).unwrap();
    body.pop(); // the closing brace
    body.resize(size - 1, b' ');
    body.push(b'}');
    body
}

fn cases(key: &str) -> Vec<Case> {
    use Key::*;
    use Request::{Get, Post};
    let valid = serde_json::to_vec(&record("u-1")).unwrap();
    let envelope = encrypt_request(key, &valid);
    // Replace one Base64 character in the middle of the ciphertext: the tag no
    // longer verifies.
    let tampered = {
        let mut v: Value = serde_json::from_slice(&envelope).unwrap();
        let data = v["body"].as_str().unwrap().to_owned();
        let mut chars: Vec<char> = data.chars().collect();
        chars[30] = if chars[30] == 'A' { 'B' } else { 'A' };
        v["body"] = Value::from(chars.into_iter().collect::<String>());
        serde_json::to_vec(&v).unwrap()
    };
    let limit = 64 * 1024;

    vec![
        // invalid_payload: not JSON, not an object, or an envelope that cannot be opened.
        Case {
            name: "not JSON",
            request: Post(Valid, b"hello".to_vec()),
            status: 400,
            body: invalid_payload(),
        },
        Case {
            name: "empty body",
            request: Post(Valid, Vec::new()),
            status: 400,
            body: invalid_payload(),
        },
        Case {
            name: "array",
            request: Post(
                Valid,
                format!("[{}]", String::from_utf8_lossy(&valid)).into(),
            ),
            status: 400,
            body: invalid_payload(),
        },
        Case {
            name: "JSON string",
            request: Post(Valid, b"\"admin\"".to_vec()),
            status: 400,
            body: invalid_payload(),
        },
        Case {
            name: "truncated object",
            request: Post(Valid, valid[..valid.len() / 2].to_vec()),
            status: 400,
            body: invalid_payload(),
        },
        Case {
            name: "trailing data after the object",
            request: Post(Valid, [valid.as_slice(), b" {}"].concat()),
            status: 400,
            body: invalid_payload(),
        },
        Case {
            name: "duplicate key",
            request: Post(
                Valid,
                ordered_json(&[
                    ("admin", json!(ADMIN)),
                    ("email", json!("a@example.com")),
                    ("fullName", json!("A B")),
                    ("birthDate", json!("1990-01-01")),
                    ("kycStatus", json!("approved")),
                    ("email", json!("b@example.com")),
                ]),
            ),
            status: 400,
            body: invalid_payload(),
        },
        Case {
            name: "envelope that is not Base64",
            request: Post(Valid, br#"{"body":"%%% not base64 %%%"}"#.to_vec()),
            status: 400,
            body: invalid_payload(),
        },
        Case {
            name: "envelope shorter than nonce and tag",
            request: Post(Valid, br#"{"body":"AAECAwQ="}"#.to_vec()),
            status: 400,
            body: invalid_payload(),
        },
        Case {
            name: "envelope under another key",
            request: Post(Valid, encrypt_request("not-this-projects-key", &valid)),
            status: 400,
            body: invalid_payload(),
        },
        Case {
            name: "tampered envelope",
            request: Post(Valid, tampered),
            status: 400,
            body: invalid_payload(),
        },
        Case {
            name: "envelope holding an array",
            request: Post(Valid, encrypt_request(key, b"[1,2]")),
            status: 400,
            body: invalid_payload(),
        },
        // missing_data lists every missing required field, in the table's order.
        Case {
            name: "empty object",
            request: Post(Valid, b"{}".to_vec()),
            status: 400,
            body: missing(&["admin", "email", "fullName", "birthDate", "kycStatus"]),
        },
        Case {
            name: "only optional fields",
            request: Post(Valid, br#"{"userid":"u-1","gender":"male"}"#.to_vec()),
            status: 400,
            body: missing(&["admin", "email", "fullName", "birthDate", "kycStatus"]),
        },
        Case {
            name: "empty and blank required fields",
            request: Post(
                Valid,
                with(&[("email", json!("")), ("fullName", json!("   "))]),
            ),
            status: 400,
            body: missing(&["email", "fullName"]),
        },
        Case {
            name: "absent required fields",
            request: Post(Valid, without(&["kycStatus", "admin"])),
            status: 400,
            body: missing(&["admin", "kycStatus"]),
        },
        // invalid_parameter names the first unknown key in document order.
        Case {
            name: "unknown key",
            request: Post(Valid, with(&[("favouriteColour", json!("blue"))])),
            status: 400,
            body: invalid_parameter("favouriteColour"),
        },
        Case {
            name: "first unknown key in document order",
            request: Post(
                Valid,
                ordered_json(&[
                    ("admin", json!(ADMIN)),
                    ("zzz", json!("1")),
                    ("email", json!("a@example.com")),
                    ("aaa", json!("2")),
                ]),
            ),
            status: 400,
            body: invalid_parameter("zzz"),
        },
        Case {
            name: "keys are case-sensitive",
            request: Post(Valid, with(&[("FullName", json!("Jane"))])),
            status: 400,
            body: invalid_parameter("FullName"),
        },
        Case {
            name: "body next to other fields is no envelope",
            request: Post(Valid, with(&[("body", json!("x"))])),
            status: 400,
            body: invalid_parameter("body"),
        },
        Case {
            name: "unknown key is checked before missing fields",
            request: Post(Valid, br#"{"bogus":"x"}"#.to_vec()),
            status: 400,
            body: invalid_parameter("bogus"),
        },
        // invalid_format names the first bad value in document order.
        Case {
            name: "impossible date",
            request: Post(Valid, with(&[("birthDate", json!("1990-02-30"))])),
            status: 400,
            body: invalid_format("birthDate"),
        },
        Case {
            name: "birth date in the future",
            request: Post(Valid, with(&[("birthDate", json!("2999-01-01"))])),
            status: 400,
            body: invalid_format("birthDate"),
        },
        Case {
            name: "first bad value in document order (birthDate first)",
            request: Post(
                Valid,
                ordered_json(&[
                    ("admin", json!(ADMIN)),
                    ("birthDate", json!("1990-13-01")),
                    ("fullName", json!("A B")),
                    ("email", json!("not-an-email")),
                    ("kycStatus", json!("approved")),
                ]),
            ),
            status: 400,
            body: invalid_format("birthDate"),
        },
        Case {
            name: "first bad value in document order (email first)",
            request: Post(
                Valid,
                ordered_json(&[
                    ("admin", json!(ADMIN)),
                    ("email", json!("not-an-email")),
                    ("fullName", json!("A B")),
                    ("birthDate", json!("1990-13-01")),
                    ("kycStatus", json!("approved")),
                ]),
            ),
            status: 400,
            body: invalid_format("email"),
        },
        Case {
            name: "non-string value",
            request: Post(Valid, with(&[("fullName", json!(42))])),
            status: 400,
            body: invalid_format("fullName"),
        },
        Case {
            name: "null optional value",
            request: Post(Valid, with(&[("nationality", Value::Null)])),
            status: 400,
            body: invalid_format("nationality"),
        },
        Case {
            name: "object value",
            request: Post(Valid, with(&[("cf1", json!({"a": "b"}))])),
            status: 400,
            body: invalid_format("cf1"),
        },
        Case {
            name: "unknown kycStatus",
            request: Post(Valid, with(&[("kycStatus", json!("pending"))])),
            status: 400,
            body: invalid_format("kycStatus"),
        },
        Case {
            name: "expireDate before issueDate",
            request: Post(
                Valid,
                with(&[
                    ("issueDate", json!("2020-01-15")),
                    ("expireDate", json!("2019-01-15")),
                ]),
            ),
            status: 400,
            body: invalid_format("expireDate"),
        },
        Case {
            name: "unassigned country code",
            request: Post(Valid, with(&[("issuingCountry", json!("XXX"))])),
            status: 400,
            body: invalid_format("issuingCountry"),
        },
        Case {
            name: "bad IP address",
            request: Post(Valid, with(&[("ipAddress", json!("999.1.1.1"))])),
            status: 400,
            body: invalid_format("ipAddress"),
        },
        Case {
            name: "fullName over 200 characters",
            request: Post(Valid, with(&[("fullName", json!("x".repeat(201)))])),
            status: 400,
            body: invalid_format("fullName"),
        },
        Case {
            name: "identityNumber over 100 characters",
            request: Post(Valid, with(&[("identityNumber", json!("1".repeat(101)))])),
            status: 400,
            body: invalid_format("identityNumber"),
        },
        Case {
            name: "missing fields are checked before formats",
            request: Post(
                Valid,
                ordered_json(&[
                    ("admin", json!(ADMIN)),
                    ("email", json!("a@example.com")),
                    ("fullName", json!("A B")),
                    ("birthDate", json!("not a date")),
                ]),
            ),
            status: 400,
            body: missing(&["kycStatus"]),
        },
        // invalid_admin, after every format check.
        Case {
            name: "admin not registered",
            request: Post(Valid, with(&[("admin", json!("someone.else@example.com"))])),
            status: 400,
            body: error("invalid_admin", "Invalid admin"),
        },
        Case {
            name: "formats are checked before the admin",
            request: Post(
                Valid,
                with(&[
                    ("admin", json!("someone.else@example.com")),
                    ("birthDate", json!("1990-02-30")),
                ]),
            ),
            status: 400,
            body: invalid_format("birthDate"),
        },
        // invalid_project: the key authenticates, the project is disabled.
        Case {
            name: "project disabled",
            request: Post(Disabled, valid.clone()),
            status: 400,
            body: error("invalid_project", "Invalid project"),
        },
        Case {
            name: "formats are checked before the project",
            request: Post(Disabled, with(&[("birthDate", json!("1990-02-30"))])),
            status: 400,
            body: invalid_format("birthDate"),
        },
        Case {
            name: "the project is checked before the admin",
            request: Post(
                Disabled,
                with(&[("admin", json!("someone.else@example.com"))]),
            ),
            status: 400,
            body: error("invalid_project", "Invalid project"),
        },
        // forbidden: missing or unknown key, before anything else.
        Case {
            name: "no API key",
            request: Post(Absent, valid.clone()),
            status: 403,
            body: forbidden(),
        },
        Case {
            name: "empty API key",
            request: Post(Empty, valid.clone()),
            status: 403,
            body: forbidden(),
        },
        Case {
            name: "unknown API key",
            request: Post(Unknown, valid.clone()),
            status: 403,
            body: forbidden(),
        },
        Case {
            name: "authentication is checked before the body",
            request: Post(Unknown, b"hello".to_vec()),
            status: 403,
            body: forbidden(),
        },
        // payload_too_large, after authentication and before parsing.
        Case {
            name: "body over 64 KiB",
            request: Post(Valid, padded(limit + 1024)),
            status: 413,
            body: too_large(),
        },
        Case {
            name: "over-size body that is not JSON",
            request: Post(Valid, vec![b'x'; limit + 1024]),
            status: 413,
            body: too_large(),
        },
        Case {
            name: "over-size body with an unknown key is forbidden",
            request: Post(Unknown, padded(limit + 1024)),
            status: 403,
            body: forbidden(),
        },
        Case {
            name: "over-size body without a key is forbidden",
            request: Post(Absent, padded(limit + 1024)),
            status: 403,
            body: forbidden(),
        },
        // not_found and the result endpoint's own authentication.
        Case {
            name: "result of an unknown id",
            request: Get(
                Valid,
                format!("/v3/submission/migration/{}", uuid::Uuid::now_v7()),
            ),
            status: 404,
            body: not_found(),
        },
        Case {
            name: "result of a non-UUID id",
            request: Get(Valid, "/v3/submission/migration/not-a-uuid".to_owned()),
            status: 404,
            body: not_found(),
        },
        Case {
            name: "result without an API key",
            request: Get(
                Absent,
                format!("/v3/submission/migration/{}", uuid::Uuid::now_v7()),
            ),
            status: 403,
            body: forbidden(),
        },
        Case {
            name: "result with an unknown API key",
            request: Get(
                Unknown,
                format!("/v3/submission/migration/{}", uuid::Uuid::now_v7()),
            ),
            status: 403,
            body: forbidden(),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_has_its_status_and_exact_body_and_nothing_is_queued() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let (disabled_id, disabled_key) = env.project(false).await;
    env.store
        .set_project_disabled(disabled_id, true)
        .await
        .unwrap();
    // No worker yet: whatever the intake queued would stay in the queue.
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());

    for case in cases(&key) {
        let name = case.name;
        let key_of = |k: Key| match k {
            Key::Valid => Some(key.as_str()),
            Key::Disabled => Some(disabled_key.as_str()),
            Key::Absent => None,
            Key::Empty => Some(""),
            Key::Unknown => Some("kyc_unknown_0123456789abcdef0123456789abcdef"),
        };
        let reply = match case.request {
            Request::Post(k, body) => api.submit_raw(key_of(k), body, &[]).await,
            Request::Get(k, path) => api.get(&path, key_of(k)).await,
        };
        assert_eq!(
            reply.status, case.status,
            "{name}: status ({:?})",
            reply.body
        );
        assert_eq!(reply.body, case.body, "{name}: body");
        assert_eq!(reply.retry_after, None, "{name}: no Retry-After");
    }

    // The broker is away (nothing listens on port 1): 503 with Retry-After, never 200.
    let mut away = env.settings.clone();
    away.amqp.url = SecretString::from("amqp://guest:guest@127.0.0.1:1/%2f");
    away.amqp.confirm_timeout_ms = 1_000;
    let dark = env.start_intake_with(&away).await;
    let dark_api = Api::new(dark.addr.unwrap());
    for attempt in 0..3 {
        let name = format!("unavailable, attempt {attempt}");
        let reply = dark_api
            .submit(&key, &record(&format!("dark-{attempt}")))
            .await;
        assert_eq!(reply.status, 503, "{name}: status ({:?})", reply.body);
        assert_eq!(
            reply.body,
            error("unavailable", "Service unavailable"),
            "{name}: body"
        );
        let retry_after = reply
            .retry_after
            .unwrap_or_else(|| panic!("{name}: Retry-After is set"));
        assert!(
            retry_after.parse::<u64>().is_ok(),
            "{name}: Retry-After is a number of seconds, got {retry_after:?}"
        );
    }
    let ready = dark_api.get("/readyz", None).await;
    assert_eq!(ready.status, 503, "unavailable: /readyz says not ready");

    // Nothing refused reached the queue ...
    assert_eq!(
        amqp::queue_depth(&env.topology).await,
        0,
        "no refused request was queued"
    );
    // ... and a worker started now stores only the marker sent after it all.
    let _worker = env.start_worker().await;
    let marker = api.submit(&key, &record("marker")).await;
    assert_eq!(marker.status, 200, "marker: {:?}", marker.body);
    let status = env
        .await_row(marker.submission_id(), Duration::from_secs(10))
        .await;
    assert_eq!(status, "accepted", "marker: stored as accepted");
    assert_eq!(env.count_rows().await, 1, "only the marker has a row");
}

/// The 64 KiB limit is inclusive: a body of exactly the limit is read, one byte
/// more is 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let limit = env.settings.http.body_limit_bytes;
    assert_eq!(limit, 64 * 1024, "the default limit is 64 KiB");

    let cases = [
        ("exactly the limit", limit, 200),
        ("one byte over", limit + 1, 413),
    ];
    for (name, size, status) in cases {
        let body = padded(size);
        assert_eq!(body.len(), size, "{name}: body size");
        let reply = api.submit_raw(Some(&key), body, &[]).await;
        assert_eq!(reply.status, status, "{name}: {:?}", reply.body);
        if status == 413 {
            assert_eq!(reply.body, too_large(), "{name}: body");
        } else {
            assert_eq!(reply.body["message"], "success", "{name}: body");
        }
    }
}
