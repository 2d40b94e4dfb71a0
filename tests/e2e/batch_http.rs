//! `POST /v3/submission/migration/batch` (`docs/api.md` §5a): per-record answers
//! in input order, edge refusals not queued, 413 beyond the limits, the
//! envelope over the whole body, idempotency per record and `?wait`.

use crate::dead_letter_support::await_dead_letters;
use kyc_core::envelope::{EnvelopeKey, encrypt_request};
use kyc_core::id::submission_id;
use kyc_testkit::{Api, TestEnv, eventually, record};
use serde_json::{Value, json};
use std::time::Duration;

const PATH: &str = "/v3/submission/migration/batch";

fn ids(body: &Value) -> Vec<Option<String>> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["submissionId"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_record_is_answered_in_order_and_only_valid_ones_are_queued() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let mut missing = record("h-1");
    missing.as_object_mut().unwrap().remove("email");
    let mut stranger = record("h-2");
    stranger["admin"] = json!("stranger@example.com");
    let body = json!([record("h-0"), missing, stranger, record("h-3")]);
    let reply = api
        .post(PATH, Some(&key), serde_json::to_vec(&body).unwrap(), &[])
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let results = reply.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["index"], i, "{result}");
    }
    assert!(results[0]["submissionId"].is_string());
    assert_eq!(results[1]["errorCode"], "missing_data");
    assert_eq!(results[1]["parameters"], json!(["email"]));
    assert!(results[1].get("submissionId").is_none());
    assert_eq!(results[2]["errorCode"], "invalid_admin");
    assert!(results[3]["submissionId"].is_string());

    // The two valid ones are stored; the refused ones never reach a worker.
    eventually(Duration::from_secs(20), "two rows", || async {
        (env.count_rows().await >= 2).then_some(())
    })
    .await;
    let stored = env.rows_per_userid().await;
    assert!(
        stored.contains_key("h-0") && stored.contains_key("h-3"),
        "{stored:?}"
    );
    assert!(!stored.contains_key("h-1") && !stored.contains_key("h-2"));

    // NDJSON: a line that is not JSON is answered invalid_payload.
    let ndjson = format!("{}\nnot json\n{}\n", record("n-0"), record("n-2"));
    let reply = api.post(PATH, Some(&key), ndjson.into_bytes(), &[]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["results"][1]["errorCode"], "invalid_payload");
    assert_eq!(ids(&reply.body).iter().flatten().count(), 2);

    // A lone JSON object is neither an array nor the envelope: refused whole…
    let lone = serde_json::to_vec(&record("lone")).unwrap();
    let reply = api.post(PATH, Some(&key), lone.clone(), &[]).await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(reply.error_code(), Some("invalid_payload"));
    // …unless it is sent as NDJSON of one record.
    let reply = reqwest::Client::new()
        .post(format!("http://{}{PATH}", intake.addr.unwrap()))
        .header("x-api-key", &key)
        .header("content-type", "application/x-ndjson")
        .body(lone)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(ids(&body).iter().flatten().count(), 1, "{body}");

    // Authentication comes first.
    let reply = api
        .post(PATH, Some("kyc_unknown"), b"[{}]".to_vec(), &[])
        .await;
    assert_eq!(reply.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_records_or_bytes_is_413() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let mut settings = env.settings.clone();
    settings.http.batch_max_records = 3;
    settings.http.batch_body_limit_bytes = 4096;
    let intake = env.start_intake_with(&settings).await;
    let api = Api::new(intake.addr.unwrap());

    let four: Vec<Value> = (0..4).map(|i| record(&format!("t-{i}"))).collect();
    let reply = api
        .post(PATH, Some(&key), serde_json::to_vec(&four).unwrap(), &[])
        .await;
    assert_eq!(reply.status, 413, "{:?}", reply.body);
    assert_eq!(reply.error_code(), Some("payload_too_large"));

    let mut big = record("t-big");
    big["fullName"] = json!("x".repeat(5000));
    let reply = api
        .post(
            PATH,
            Some(&key),
            serde_json::to_vec(&json!([big])).unwrap(),
            &[],
        )
        .await;
    assert_eq!(reply.status, 413, "{:?}", reply.body);
    assert_eq!(env.count_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_envelope_covers_the_whole_batch_and_the_answer() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(true).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());
    let plain = serde_json::to_vec(&json!([record("s-0"), record("s-1")])).unwrap();

    let reply = api.post(PATH, Some(&key), plain.clone(), &[]).await;
    assert_eq!(
        reply.status, 400,
        "a plain batch where encryption is required"
    );
    assert_eq!(reply.error_code(), Some("invalid_payload"));

    let reply = api
        .post(PATH, Some(&key), encrypt_request(&key, &plain), &[])
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["isEncrypted"], true);
    let opened = EnvelopeKey::from_api_key(&key)
        .decrypt_base64(reply.body["data"].as_str().unwrap())
        .unwrap();
    let answer: Value = serde_json::from_slice(&opened).unwrap();
    assert_eq!(ids(&answer).iter().flatten().count(), 2, "{answer}");
    eventually(Duration::from_secs(20), "two rows", || async {
        (env.count_rows().await == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_names_each_record_and_wait_reports_verdicts() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());
    let mut missing = record("i-1");
    missing.as_object_mut().unwrap().remove("email");
    let body = serde_json::to_vec(&json!([record("i-0"), missing, record("i-2")])).unwrap();
    let headers = [("idempotency-key", "migration-7")];

    let first = api
        .post(
            &format!("{PATH}?wait=20"),
            Some(&key),
            body.clone(),
            &headers,
        )
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let results = first.body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[2]["status"], "accepted");
    assert_eq!(
        results[0]["submissionId"],
        submission_id(project_id, Some("migration-7:0")).to_string()
    );
    assert_eq!(
        results[2]["submissionId"],
        submission_id(project_id, Some("migration-7:2")).to_string()
    );
    // ?wait promises the rows.
    assert_eq!(env.count_rows().await, 2);

    // The same request again, waited on so that the worker has handled it.
    let again = api
        .post(&format!("{PATH}?wait=20"), Some(&key), body, &headers)
        .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(ids(&first.body), ids(&again.body), "the same ids");
    assert_eq!(again.body["results"][0]["status"], "accepted");
    // Nothing stored twice, counted per userid.
    let per_userid = env.rows_per_userid().await;
    assert_eq!(per_userid.get("i-0"), Some(&1));
    assert_eq!(per_userid.get("i-2"), Some(&1));
    assert_eq!(per_userid.len(), 2);
    assert_eq!(env.count_rows().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_of_an_intake_batch_is_dead_lettered_sealed_and_replayed() {
    use kyc_bus::lapin::options::BasicGetOptions;
    use kyc_cli::dlq::{self, Selection};

    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    crate::dead_letters::refuse_poison_rows(&env).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());
    let body = json!([record("fine-0"), record("poison"), record("fine-2")]);
    let reply = api
        .post(PATH, Some(&key), serde_json::to_vec(&body).unwrap(), &[])
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let poison_id: uuid::Uuid = ids(&reply.body)[1].clone().unwrap().parse().unwrap();

    let letters = await_dead_letters(
        &env,
        Duration::from_secs(30),
        "the poison record dead-lettered",
    )
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].id, poison_id.to_string());
    assert_eq!(letters[0].reason, "unstorable");
    // The others are stored; the refused one is a processing_error row.
    assert_eq!(env.rows_per_userid().await.len(), 2);
    let result = api.result(&key, poison_id).await;
    assert_eq!(
        result.body["errorCode"], "processing_error",
        "{:?}",
        result.body
    );

    // Sealed on the broker, as its batch was: no personal data readable.
    let (_connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    let letter = channel
        .basic_get(
            env.topology.dead_queue().as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .unwrap()
        .expect("the dead letter");
    let text = String::from_utf8_lossy(&letter.delivery.data);
    assert!(
        !text.contains("poison") && !text.contains("userid"),
        "{text}"
    );
    drop(letter);
    let _ = channel.close(200, "bye".into()).await;

    sqlx::query("DROP TRIGGER refuse_poison ON submissions")
        .execute(env.store.pool())
        .await
        .unwrap();
    let replayed = dlq::replay(
        &env.settings,
        &Selection::Ids([poison_id.to_string()].into()),
    )
    .await
    .unwrap();
    assert_eq!(replayed, 1);
    eventually(
        Duration::from_secs(20),
        "the replayed record accepted",
        || async { (env.status_of(poison_id).await.as_deref() == Some("accepted")).then_some(()) },
    )
    .await;
    assert_eq!(env.rows_per_userid().await.get("poison"), Some(&1));
    assert_eq!(env.count_rows().await, 3);
}

/// A body near the 4 MiB limit, 200 records of nearly 20 KB, is queued and
/// stored whole. The endpoint gathers records by bytes as well as by count (at
/// most 2 MiB of records a message, as push does), so it goes out as two
/// messages of 100 rather than one of 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_near_the_limit_is_stored_whole() {
    const RECORDS: usize = 200;
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    // Valid records of about 19.5 KB each, white space included (it is part
    // of the record's bytes as sent): 200 of them are 3.9 MB, one message's
    // worth by count.
    let padding = " ".repeat(19_500);
    let records: Vec<String> = (0..RECORDS)
        .map(|i| {
            let compact = serde_json::to_string(&record(&format!("big-{i}"))).unwrap();
            format!("{{{padding}{}", &compact[1..])
        })
        .collect();
    let body = format!("[{}]", records.join(","));
    assert!(
        body.len() > 3_900_000 && body.len() < 4 << 20,
        "{}",
        body.len()
    );
    let reply = api.post(PATH, Some(&key), body.into_bytes(), &[]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(ids(&reply.body).iter().flatten().count(), RECORDS);

    eventually(Duration::from_secs(30), "every record stored", || async {
        (env.rows_per_userid().await.len() == RECORDS).then_some(())
    })
    .await;
}
