//! SIGKILL workers again and again during a bulk push: at the end every record is
//! stored exactly once and has exactly one result.

use crate::support::{
    Workers, assert_one_accepted_result_per_line, ensure_services_up, queue_counts, stored_ids,
};
use kyc_cli::push::{self, PushArgs};
use kyc_testkit::{TestEnv, eventually, record};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const RECORDS: usize = 50_000;
/// Workers killed during the push, one each time another 1/(KILLS + 1) of the
/// records has been stored: the kills follow the push's progress, not a clock.
const KILLS: usize = 10;
/// The longest the push may go without reaching its next kill point.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault test: stops shared services; run by scripts/test with --ignored --test-threads=1"]
async fn kill9_workers_during_bulk_push() {
    ensure_services_up();
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let dir = std::env::temp_dir().join(&env.db_name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bulk.jsonl");
    let lines: Vec<String> = (0..RECORDS)
        .map(|i| record(&format!("bulk-{i}")).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    let mut workers = Workers::new(&env, 200, 400, &[]);
    workers.spawn();
    workers.spawn();

    let started = Instant::now();
    let push = tokio::spawn({
        let settings = env.settings.clone();
        let args = PushArgs {
            file: file.clone(),
            api_key: Some(key.clone()),
            api_key_file: None,
            results: None,
            resume: false,
            encrypt: false,
            format: None,
            window: 1000,
            batch_size: kyc_cli::push::DEFAULT_BATCH_SIZE,
            idle_timeout: 60,
        };
        async move { push::run(&settings, args).await }
    });

    // Each time the stored rows pass the next kill point, kill the oldest worker
    // and start a replacement. The last point leaves a tenth of the records to
    // store, so every kill lands while the push still runs (checked, not
    // assumed). A message in the dead queue would never get its result: stop
    // early then instead of waiting for the push's idle timeout.
    let dead_queue = env.topology.dead_queue();
    let mut kills = 0usize;
    let mut rows_at_kill = Vec::new();
    let mut dead = 0;
    for k in 1..=KILLS {
        let point = (RECORDS * k / (KILLS + 1)) as i64;
        let rows = eventually(
            PROGRESS_TIMEOUT,
            &format!("{point} rows stored for kill {k}"),
            || async {
                let rows = env.count_rows().await;
                (rows >= point || push.is_finished()).then_some(rows)
            },
        )
        .await;
        dead = queue_counts(&env, &dead_queue).await.0;
        if dead > 0 || push.is_finished() {
            break;
        }
        assert!(workers.kill_oldest(), "a worker to kill");
        kills += 1;
        rows_at_kill.push((kills, rows));
        workers.spawn();
    }
    let push_time = started.elapsed();
    if dead > 0 {
        push.abort();
        let letters = kyc_cli::dlq::list(&env.settings, 5).await.unwrap();
        panic!(
            "{dead} records dead-lettered after {kills} kills in {push_time:.1?} \
             (rows at each kill: {rows_at_kill:?}); first ones: {letters:?}; \
             worker logs in {}",
            workers.log_dir().display()
        );
    }
    // The push runs on; dead letters are checked once more when it is done.
    let report = push.await.expect("push task").unwrap_or_else(|e| {
        panic!(
            "push failed after {kills} kills: {e:#} (worker logs in {})",
            workers.log_dir().display()
        )
    });
    let dead = queue_counts(&env, &dead_queue).await.0;
    println!(
        "kill9: {RECORDS} records, {kills} SIGKILLs within {push_time:.1?} \
         (rows at each kill: {rows_at_kill:?}); report: {} accepted, {} rejected; \
         {dead} dead-lettered; {} worker log lines with WARN",
        report.accepted,
        report.rejected,
        workers.log_lines_with("WARN"),
    );
    drop(workers);

    assert_eq!(
        kills, KILLS,
        "the push finished after {kills} of {KILLS} kills (rows at each: {rows_at_kill:?}): \
         the test must kill workers while the push runs"
    );
    assert_eq!(dead, 0, "no record may be dead-lettered by worker crashes");
    assert_eq!(
        (report.records, report.accepted, report.rejected),
        (RECORDS as u64, RECORDS as u64, 0),
        "every record published and accepted"
    );

    let rows = env.count_rows().await;
    println!("kill9: rows {rows}");
    assert_eq!(rows, RECORDS as i64, "one row per record");
    // Counted by input line (each line's userid): every line stored once.
    let sent: BTreeSet<String> = (0..RECORDS).map(|i| format!("bulk-{i}")).collect();
    env.assert_userids_stored_once(&sent).await;

    // The results file: exactly one accepted line per input line, each naming a
    // row of its own, and those rows are all there is.
    let stored = stored_ids(&env).await;
    assert_one_accepted_result_per_line(&file, RECORDS, &stored);
    // Passed: the input, results and worker logs are not needed any more.
    let _ = std::fs::remove_dir_all(&dir);
}
