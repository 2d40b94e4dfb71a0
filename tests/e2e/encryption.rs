//! Client encryption (`docs/api.md` §7): `{"body": base64}` in, `{"isEncrypted": true,
//! "data": base64}` out, plain error bodies, and projects that require it.

use kyc_core::envelope::{EnvelopeKey, encrypt_request};
use kyc_testkit::http::Reply;
use kyc_testkit::{Api, TestEnv, record};
use serde_json::{Value, json};
use std::time::Duration;

/// Opens an encrypted success response: `{"isEncrypted": true, "data": …}` and
/// nothing else; the decrypted JSON.
fn open_response(case: &str, api_key: &str, reply: &Reply) -> Value {
    let object = reply
        .body
        .as_object()
        .unwrap_or_else(|| panic!("{case}: an object, got {:?}", reply.body));
    assert_eq!(
        object.len(),
        2,
        "{case}: only isEncrypted and data: {object:?}"
    );
    assert_eq!(object["isEncrypted"], true, "{case}: isEncrypted");
    let data = object["data"]
        .as_str()
        .unwrap_or_else(|| panic!("{case}: data is a string: {object:?}"));
    let plain = EnvelopeKey::from_api_key(api_key)
        .decrypt_base64(data)
        .unwrap_or_else(|e| panic!("{case}: data opens with the project's key: {e}"));
    serde_json::from_slice(&plain).unwrap_or_else(|e| panic!("{case}: decrypted JSON: {e}"))
}

fn plain(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_request_round_trip_in_optional_and_required_projects() {
    let env = TestEnv::new().await;
    let (_, optional_key) = env.project(false).await;
    let (_, required_key) = env.project(true).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let cases = [
        ("optional project", optional_key.as_str()),
        ("required project", required_key.as_str()),
    ];
    let mut stored = Vec::new();
    for (case, key) in cases {
        let userid = format!("enc-{case}");
        let body = encrypt_request(key, &plain(&record(&userid)));
        let reply = api.submit_raw(Some(key), body, &[]).await;
        assert_eq!(reply.status, 200, "{case}: {:?}", reply.body);
        assert!(
            reply.body.get("submissionId").is_none(),
            "{case}: nothing in clear: {:?}",
            reply.body
        );
        let inner = open_response(case, key, &reply);
        assert_eq!(inner["message"], "success", "{case}: {inner:?}");
        let id = inner["submissionId"]
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .unwrap_or_else(|| panic!("{case}: a UUID submissionId in {inner:?}"));
        assert_eq!(
            inner.as_object().unwrap().len(),
            2,
            "{case}: only message and submissionId: {inner:?}"
        );

        let status = env.await_row(id, Duration::from_secs(10)).await;
        assert_eq!(status, "accepted", "{case}: the worker opened the envelope");
        let (row_userid,): (Option<String>,) =
            sqlx::query_as("SELECT userid FROM submissions WHERE id = $1")
                .bind(id)
                .fetch_one(env.store.pool())
                .await
                .unwrap();
        assert_eq!(
            row_userid.as_deref(),
            Some(userid.as_str()),
            "{case}: fields stored"
        );
        // The result endpoint answers in clear (its request had no envelope).
        let result = api.result(key, id).await;
        assert_eq!(result.status, 200, "{case}: {:?}", result.body);
        assert_eq!(result.body["status"], "accepted", "{case}");
        stored.push(id);
    }
    assert_ne!(stored[0], stored[1], "two submissions, two ids");

    // A project that requires encryption refuses a plain body, even a valid one,
    // and even one that would otherwise fail a later check.
    let refused = [
        ("required project, plain valid body", plain(&record("p-1"))),
        (
            "required project, plain body with an unknown key",
            plain(&json!({"bogus": "x"})),
        ),
    ];
    for (case, body) in refused {
        let reply = api.submit_raw(Some(&required_key), body, &[]).await;
        assert_eq!(reply.status, 400, "{case}: {:?}", reply.body);
        assert_eq!(
            reply.body,
            json!({"errorCode": "invalid_payload", "message": "Invalid payload"}),
            "{case}"
        );
    }

    assert_eq!(
        env.count_rows().await,
        2,
        "only the two encrypted submissions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_of_encrypted_requests_stay_plain() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let (_, other_key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());

    let mut bad_birth = record("e-1");
    bad_birth["birthDate"] = json!("1990-02-30");
    let mut not_admin = record("e-2");
    not_admin["admin"] = json!("nobody@example.com");
    let cases = [
        (
            "encrypted under another project's key",
            encrypt_request(&other_key, &plain(&record("e-0"))),
            json!({"errorCode": "invalid_payload", "message": "Invalid payload"}),
        ),
        (
            "encrypted garbage",
            encrypt_request(&key, b"not json"),
            json!({"errorCode": "invalid_payload", "message": "Invalid payload"}),
        ),
        (
            "encrypted record with a bad date",
            encrypt_request(&key, &plain(&bad_birth)),
            json!({"errorCode": "invalid_format", "message": "invalid format: birthDate", "parameters": ["birthDate"]}),
        ),
        (
            "encrypted record missing fields",
            encrypt_request(&key, &plain(&json!({"userid": "e-3"}))),
            json!({"errorCode": "missing_data", "message": "Required input data is missing",
                   "parameters": ["admin", "email", "fullName", "birthDate", "kycStatus"]}),
        ),
        (
            "encrypted record naming an unknown admin",
            encrypt_request(&key, &plain(&not_admin)),
            json!({"errorCode": "invalid_admin", "message": "Invalid admin"}),
        ),
    ];
    for (case, body, expected) in cases {
        let reply = api.submit_raw(Some(&key), body, &[]).await;
        assert_eq!(reply.status, 400, "{case}: {:?}", reply.body);
        assert_eq!(reply.body, expected, "{case}: a plain error body");
    }
}
