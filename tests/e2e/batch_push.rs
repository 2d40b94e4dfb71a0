//! `kycctl push` in batch messages (`docs/api.md` §8, "Batch messages"): one
//! result per line with the right code whatever the batch size, ids per record
//! so that pushing again with another batch size stores nothing twice, the
//! whole batch sealed in the §7 envelope, and a record the database refuses
//! dead-lettered alone while the rest of its batch is stored. The result
//! events of batch records travel grouped (`kyc.result-batch.v1`), one event per
//! record all the same.

use crate::dead_letter_support::await_dead_letters;
use crate::dead_letters::refuse_poison_rows;
use crate::push::{args, cases, read_results, temp_dir, write_file};
use kyc_cli::dlq::{self, Selection};
use kyc_cli::push::{self, ResultLine};
use kyc_testkit::amqp::Tap;
use kyc_testkit::{TestEnv, eventually, record};
use std::collections::BTreeMap;
use std::time::Duration;

/// Rows per idempotency key and per stored `userid`: counted by what was sent,
/// not by primary key.
async fn rows_per_key(env: &TestEnv) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT idempotency_key, count(*) FROM submissions GROUP BY idempotency_key",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_answer_every_line_and_another_batch_size_stores_nothing_twice() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let _worker = env.start_worker().await;
    let dir = temp_dir(&env);
    let cases = cases();
    let lines: Vec<String> = cases.iter().map(|c| c.line.clone()).collect();
    let file = write_file(&dir, "mix.jsonl", &lines);

    let mut first = args(&file, &key);
    first.batch_size = 7;
    let report = push::run(&env.settings, first).await.unwrap();
    let valid = cases.iter().filter(|c| c.expect.is_none()).count() as u64;
    assert_eq!(
        (report.records, report.accepted, report.rejected),
        (cases.len() as u64, valid, cases.len() as u64 - valid)
    );
    let results = read_results(&push::default_results_path(&file));
    assert_eq!(results.len(), cases.len(), "one result per input line");
    for (i, case) in cases.iter().enumerate() {
        let result = &results[&(i as u64 + 1)];
        assert_eq!(
            (result.status.as_str(), result.error_code.as_deref()),
            match case.expect {
                None => ("accepted", None),
                Some(code) => ("rejected", Some(code)),
            },
            "{}: {result:?}",
            case.name
        );
    }
    let ids = |r: &BTreeMap<u64, ResultLine>| {
        r.values()
            .map(|l| (l.line, l.submission_id))
            .collect::<Vec<_>>()
    };

    // The same file one record per message, then in one batch of all: the same
    // ids, and still one row per line and per userid.
    for size in [1, 200] {
        let mut again = args(&file, &key);
        again.batch_size = size;
        push::run(&env.settings, again).await.unwrap();
        let rerun = read_results(&push::default_results_path(&file));
        assert_eq!(
            ids(&results),
            ids(&rerun),
            "batch size {size}: the same ids"
        );
    }
    let per_key = rows_per_key(&env).await;
    assert_eq!(per_key.len(), cases.len(), "one key per line: {per_key:?}");
    assert!(
        per_key.values().all(|&n| n == 1),
        "a line stored more than once: {per_key:?}"
    );
    assert!(env.duplicated_userids().await.is_empty());
    assert_eq!(env.rows_per_userid().await.len(), valid as usize);
}

