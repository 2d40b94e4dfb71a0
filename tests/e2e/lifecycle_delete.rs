//! `DELETE /v3/submission` and `/partial`: what is erased and what stays, the
//! answers, the event, isolation, and a real `pg_dump` afterwards holding none
//! of the erased values.

use crate::lifecycle_support::{
    LifecycleTap, assert_error, delete, delete_partial, list, patch, store_one,
};
use kyc_testkit::{ADMIN, Api, TestEnv, full_record, record};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// The values of the person erased in the `pg_dump` test: none may survive.
const ERASED: [(&str, &str); 10] = [
    ("fullName", "Zelda Quixote-Erasure"),
    ("email", "zelda.erasure@example.org"),
    ("firstName", "Zelda"),
    ("lastName", "Quixote-Erasure"),
    ("identityNumber", "ID-ERASE-7777"),
    ("documentNumber", "DOC-ERASE-8888"),
    ("address_street", "13 Forgotten Lane"),
    ("cf1", "cf-erase-secret"),
    ("userid", "user-erase-0001"),
    ("ipAddress", "198.51.100.77"),
];

fn pg_dump(url: &str) -> String {
    let output = std::process::Command::new("pg_dump")
        .arg("--no-owner")
        .arg(url)
        .output()
        .expect("pg_dump runs (the PostgreSQL client tools are installed)");
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_delete_pg_dump_holds_none_of_the_erased_values() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let mut events = LifecycleTap::open(&env.topology).await;
    let api = Api::new(intake.addr.unwrap());

    let mut person = full_record();
    for (field, value) in ERASED {
        person[field] = value.into();
    }
    person["birthDate"] = "1911-11-11".into();
    let reply = api
        .submit_raw(
            Some(&key),
            serde_json::to_vec(&person).unwrap(),
            &[("idempotency-key", "erase-idem-key-42")],
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.submission_id();
    env.await_row(id, Duration::from_secs(10)).await;
    // A correction leaves the old name in the history.
    let reply = patch(
        &api,
        &key,
        &json!({"submissionId": id, "admin": ADMIN, "data": {"fullName": "Zelda Corrected-Erasure"}}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        events.next(Duration::from_secs(10)).await.event,
        "submission.updated"
    );
    let before = pg_dump(&env.db_url);
    for (_, value) in [
        ("", "Zelda Quixote-Erasure"),
        ("", "cf-erase-secret"),
        ("", "erase-idem-key-42"),
    ] {
        assert!(
            before.contains(value),
            "the dump shows stored values before: {value}"
        );
    }

    let reply = delete(
        &api,
        &key,
        &format!("submission_id={id}&admin_name={ADMIN}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({"message": "success", "content": "Submission ID deleted successfully.", "statusCode": 200})
    );
    let event = events.next(Duration::from_secs(10)).await;
    assert_eq!(event.event, "submission.deleted");
    assert_eq!(event.submission_id, id);
    assert_eq!(event.partial, Some(false));
    assert_eq!(event.admin.as_deref(), Some(ADMIN));

    let dump = pg_dump(&env.db_url);
    for (field, value) in ERASED.iter().copied().chain([
        ("birthDate", "1911-11-11"),
        ("history", "Zelda Corrected-Erasure"),
        ("idempotency key", "erase-idem-key-42"),
    ]) {
        assert!(
            !dump.contains(value),
            "pg_dump still holds {field} ({value})"
        );
    }
    // What stays: id, project, status, id type, creation and deletion times.
    let (status, kyc, id_type, deleted): (String, String, String, bool) = sqlx::query_as(
        "SELECT status, kyc_status, id_type, deleted_at IS NOT NULL FROM submissions WHERE id = $1",
    )
    .bind(id)
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), kyc.as_str(), id_type.as_str(), deleted),
        ("accepted", "approved", "drivers_license", true)
    );

    // The listing shows it as deleted.
    let item = list(&api, &key, &format!("submission_id={id}")).await.body["Items"][0].clone();
    assert!(item["deleted_at"].is_string(), "{item}");
    let mut shape = item.clone();
    for volatile in ["submission_id", "created_at", "deleted_at"] {
        shape.as_object_mut().unwrap().remove(volatile);
    }
    let expected: Value =
        serde_json::from_str(include_str!("fixtures/lifecycle_item_deleted.json")).unwrap();
    assert_eq!(shape, expected);
    // Its result says so too.
    let result = api.result(&key, id).await;
    assert_eq!(result.body["status"], "accepted", "{:?}", result.body);
    assert!(result.body["deletedAt"].is_string(), "{:?}", result.body);
    // Deleting again: it is gone.
    assert_error(
        &delete(&api, &key, &format!("submission_id={id}")).await,
        400,
        "invalid_submission",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes_and_isolation() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let (other_project, other_key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let mine = store_one(&env, project_id, &record("mine")).await;
    let theirs = store_one(&env, other_project, &record("theirs")).await;

    // Another project's id, an unknown one and a non-id: the same answer, in
    // both endpoints.
    for query in [
        format!("submission_id={theirs}"),
        format!("submission_id={}", Uuid::now_v7()),
        "submission_id=nope".to_owned(),
    ] {
        let full = delete(&api, &key, &query).await;
        assert_error(&full, 400, "invalid_submission");
        assert_eq!(full.body["message"], "Invalid submission");
        let partial = delete_partial(&api, &key, &format!("{query}&fields=email")).await;
        assert_eq!(partial.body, full.body);
    }
    // The other project's submission is untouched.
    let theirs_listed = list(&api, &other_key, "").await;
    assert_eq!(theirs_listed.body["Items"][0]["userid"], "theirs");
    assert!(theirs_listed.body["Items"][0].get("deleted_at").is_none());

    assert_error(&delete(&api, &key, "").await, 400, "missing_data");
    assert_error(
        &delete(&api, &key, "colour=blue").await,
        400,
        "invalid_parameter",
    );
    assert_error(
        &delete(
            &api,
            &key,
            &format!("submission_id={mine}&admin_name=nobody@example.com"),
        )
        .await,
        400,
        "invalid_admin",
    );
    assert_error(
        &delete(
            &api,
            &key,
            &format!("submission_id={mine}&admin_name=not-an-address"),
        )
        .await,
        400,
        "invalid_format",
    );
    assert_error(
        &delete_partial(&api, &key, &format!("submission_id={mine}")).await,
        400,
        "missing_data",
    );
    let reply = delete_partial(
        &api,
        &key,
        &format!("submission_id={mine}&fields=email,face"),
    )
    .await;
    assert_error(&reply, 400, "invalid_parameter");
    assert_eq!(reply.body["message"], "invalid parameter: face");
    let anonymous = api
        .send(
            reqwest::Method::DELETE,
            &format!("/v3/submission?submission_id={mine}"),
            None,
            None,
        )
        .await;
    assert_error(&anonymous, 403, "forbidden");

    // Partial: only the named groups go.
    let reply = delete_partial(
        &api,
        &key,
        &format!("submission_id={mine}&fields=email,userid,id_image"),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let item = list(&api, &key, "").await.body["Items"][0].clone();
    assert!(
        item.get("email").is_none() && item.get("userid").is_none(),
        "{item}"
    );
    assert_eq!(item["data"]["full_name"], "Jane Doe", "data stays: {item}");
    assert!(item.get("deleted_at").is_none());
    assert_eq!(item["erased"], json!(["email", "id_image", "userid"]));
    let reply = delete_partial(&api, &key, &format!("submission_id={mine}&fields=data")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let item = list(&api, &key, "").await.body["Items"][0].clone();
    assert_eq!(item["data"], json!({}), "{item}");
    assert_eq!(item["kyc"]["result"], "approved");
}

/// `kycctl submission erase`: all of one person's submissions in a project, and
/// nobody else's; the dry run erases nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kycctl_erases_every_submission_of_one_person() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let (other_project, _) = env.project(false).await;
    let intake = env.start_intake().await;
    let mut events = LifecycleTap::open(&env.topology).await;
    let api = Api::new(intake.addr.unwrap());
    let first = store_one(&env, project_id, &record("person-1")).await;
    let second = store_one(&env, project_id, &record("person-1")).await;
    let someone_else = store_one(&env, project_id, &record("person-2")).await;
    let same_userid_elsewhere = store_one(&env, other_project, &record("person-1")).await;

    let mut found = kyc_cli::submission::erase(&env.settings, project_id, "person-1", true)
        .await
        .unwrap();
    found.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(
        list(&api, &key, "userid=person-1").await.body["Items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let mut erased = kyc_cli::submission::erase(&env.settings, project_id, "person-1", false)
        .await
        .unwrap();
    erased.sort();
    assert_eq!(erased, expected);
    assert_eq!(
        list(&api, &key, "userid=person-1").await.body["Items"],
        json!([])
    );
    for _ in 0..2 {
        let event = events.next(Duration::from_secs(10)).await;
        assert_eq!(event.event, "submission.deleted");
        assert!(expected.contains(&event.submission_id));
    }
    for untouched in [someone_else, same_userid_elsewhere] {
        let deleted: bool =
            sqlx::query_scalar("SELECT deleted_at IS NOT NULL FROM submissions WHERE id = $1")
                .bind(untouched)
                .fetch_one(env.store.pool())
                .await
                .unwrap();
        assert!(!deleted);
    }
    // Nothing left to erase.
    assert!(
        kyc_cli::submission::erase(&env.settings, project_id, "person-1", false)
            .await
            .unwrap()
            .is_empty()
    );
}
