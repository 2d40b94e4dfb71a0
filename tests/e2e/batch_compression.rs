//! Compressed batch messages (`docs/api.md` §8, "Batch messages"): push and the
//! HTTP batch endpoint send their batches' JSON zstd-compressed (before any
//! encryption), a worker takes compressed batches from any publisher, and a
//! body that decompresses beyond the largest batch, is no zstd frame or names
//! an encoding the worker does not know is answered once and not stored.

use crate::dead_letter_support::await_dead_letters;
use crate::lanes::publish_batch;
use crate::push::{args, read_results, temp_dir, write_file};
use kyc_bus::Topology;
use kyc_bus::lapin::options::BasicGetOptions;
use kyc_bus::lapin::{BasicProperties, Channel};
use kyc_core::envelope::encrypt_request;
use kyc_core::wire::{
    BATCH_ZSTD, REPLY_BATCH_TYPE, SubmissionBatchV1, compress_batch, decode_batch_encoding,
    encode_batch,
};
use kyc_testkit::amqp::{Tap, channel, with_api_key};
use kyc_testkit::{Api, TestEnv, eventually, record};
use std::borrow::Cow;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// The first message waiting on the bulk lane, left there: read without an
/// acknowledgement, and returned to the queue when `channel` closes.
async fn peek_bulk(channel: &Channel, topology: &Topology) -> (BasicProperties, Vec<u8>) {
    eventually(WAIT, "a batch message on the bulk lane", || async {
        let got = channel
            .basic_get(
                topology.bulk_queue().as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .expect("basic_get")?;
        Some((got.delivery.properties.clone(), got.delivery.data.clone()))
    })
    .await
}

/// `n` records (userids `{prefix}0`, …) posted to the batch endpoint of an
/// intake of a new project, answered 200; no worker runs, so their batch
/// message waits on the bulk lane.
async fn post_batch(env: &TestEnv, prefix: &str, n: usize) {
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let body: Vec<serde_json::Value> = (0..n).map(|i| record(&format!("{prefix}{i}"))).collect();
    let reply = api
        .post(
            "/v3/submission/migration/batch",
            Some(&key),
            serde_json::to_vec(&body).unwrap(),
            &[],
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

/// The userids a batch body marked compressed carries, after checking it is a
/// third of its JSON or less.
fn userids_of_compressed(properties: &BasicProperties, body: &[u8]) -> Vec<String> {
    assert_eq!(
        properties.content_encoding().as_ref().map(|e| e.as_str()),
        Some(BATCH_ZSTD)
    );
    let json = decode_batch_encoding(Some(BATCH_ZSTD), Cow::Borrowed(body)).expect("a zstd frame");
    assert!(
        body.len() * 3 < json.len(),
        "{} bytes compressed to {}",
        json.len(),
        body.len()
    );
    let batch = SubmissionBatchV1::from_slice(&json).expect("a batch inside");
    batch
        .records
        .iter()
        .map(|r| {
            let value: serde_json::Value = serde_json::from_str(r.submission.get()).unwrap();
            value["userid"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_compresses_its_batches_and_an_uncompressed_push_stores_nothing_twice() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let dir = temp_dir(&env);
    let lines: Vec<String> = (0..60)
        .map(|i| record(&format!("cz-{i}")).to_string())
        .collect();
    let file = write_file(&dir, "compressed.jsonl", &lines);

    // No worker yet: the first batch waits on the bulk lane to be looked at.
    let mut first = args(&file, &key);
    first.batch_size = 25;
    let settings = env.settings.clone();
    let pushing = tokio::spawn(async move { kyc_cli::push::run(&settings, first).await });
    let (connection, peek) = channel(&env.topology).await;
    let (properties, body) = peek_bulk(&peek, &env.topology).await;
    let userids = userids_of_compressed(&properties, &body);
    assert_eq!(userids.len(), 25, "{userids:?}");
    drop(peek);
    drop(connection);

    let _worker = env.start_worker().await;
    let report = pushing.await.unwrap().unwrap();
    assert_eq!((report.accepted, report.rejected), (60, 0));
    let results = kyc_cli::push::default_results_path(&file);
    let ids = || {
        read_results(&results)
            .into_values()
            .map(|r| (r.line, r.submission_id))
            .collect::<Vec<_>>()
    };
    let compressed = ids();

    // The same file again, uncompressed and in other batch sizes: the same ids,
    // one row per record.
    let mut plain = args(&file, &key);
    plain.batch_size = 7;
    plain.no_compress = true;
    let report = kyc_cli::push::run(&env.settings, plain).await.unwrap();
    assert_eq!((report.accepted, report.rejected), (60, 0));
    assert_eq!(compressed, ids());
    let rows = env.rows_per_userid().await;
    assert_eq!(rows.len(), 60);
    assert!(rows.values().all(|&n| n == 1), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_endpoint_queues_compressed_sealed_batches() {
    let env = TestEnv::new().await;
    post_batch(&env, "cz-h", 40).await;

    // Sealed after compression: the body is neither JSON nor a zstd frame in
    // plain, and says it is compressed.
    let (connection, peek) = channel(&env.topology).await;
    let (properties, sealed) = peek_bulk(&peek, &env.topology).await;
    assert_eq!(
        properties.content_encoding().as_ref().map(|e| e.as_str()),
        Some(BATCH_ZSTD)
    );
    let text = String::from_utf8_lossy(&sealed);
    assert!(!text.contains("cz-h") && !text.contains("userid"));
    drop(peek);
    drop(connection);

    let _worker = env.start_worker().await;
    eventually(WAIT, "40 rows", || async {
        (env.count_rows().await == 40).then_some(())
    })
    .await;
    assert_eq!(env.rows_per_userid().await.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_takes_compressed_batches_and_answers_bombs_and_unknown_encodings_once() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let _worker = env.start_worker().await;
    let (_connection, channel) = channel(&env.topology).await;
    let mut replies = Tap::queue(&env.topology).await;
    let reply_to = |correlation: &str| {
        with_api_key(&key)
            .with_reply_to(replies.queue.as_str().into())
            .with_correlation_id(correlation.into())
    };
    let member = |userid: &str| serde_json::to_vec(&record(userid)).unwrap();
    let (a, b) = (member("cz-d1"), member("cz-d2"));

    // Compressed, plain and in the §7 envelope (compressed, then encrypted).
    let json = encode_batch([(Some("cz-k1"), Some("c1"), &a[..])]);
    let packed = compress_batch(&json).unwrap();
    let json2 = encode_batch([(Some("cz-k2"), Some("c2"), &b[..])]);
    let sealed = encrypt_request(&key, &compress_batch(&json2).unwrap());
    // 64 MiB of spaces inside a record: a few kilobytes on the wire.
    let mut bomb = b"{\"records\":[{\"submission\":\"".to_vec();
    bomb.resize(bomb.len() + (64 << 20), b' ');
    bomb.extend_from_slice(b"\"}]}");
    let bomb = compress_batch(&bomb).unwrap();
    assert!(bomb.len() < 64 << 10);
    // (correlation id, body, content encoding)
    let messages: [(&str, &[u8], &str); 5] = [
        ("m1", &packed, BATCH_ZSTD),
        ("m2", &sealed, BATCH_ZSTD),
        ("m3", &bomb, BATCH_ZSTD),
        ("m4", &packed, "gzip"),
        // Said to be compressed, but plain JSON.
        ("m5", &json, BATCH_ZSTD),
    ];
    for (correlation, body, encoding) in messages {
        let properties = reply_to(correlation).with_content_encoding(encoding.into());
        publish_batch(&channel, &env, body, properties).await;
    }

    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 5 {
        let (kind, results) = replies.next_reply(WAIT).await.expect("a reply per message");
        for result in results {
            let correlation = result.correlation_id.clone().unwrap_or_default();
            let code = result.event.error_code.map(|c| c.as_str().to_owned());
            answers.insert(correlation, (kind.clone(), code));
        }
    }
    let code = |c: &str| answers[c].1.as_deref();
    assert_eq!(answers["c1"].0.as_deref(), Some(REPLY_BATCH_TYPE));
    assert_eq!((code("c1"), code("c2")), (None, None), "{answers:?}");
    assert_eq!(code("m3"), Some("payload_too_large"), "{answers:?}");
    assert_eq!(code("m4"), Some("invalid_payload"), "{answers:?}");
    assert_eq!(code("m5"), Some("invalid_payload"), "{answers:?}");
    let rows = env.rows_per_userid().await;
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["cz-d1", "cz-d2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_batch_whose_encoding_cannot_be_undone_is_dead_lettered_not_dropped() {
    // An encoding no worker knows: the seal opens, the content cannot be
    // decoded.
    relabelled_intake_batch_is_dead_lettered("br").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_batch_that_opens_to_no_batch_is_dead_lettered_not_dropped() {
    // Said to be plain: the seal opens to zstd bytes, which are no batch.
    relabelled_intake_batch_is_dead_lettered("identity").await;
}

/// Takes the intake's sealed batch off the bulk lane, puts it back labelled
/// `encoding` (the seal does not cover the property, so it still opens, and
/// then cannot be read) and checks it is dead-lettered whole as `unreadable`.
async fn relabelled_intake_batch_is_dead_lettered(encoding: &str) {
    let env = TestEnv::new().await;
    post_batch(&env, "cz-u", 3).await;

    let (_connection, channel) = channel(&env.topology).await;
    let taken = eventually(WAIT, "the intake's batch on the bulk lane", || async {
        channel
            .basic_get(
                env.topology.bulk_queue().as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic_get")
    })
    .await;
    let properties = taken
        .delivery
        .properties
        .clone()
        .with_content_encoding(encoding.into());
    publish_batch(&channel, &env, &taken.delivery.data, properties).await;

    let _worker = env.start_worker().await;
    let letters = await_dead_letters(&env, WAIT, "the unreadable batch dead-lettered").await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].reason, "unreadable");
    eventually(WAIT, "the bulk lane drained", || async {
        let depth = channel
            .queue_declare(
                env.topology.bulk_queue().as_str().into(),
                kyc_bus::lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("the bulk lane")
            .message_count();
        (depth == 0).then_some(())
    })
    .await;
    assert_eq!(env.count_rows().await, 0, "nothing of it stored");

    // Kept whole: the same sealed bytes wait in the dead queue.
    let letter = channel
        .basic_get(
            env.topology.dead_queue().as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .expect("basic_get")
        .expect("the dead letter");
    assert_eq!(letter.delivery.data, taken.delivery.data);
}