/// Pushes a mixed file in batches through a worker that groups events (or not)
/// and checks every line's event arrives once with its verdict; how many
/// grouped messages carried them, and how many records there were.
async fn push_and_collect_events(group_events: bool) -> (usize, usize) {
    let env = TestEnv::new().await;
    let (project, key) = env.project(false).await;
    let mut events = Tap::events(&env.topology).await;
    let mut settings = env.settings.clone();
    settings.worker.group_events = group_events;
    let _worker = env.start_worker_with(&settings).await;
    let dir = temp_dir(&env);
    let mut lines: Vec<String> = cases().into_iter().map(|c| c.line).collect();
    lines.extend((0..40).map(|i| record(&format!("g-{i}")).to_string()));
    let file = write_file(&dir, "grouped.jsonl", &lines);
    let mut push_args = args(&file, &key);
    push_args.batch_size = 9;
    push::run(&env.settings, push_args).await.unwrap();
    let results = read_results(&push::default_results_path(&file));
    assert_eq!(results.len(), lines.len());

    // Every line's result is announced, once: as many events as lines, each
    // the verdict its line got.
    let mut seen = BTreeMap::new();
    let mut received = 0;
    while seen.len() < results.len() {
        let Some((_, event)) = events.next(Duration::from_secs(30)).await else {
            panic!("only {} of {} events", seen.len(), results.len())
        };
        received += 1;
        seen.insert(event.submission_id, event);
    }
    assert_eq!(received, results.len(), "an event announced twice");
    for line in results.values() {
        let event = &seen[&line.submission_id];
        assert_eq!(event.project_id, project);
        assert_eq!(
            (event.event.status(), event.error_code.map(|c| c.as_str())),
            (line.status.as_str(), line.error_code.as_deref()),
            "line {}",
            line.line
        );
    }
    (events.grouped_messages, results.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_of_batch_records_come_grouped_one_per_record() {
    let (grouped, records) = push_and_collect_events(true).await;
    // In fewer messages than records: grouped per kind and project.
    assert!(
        (1..records / 2).contains(&grouped),
        "{grouped} grouped messages for {records} records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_told_not_to_group_announces_one_message_per_event() {
    let (grouped, _) = push_and_collect_events(false).await;
    assert_eq!(
        grouped, 0,
        "KYC__WORKER__GROUP_EVENTS=false: single events only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encryption_requiring_project_takes_sealed_batches_and_refuses_plain_ones() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(true).await;
    let _worker = env.start_worker().await;
    let dir = temp_dir(&env);
    let lines: Vec<String> = (0..30)
        .map(|i| record(&format!("e-{i}")).to_string())
        .collect();

    let plain_file = write_file(&dir, "plain.jsonl", &lines[..10]);
    let mut plain = args(&plain_file, &key);
    plain.batch_size = 4;
    let report = push::run(&env.settings, plain).await.unwrap();
    assert_eq!((report.accepted, report.rejected), (0, 10));
    let results = read_results(&push::default_results_path(&plain_file));
    assert!(
        results
            .values()
            .all(|r| r.error_code.as_deref() == Some("invalid_payload")),
        "{results:?}"
    );

    let sealed_file = write_file(&dir, "sealed.jsonl", &lines[10..]);
    let mut sealed = args(&sealed_file, &key);
    sealed.batch_size = 8;
    sealed.encrypt = true;
    let report = push::run(&env.settings, sealed).await.unwrap();
    assert_eq!((report.accepted, report.rejected), (20, 0));
    assert_eq!(env.rows_per_userid().await.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_database_refuses_is_dead_lettered_alone_and_replayed() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    refuse_poison_rows(&env).await;
    let _worker = env.start_worker().await;
    let dir = temp_dir(&env);
    let mut lines: Vec<String> = (0..25)
        .map(|i| record(&format!("fine-{i}")).to_string())
        .collect();
    lines[12] = record("poison").to_string();
    let file = write_file(&dir, "poison.jsonl", &lines);

    let mut first = args(&file, &key);
    first.batch_size = 10;
    let report = push::run(&env.settings, first).await.unwrap();
    assert_eq!((report.accepted, report.rejected), (24, 1));
    let results = read_results(&push::default_results_path(&file));
    let poison = &results[&13];
    assert_eq!(
        poison.error_code.as_deref(),
        Some("processing_error"),
        "{poison:?}"
    );
    assert!(
        results
            .values()
            .filter(|r| r.line != 13)
            .all(|r| r.accepted())
    );

    // It alone is in the dead queue, named by its key, with the reason.
    let letters = await_dead_letters(
        &env,
        Duration::from_secs(30),
        "the poison record dead-lettered",
    )
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let poison_key = push::message_id(13, lines[12].as_bytes());
    assert_eq!(letters[0].id, poison_key);
    assert_eq!(letters[0].reason, "unstorable");
    assert_eq!(letters[0].queue, env.topology.bulk_queue());
    assert_eq!(
        env.status_of(poison.submission_id).await.as_deref(),
        Some("rejected")
    );

    // Once the cause is gone, the replay stores it under the same id.
    sqlx::query("DROP TRIGGER refuse_poison ON submissions")
        .execute(env.store.pool())
        .await
        .unwrap();
    let replayed = dlq::replay(&env.settings, &Selection::Ids([poison_key.clone()].into()))
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    let id = kyc_core::id::submission_id(project_id, Some(&poison_key));
    assert_eq!(id, poison.submission_id);
    eventually(
        Duration::from_secs(20),
        "the replayed record accepted",
        || async { (env.status_of(id).await.as_deref() == Some("accepted")).then_some(()) },
    )
    .await;
    let per_userid = env.rows_per_userid().await;
    assert_eq!(per_userid.get("poison"), Some(&1), "{per_userid:?}");
    assert_eq!(per_userid.len(), 25);
    assert_eq!(env.count_rows().await, 25, "replaced, not added");
    assert!(dlq::list(&env.settings, 10).await.unwrap().is_empty());
}
