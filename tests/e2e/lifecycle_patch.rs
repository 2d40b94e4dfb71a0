//! `PATCH /v3/submission`: corrections under the migration endpoint's rules,
//! their history (previous values, sensitive ones sealed) and their events,
//! every error code, encryption and project isolation.

use crate::lifecycle_support::{
    LifecycleTap, assert_error, data_key, delete, list, patch, patch_raw, store_one,
};
use kyc_core::envelope::{EnvelopeKey, encrypt_request};
use kyc_testkit::{ADMIN, Api, TestEnv, full_record, record};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_applies_keeps_history_and_is_announced() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let mut events = LifecycleTap::open(&env.topology).await;
    let api = Api::new(intake.addr.unwrap());
    let id = store_one(&env, project_id, &full_record()).await;

    let reply = patch(
        &api,
        &key,
        &json!({"submissionId": id, "admin": ADMIN, "data": {
            "fullName": "Jane Q. Doe", "identityNumber": "999-00-1111", "kycStatus": "rejected",
            "issuingCountry": "fra", "firstName": ""
        }}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body, json!({"message": "success"}));

    let item = &list(&api, &key, &format!("submission_id={id}")).await.body["Items"][0];
    assert_eq!(item["data"]["full_name"], "Jane Q. Doe");
    assert_eq!(item["data"]["identity_number"], "999-00-1111");
    assert_eq!(
        item["data"]["idcard_issuingCountry"], "FRA",
        "normalised as on intake"
    );
    assert!(item["data"].get("first_name").is_none(), "cleared: {item}");
    assert_eq!(item["kyc"]["result"], "rejected");

    let event = events.next(Duration::from_secs(10)).await;
    assert_eq!(event.event, "submission.updated");
    assert_eq!(event.submission_id, id);
    assert_eq!(event.project_id, project_id);
    assert_eq!(event.version, Some(1));
    assert_eq!(event.admin.as_deref(), Some(ADMIN));
    let mut fields = event.fields.clone();
    fields.sort();
    assert_eq!(
        fields,
        [
            "firstName",
            "fullName",
            "identityNumber",
            "issuingCountry",
            "kycStatus"
        ]
    );

    // A second correction applies to the state the first one left.
    let reply = patch(
        &api,
        &key,
        &json!({"submissionId": id, "admin": ADMIN, "data": {"fullName": "Jane R. Doe", "kycStatus": "rejected"}}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let event = events.next(Duration::from_secs(10)).await;
    assert_eq!(
        event.fields,
        ["fullName"],
        "an unchanged value is no change"
    );
    assert_eq!(event.version, Some(2));

    let history = env.store.correction_history(id, &data_key()).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].admin, ADMIN);
    assert_eq!(history[0].previous["fullName"], "Jane Doe");
    assert_eq!(history[0].previous["identityNumber"], "123-45-6789");
    assert_eq!(history[0].previous["kycStatus"], "approved");
    assert_eq!(history[0].previous["firstName"], "Jane");
    assert_eq!(history[1].previous["fullName"], "Jane Q. Doe");
    // The previous sensitive value is sealed in the table, not in clear.
    let raw: String = sqlx::query_scalar(
        "SELECT string_agg(previous::text || coalesce(encode(previous_sealed, 'escape'), ''), '|')
         FROM submission_history WHERE submission_id = $1",
    )
    .bind(id)
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert!(!raw.contains("123-45-6789"), "{raw}");
    assert!(
        raw.contains("Jane Doe"),
        "plain previous values are kept: {raw}"
    );
    // The row's sealed values still open (resealed under the current key).
    let fields = env
        .store
        .read_fields(id, &data_key())
        .await
        .unwrap()
        .unwrap();
    let document = fields
        .iter()
        .find(|(f, _)| f.name == "documentNumber")
        .unwrap();
    assert_eq!(document.1.as_deref(), Some("X12345678"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_and_isolation() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let (other_project, _) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let id = store_one(&env, project_id, &full_record()).await;
    let theirs = store_one(&env, other_project, &record("theirs")).await;
    let body = |data: serde_json::Value| json!({"submissionId": id, "admin": ADMIN, "data": data});

    let cases = [
        (
            body(json!({"birthDate": "2999-01-01"})),
            "invalid_format",
            Some("invalid format: birthDate"),
        ),
        (
            body(json!({"gender": "x"})),
            "invalid_format",
            Some("invalid format: gender"),
        ),
        (
            body(json!({"expireDate": "2019-01-01"})),
            "invalid_format",
            Some("invalid format: expireDate"),
        ),
        (
            body(json!({"fullName": 7})),
            "invalid_format",
            Some("invalid format: fullName"),
        ),
        (
            body(json!({"fullName": ""})),
            "invalid_format",
            Some("invalid format: fullName"),
        ),
        (
            json!({"submissionId": id, "admin": "nobody@example.com", "data": {"fullName": "A"}}),
            "invalid_admin",
            None,
        ),
        (
            json!({"submissionId": id, "admin": "not an address", "data": {"fullName": "A"}}),
            "invalid_format",
            Some("invalid format: admin"),
        ),
        (body(json!({})), "missing_data", None),
        (
            json!({"submissionId": id, "data": {"fullName": "A"}}),
            "missing_data",
            None,
        ),
        (
            body(json!({"email": "new@example.com"})),
            "invalid_parameter",
            Some("invalid parameter: email"),
        ),
        (
            body(json!({"colour": "blue"})),
            "invalid_parameter",
            Some("invalid parameter: colour"),
        ),
        (
            json!({"submissionId": id, "admin": ADMIN, "data": {"fullName": "A"}, "extra": 1}),
            "invalid_parameter",
            Some("invalid parameter: extra"),
        ),
        (
            body(json!("fullName")),
            "invalid_format",
            Some("invalid format: data"),
        ),
        (
            json!({"submissionId": Uuid::now_v7(), "admin": ADMIN, "data": {"fullName": "A"}}),
            "invalid_submission",
            None,
        ),
        (
            json!({"submissionId": theirs, "admin": ADMIN, "data": {"fullName": "A"}}),
            "invalid_submission",
            None,
        ),
        (
            json!({"submissionId": "nope", "admin": ADMIN, "data": {"fullName": "A"}}),
            "invalid_submission",
            None,
        ),
    ];
    for (request, code, message) in cases {
        let reply = patch(&api, &key, &request).await;
        assert_error(&reply, 400, code);
        if let Some(message) = message {
            assert_eq!(reply.body["message"], message, "{request}");
        }
    }
    assert_error(
        &patch_raw(&api, &key, b"{not json".to_vec()).await,
        400,
        "invalid_payload",
    );
    assert_error(
        &patch_raw(
            &api,
            &key,
            br#"{"submissionId":"a","admin":"b","data":{"fullName":"A","fullName":"B"}}"#.to_vec(),
        )
        .await,
        400,
        "invalid_payload",
    );
    let anonymous = api
        .send(
            reqwest::Method::PATCH,
            "/v3/submission",
            None,
            Some(b"{}".to_vec()),
        )
        .await;
    assert_error(&anonymous, 403, "forbidden");
    // Nothing above changed the row, and the other project's row is untouched.
    let item = &list(&api, &key, &format!("submission_id={id}")).await.body["Items"][0];
    assert_eq!(item["data"]["full_name"], "Jane Doe");
    let fields = env
        .store
        .read_fields(theirs, &data_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fields[2].1.as_deref(), Some("Jane Doe"));

    // A deleted submission is answered like an unknown one.
    assert_eq!(
        delete(&api, &key, &format!("submission_id={id}"))
            .await
            .status,
        200
    );
    let reply = patch(&api, &key, &body(json!({"fullName": "Back"}))).await;
    assert_error(&reply, 400, "invalid_submission");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_corrections_are_answered_encrypted() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(true).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let id = store_one(&env, project_id, &record("sealed")).await;
    let plain = json!({"submissionId": id, "admin": ADMIN, "data": {"lastName": "Roe"}});

    // The project requires encryption: a plain body is refused.
    assert_error(&patch(&api, &key, &plain).await, 400, "invalid_payload");
    let reply = patch_raw(
        &api,
        &key,
        encrypt_request(&key, &serde_json::to_vec(&plain).unwrap()),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["isEncrypted"], true);
    let answer = EnvelopeKey::from_api_key(&key)
        .decrypt_base64(reply.body["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&answer).unwrap(),
        json!({"message": "success"})
    );
    let fields = env
        .store
        .read_fields(id, &data_key())
        .await
        .unwrap()
        .unwrap();
    let last = fields.iter().find(|(f, _)| f.name == "lastName").unwrap();
    assert_eq!(last.1.as_deref(), Some("Roe"));
}

/// Corrections of one submission sent together apply one after the other: the
/// versions run 1..=n without a gap, and the final state is the last one
/// answered's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_corrections_apply_in_answer_order() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let id = store_one(&env, project_id, &record("race")).await;

    let mut tasks = Vec::new();
    for i in 0..10 {
        let (api, key) = (api.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let reply = patch(
                &api,
                &key,
                &json!({"submissionId": id, "admin": ADMIN, "data": {"lastName": format!("v{i}")}}),
            )
            .await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let history = env.store.correction_history(id, &data_key()).await.unwrap();
    let versions: Vec<i32> = history.iter().map(|h| h.version).collect();
    assert_eq!(versions, (1..=10).collect::<Vec<_>>());
    // Each correction saw the value the previous one wrote.
    let (version, last_name): (i32, String) =
        sqlx::query_as("SELECT version, last_name FROM submissions WHERE id = $1")
            .bind(id)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(version, 10);
    for pair in history.windows(2) {
        assert_ne!(pair[0].previous["lastName"], pair[1].previous["lastName"]);
    }
    assert!(last_name.starts_with('v'));
}
