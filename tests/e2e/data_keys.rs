//! The data keyring: rows sealed under an older data key (or in the format
//! before values were bound to their row and column) stay readable after the key
//! rotates, `kycctl data-key reseal` moves them to the current key, and a sealed
//! value copied to another row or column does not open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kyc_core::envelope::EnvelopeKey;
use kyc_store::DataKey;
use kyc_testkit::{Api, TEST_DATA_KEY, TestEnv, full_record};
use secrecy::SecretString;
use std::time::Duration;
use uuid::Uuid;

/// A second data key, for the rotation.
const NEW_DATA_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn identity_number_of(fields: &[(&kyc_core::submission::FieldSpec, Option<String>)]) -> String {
    fields
        .iter()
        .find(|(spec, _)| spec.name == "identityNumber")
        .and_then(|(_, v)| v.clone())
        .expect("the identity number is stored")
}

async fn submit(env: &TestEnv, key: &str) -> Uuid {
    let intake = env.start_intake().await;
    let reply = Api::new(intake.addr.unwrap())
        .submit(key, &full_record())
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.submission_id();
    assert_eq!(env.await_row(id, Duration::from_secs(15)).await, "accepted");
    intake.shutdown().await.unwrap();
    id
}

async fn key_and_format(env: &TestEnv, id: Uuid) -> (String, i16) {
    sqlx::query_as("SELECT pii_key_id, pii_format FROM submissions WHERE id = $1")
        .bind(id)
        .fetch_one(env.store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_stay_readable_across_a_rotation_and_reseal_moves_them() {
    let mut env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let expected = full_record()["identityNumber"].as_str().unwrap().to_owned();

    // Under the first key ("test"), and one row as a release before this format
    // would have left it: sealed with nothing bound, format 0.
    let worker = env.start_worker().await;
    let old_row = submit(&env, &key).await;
    let legacy_row = submit(&env, &key).await;
    worker.shutdown().await.unwrap();
    let raw_key: [u8; 32] = BASE64.decode(TEST_DATA_KEY).unwrap().try_into().unwrap();
    sqlx::query(
        "UPDATE submissions SET identity_number_enc = $2, document_number_enc = NULL, \
         pii_format = 0 WHERE id = $1",
    )
    .bind(legacy_row)
    .bind(EnvelopeKey::from_bytes(raw_key).seal(expected.as_bytes()))
    .execute(env.store.pool())
    .await
    .unwrap();

    // Rotate: "new" is current, "test" older.
    env.settings.crypto.data_key = Some(SecretString::from(NEW_DATA_KEY));
    env.settings.crypto.data_key_id = "new".to_owned();
    env.settings.crypto.older_data_keys = Some(SecretString::from(format!("test:{TEST_DATA_KEY}")));
    let _worker = env.start_worker().await;
    let new_row = submit(&env, &key).await;
    assert_eq!(key_and_format(&env, old_row).await, ("test".to_owned(), 1));
    assert_eq!(key_and_format(&env, new_row).await, ("new".to_owned(), 1));

    let ring = DataKey::keyring(
        &("new".to_owned(), SecretString::from(NEW_DATA_KEY)),
        &[("test".to_owned(), SecretString::from(TEST_DATA_KEY))],
    )
    .unwrap();
    for id in [old_row, legacy_row, new_row] {
        let fields = env.store.read_fields(id, &ring).await.unwrap().unwrap();
        assert_eq!(identity_number_of(&fields), expected, "{id}");
    }
    let current_only =
        DataKey::keyring(&("new".to_owned(), SecretString::from(NEW_DATA_KEY)), &[]).unwrap();
    assert!(
        env.store.read_fields(old_row, &current_only).await.is_err(),
        "without the older key an old row does not open"
    );

    // Reseal, as an operator runs it.
    let run = |args: &[&str]| {
        std::process::Command::new(kyc_testkit::binary("kycctl"))
            .args(args)
            .env("KYC__DATABASE__URL", &env.db_url)
            .env("KYC__CRYPTO__DATA_KEY", NEW_DATA_KEY)
            .env("KYC__CRYPTO__DATA_KEY_ID", "new")
            .env(
                "KYC__CRYPTO__OLDER_DATA_KEYS",
                format!("test:{TEST_DATA_KEY}"),
            )
            .output()
            .unwrap()
    };
    let status = run(&["data-key", "status"]);
    assert_eq!(status.status.code(), Some(1), "rows left to reseal");
    assert!(String::from_utf8_lossy(&status.stdout).contains("\"rowsToReseal\": 2"));
    let reseal = run(&["data-key", "reseal", "--batch", "1"]);
    assert!(
        reseal.status.success(),
        "{}",
        String::from_utf8_lossy(&reseal.stderr)
    );
    assert!(String::from_utf8_lossy(&reseal.stdout).contains("\"resealed\": 2"));
    assert_eq!(run(&["data-key", "status"]).status.code(), Some(0));

    for id in [old_row, legacy_row, new_row] {
        assert_eq!(key_and_format(&env, id).await, ("new".to_owned(), 1));
        let fields = env
            .store
            .read_fields(id, &current_only)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(identity_number_of(&fields), expected, "{id} after reseal");
    }
    env.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_value_moved_to_another_row_or_column_does_not_open() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let _worker = env.start_worker().await;
    let (a, b) = (submit(&env, &key).await, submit(&env, &key).await);
    let ring =
        DataKey::keyring(&("test".to_owned(), SecretString::from(TEST_DATA_KEY)), &[]).unwrap();
    assert!(env.store.read_fields(b, &ring).await.is_ok());

    // Row a's identity number pasted into row b: same key, wrong row.
    sqlx::query(
        "UPDATE submissions SET identity_number_enc = \
         (SELECT identity_number_enc FROM submissions WHERE id = $1) WHERE id = $2",
    )
    .bind(a)
    .bind(b)
    .execute(env.store.pool())
    .await
    .unwrap();
    assert!(env.store.read_fields(b, &ring).await.is_err());

    // Row a's two sealed columns swapped: right row, wrong column.
    sqlx::query(
        "UPDATE submissions SET identity_number_enc = document_number_enc, \
         document_number_enc = identity_number_enc WHERE id = $1",
    )
    .bind(a)
    .execute(env.store.pool())
    .await
    .unwrap();
    assert!(env.store.read_fields(a, &ring).await.is_err());
    env.stop_all().await;
}
