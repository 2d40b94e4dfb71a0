//! Personal data at rest (`docs/api.md` §7): identity and document numbers are sealed
//! under the service data key; rejected submissions keep no personal fields.

use kyc_store::DataKey;
use kyc_testkit::amqp::{self, Tap};
use kyc_testkit::{Api, TEST_DATA_KEY, TestEnv, full_record};
use secrecy::SecretString;
use serde_json::json;
use std::time::Duration;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_and_document_numbers_are_sealed_under_the_data_key() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let record = full_record();
    let reply = api.submit(&key, &record).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.submission_id();
    let status = env.await_row(id, Duration::from_secs(10)).await;
    assert_eq!(status, "accepted");

    type Row = (Option<Vec<u8>>, Option<Vec<u8>>, Option<String>);
    let (identity, document, key_id): Row = sqlx::query_as(
        "SELECT identity_number_enc, document_number_enc, pii_key_id FROM submissions WHERE id = $1",
    )
    .bind(id)
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        key_id.as_deref(),
        Some("test"),
        "pii_key_id names the data key"
    );

    let data_key = DataKey::from_base64("test", &SecretString::from(TEST_DATA_KEY)).unwrap();
    // Same id, other bytes: only the right key opens a value.
    let other_key = DataKey::from_base64(
        "test",
        &SecretString::from(kyc_config::settings::DEVELOPMENT_DATA_KEY),
    )
    .unwrap();
    let cases = [
        ("identity_number_enc", identity, "identityNumber"),
        ("document_number_enc", document, "documentNumber"),
    ];
    for (column, sealed, field) in cases {
        let plaintext = record[field].as_str().unwrap();
        let sealed = sealed.unwrap_or_else(|| panic!("{column}: stored"));
        assert!(
            !contains(&sealed, plaintext.as_bytes()),
            "{column}: the plaintext is not in the stored bytes"
        );
        assert!(
            sealed.len() >= 12 + plaintext.len() + 16,
            "{column}: nonce, ciphertext and tag ({} bytes)",
            sealed.len()
        );
        assert_eq!(
            data_key.open("test", 1, id, column, &sealed).as_deref(),
            Some(plaintext),
            "{column}: the data key opens it"
        );
        assert_eq!(
            other_key.open("test", 1, id, column, &sealed),
            None,
            "{column}: another key does not"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_submission_keeps_no_personal_fields() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let mut events = Tap::events(&env.topology).await;
    let _worker = env.start_worker().await;
    let (_connection, channel) = amqp::channel(&env.topology).await;

    // The intake would refuse these before the queue; a direct publisher reaches
    // the worker, which stores the rejection.
    let mut bad_date = full_record();
    bad_date["birthDate"] = json!("1990-02-30");
    let mut bad_admin = full_record();
    bad_admin["admin"] = json!("nobody@example.com");
    let cases = [
        ("bad birthDate", bad_date, "invalid_format"),
        ("unregistered admin", bad_admin, "invalid_admin"),
    ];
    for (case, body, code) in cases {
        let message_id = format!("pii-{code}");
        let properties = amqp::with_api_key(&key).with_message_id(message_id.as_str().into());
        amqp::publish_submission(
            &channel,
            &env.topology,
            &serde_json::to_vec(&body).unwrap(),
            properties,
        )
        .await;
        let id = kyc_core::id::submission_id(project_id, Some(&message_id));
        let (_, event) = events.until(id, Duration::from_secs(10)).await;
        assert_eq!(
            event.error_code.map(|c| c.as_str()),
            Some(code),
            "{case}: rejected event"
        );

        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Option<String>,
            Option<String>,
        );
        let row: Row = sqlx::query_as(
            "SELECT status, error_code, admin, email, full_name, identity_number_enc,
                    document_number_enc, pii_key_id, address_full
             FROM submissions WHERE id = $1",
        )
        .bind(id)
        .fetch_one(env.store.pool())
        .await
        .unwrap();
        let (status, error_code, admin, email, full_name, identity, document, key_id, address) =
            row;
        assert_eq!(status, "rejected", "{case}: status");
        assert_eq!(error_code.as_deref(), Some(code), "{case}: error_code");
        assert_eq!(
            (admin, email, full_name),
            (None, None, None),
            "{case}: admin, email, full_name are NULL"
        );
        assert_eq!(
            (identity, document, key_id, address),
            (None, None, None, None),
            "{case}: no sealed numbers, no address"
        );
    }
}
