//! `kyc-bench pipeline`: the path without HTTP, end to end.
//!
//! For each worker count W:
//! - ceiling: W bare workers consuming while N raw messages (the bench record)
//!   are published with a window of unconfirmed messages; records/s from the
//!   first publish until the N-th row is in the scratch table;
//! - ours, worker alone: the same raw feed (with the API key and a distinct
//!   message id per message) into W `kyc_worker::Worker`s;
//! - ours, end to end: W `kyc_worker::Worker`s consuming while `kycctl push` (the real
//!   `kyc_cli::push::run`) sends a JSONL file of N valid records; records/s from
//!   the start of the push until it has every result (and N rows are stored);
//! - ours, over HTTP: W workers and our intake (in this process) while the same
//!   file goes to `POST /v3/submission/migration/batch` as NDJSON bodies of
//!   `--http-batch` records over `--http-connections` connections; records/s
//!   from the first request until N rows are stored.
//!
//! Between phases the queues are purged and the tables emptied: push names its
//! messages by line, so a second run of the same file would otherwise find its
//! rows already stored.

use crate::Common;
use crate::bare_worker::{BareWorker, Shape};
use crate::cpu::CpuTimes;
use crate::env::{BenchEnv, Table, with_env};
use crate::ours::OurWorker;
use crate::raw_publish;
use crate::record;
use crate::report::{Phase, Ratio, Report, Role, memory::Peak};
use clap::{Args, FromArgMatches};
use kyc_cli::push::PushArgs;
use kyc_config::Settings;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct PipelineArgs {
    /// Records per phase.
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    /// Worker counts to measure, e.g. `1,2`.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub workers: Vec<usize>,
    /// Publishes awaiting their confirm at once (ceiling and push alike).
    #[arg(long, default_value_t = 1000)]
    pub window: usize,
    /// Records per batch message for push (`kycctl push --batch-size`).
    #[arg(long, default_value_t = kyc_cli::push::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Records per request to the HTTP batch endpoint (at most its limit, 1,000
    /// by default).
    #[arg(long, default_value_t = 1000)]
    pub http_batch: usize,
    /// Connections posting to the HTTP batch endpoint at once.
    #[arg(long, default_value_t = 4)]
    pub http_connections: usize,
    /// Rounds of the four phases, interleaved; each phase reports its median round.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Give up on a phase after this long.
    #[arg(long, default_value = "300s", value_parser = crate::parse_duration)]
    pub timeout: Duration,
    /// Only the phases of the bulk goal: the storage ceilings, push and the
    /// HTTP batch endpoint (not the bare pipeline and raw publishing, which
    /// send one record per message and take most of a run's time).
    #[arg(long)]
    pub bulk_only: bool,
    /// Batch messages uncompressed: push with `--no-compress`, the batch
    /// endpoint with `KYC__HTTP__COMPRESS_BATCHES=false` (to compare with the
    /// default, zstd).
    #[arg(long)]
    pub no_compress: bool,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(settings: &Settings, args: PipelineArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.records > 0, "--records must be at least 1");
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(
        !args.workers.is_empty() && args.workers.iter().all(|&w| w > 0),
        "--workers takes counts of at least 1, e.g. 1,2"
    );
    let mut settings = settings.clone();
    settings.http.compress_batches &= !args.no_compress;
    with_env(&settings, async |env: &BenchEnv| {
        let mut report = Report::new("pipeline", "records/s", args.common.json);
        let shape = Shape::of(&env.settings);
        report.param("records", args.records);
        report.param("window", args.window);
        report.param("push_batch_size", args.batch_size);
        report.param("batch_size", shape.batch_size);
        report.param("prefetch", shape.prefetch);
        report.param("rounds", args.rounds);
        if args.bulk_only {
            report.param("bulk_only", true);
        }
        report.param("compressed_batches", !args.no_compress);

        std::fs::create_dir_all(&env.dir)?;
        let file = env.dir.join("records.jsonl");
        let (path, n) = (file.clone(), args.records);
        tokio::task::spawn_blocking(move || record::write_jsonl(&path, n)).await??;
        let body = record::body();

        // What PostgreSQL takes of the same typed rows, measured in this run:
        // in every round, next to the phases compared with it (its rate moves
        // with the database's state — write-ahead log, checkpoints, cache — by
        // up to a factor of two between runs), reported by its median.
        let mut storage: [Vec<(Phase, bool)>; 2] = Default::default();
        let mut push_phases = Vec::new();

        for &workers in &args.workers {
            // Rounds interleave the three phases, so a slow spell of the machine
            // (or of the broker's log housekeeping) hits all of them alike; each
            // phase is reported by its median round.
            let mut rounds: [Vec<(Phase, bool)>; 4] = Default::default();
            // Push's and the batch endpoint's throughput over the UNNEST ceiling
            // measured just before them, round by round: a slow spell of the
            // machine that spans a round then touches both sides of its ratio.
            let mut paired: [Vec<f64>; 2] = Default::default();
            for round in 1..=args.rounds {
                if args.rounds > 1 {
                    eprintln!(
                        "bench pipeline: {workers} worker(s), round {round} of {} …",
                        args.rounds
                    );
                }
                let (unnest, copy) = crate::storage::ceilings(env, args.records).await?;
                storage[0].push((unnest, true));
                storage[1].push((copy, true));
                if !args.bulk_only {
                    rounds[0].push(ceiling(env, &args, shape, &body, workers).await?);
                    rounds[1].push(worker_only(env, &args, &body, workers).await?);
                }
                let unnest = storage[0].last().map_or(f64::NAN, |(p, _)| p.throughput);
                let pushed = push(env, &args, &file, workers).await?;
                let posted = http_batch(env, &args, &file, workers).await?;
                paired[0].push(pushed.0.throughput / unnest);
                paired[1].push(posted.0.throughput / unnest);
                rounds[2].push(pushed);
                rounds[3].push(posted);
            }
            let [ceiling, worker_only, phase, http] =
                rounds.map(|r| (!r.is_empty()).then(|| median(r)));
            let (Some(mut phase), Some(mut http)) = (phase, http) else {
                anyhow::bail!("every round measures push and the HTTP batch endpoint");
            };
            for (phase, ratios) in [(&mut phase, &paired[0]), (&mut http, &paired[1])] {
                let mut ratios = ratios.clone();
                ratios.sort_by(f64::total_cmp);
                // The lower middle of an even count (the conservative one),
                // rounded to two places as the report's ratios are.
                let median = (ratios[(ratios.len() - 1) / 2] * 100.0).round() / 100.0;
                phase.0.extra.insert("x_unnest_paired", median);
            }
            if let (Some(ceiling), Some(worker_only)) = (ceiling, worker_only) {
                report
                    .ratios
                    .push(Ratio::throughput(&worker_only.0, &ceiling.0));
                report.ratios.push(Ratio::throughput(&phase.0, &ceiling.0));
                report.push(ceiling.0, ceiling.1);
                report.push(worker_only.0, worker_only.1);
            }
            push_phases.push(phase.0.clone());
            push_phases.push(http.0.clone());
            report.push(phase.0, phase.1);
            report.push(http.0, http.1);
        }
        let [(unnest, _), (copy, _)] = storage.map(median);
        for phase in &push_phases {
            report.ratios.push(Ratio::throughput(phase, &unnest));
            report.ratios.push(Ratio::throughput(phase, &copy));
        }
        report.push(unnest, true);
        report.push(copy, true);
        report.notes.push(format!(
            "storage ceilings: the submissions table's typed rows (sealed numbers included, \
             values in memory) by UNNEST in batches of {} over two connections, and by COPY \
             over two; push sends batch messages (--batch-size default)",
            crate::storage::BATCH
        ));
        report.notes.push(
            "ceiling: raw publish → bare worker (UNNEST of id+jsonb, one event per row); \
             raw publish + worker: the same feed → our worker (validate, typed columns, sealed \
             PII, one event per record); push + worker: kycctl push (headers, message ids, \
             reply queue) → our worker (events grouped per kind and project, one batched reply per batch); \
             HTTP batch + worker: the same file as NDJSON requests to our intake's batch endpoint \
             (validated at the edge, queued as batch messages under one confirm) → our worker"
                .to_owned(),
        );
        Ok(report)
    })
    .await
}

/// The ceiling: W bare workers fed by raw confirmed publishing.
async fn ceiling(
    env: &BenchEnv,
    args: &PipelineArgs,
    shape: Shape,
    body: &[u8],
    workers: usize,
) -> anyhow::Result<(Phase, bool)> {
    eprintln!("bench pipeline: bare, {workers} worker(s) …");
    let peak = Peak::start();
    let bare: Vec<BareWorker> = (0..workers)
        .map(|_| {
            BareWorker::start(
                &env.amqp_url,
                &env.bare,
                env.store.pool().clone(),
                shape,
                &env.stop,
            )
        })
        .collect();
    let (started, published, done) = raw_feed(env, args, &env.bare, body, Table::Scratch, |_| {
        kyc_bus::persistent()
    })
    .await?;
    for worker in bare {
        worker.stop().await?;
    }
    let mut ceiling = Phase::new(
        format!("bare pipeline, {workers} worker(s)"),
        Role::Ceiling,
        args.records,
        done.duration_since(started).as_secs_f64(),
    );
    ceiling.peak_rss_mib = peak.read();
    let ceiling_own = peak.own;
    ceiling.extra.insert(
        "publish_per_s",
        args.records as f64 / published.as_secs_f64().max(1e-9),
    );
    env.truncate(Table::Scratch).await?;
    env.purge().await?;

    Ok((ceiling, ceiling_own))
}

/// Our worker alone, fed exactly like the bare one (raw confirmed publishing, no
/// replies asked for), plus the API key and a distinct message id that every
/// direct publisher sends.
async fn worker_only(
    env: &BenchEnv,
    args: &PipelineArgs,
    body: &[u8],
    workers: usize,
) -> anyhow::Result<(Phase, bool)> {
    eprintln!("bench pipeline: raw publish → {workers} of our worker(s) …");
    let peak = Peak::start();
    let ours: Vec<OurWorker> = (0..workers)
        .map(|_| OurWorker::start(env))
        .collect::<anyhow::Result<_>>()?;
    let key_headers = kyc_bus::headers::encode(&kyc_core::wire::SubmissionHeadersV2 {
        api_key: Some(env.api_key.as_str()),
        ..kyc_core::wire::SubmissionHeadersV2::default()
    });
    let (started, _, done) = raw_feed(env, args, &env.ours, body, Table::Submissions, |i| {
        kyc_bus::persistent()
            .with_headers(key_headers.clone())
            .with_message_id(format!("bench-{i}").into())
    })
    .await?;
    for worker in ours {
        worker.stop().await?;
    }
    let mut worker_only = Phase::new(
        format!("raw publish + {workers} worker(s)"),
        Role::Ours,
        args.records,
        done.duration_since(started).as_secs_f64(),
    );
    worker_only.peak_rss_mib = peak.read();
    let worker_only_own = peak.own;
    env.truncate(Table::Submissions).await?;
    env.purge().await?;

    Ok((worker_only, worker_only_own))
}

/// Publishes `args.records` copies of `body` raw to `topology` (window, confirms)
/// and waits until as many rows are in `table`: when publishing started, how long
/// it took, and when the last row was there.
async fn raw_feed(
    env: &BenchEnv,
    args: &PipelineArgs,
    topology: &kyc_bus::Topology,
    body: &[u8],
    table: Table,
    properties: impl Fn(u64) -> kyc_bus::lapin::BasicProperties,
) -> anyhow::Result<(Instant, Duration, Instant)> {
    let connection = kyc_bus::connect(&env.amqp_url, "bench-publisher").await?;
    let channels =
        kyc_bus::confirm_channels(&connection, env.settings.amqp.publish_channels).await?;
    let started = Instant::now();
    let published = raw_publish::publish_with(
        &channels,
        topology,
        body,
        args.records,
        args.window,
        properties,
    )
    .await?;
    let done = env.wait_rows(table, args.records, args.timeout).await?;
    kyc_bus::close(&connection, "bye").await;
    Ok((started, published, done))
}

/// Our workers consuming while the real `kycctl push` sends the file.
async fn push(
    env: &BenchEnv,
    args: &PipelineArgs,
    file: &Path,
    workers: usize,
) -> anyhow::Result<(Phase, bool)> {
    eprintln!("bench pipeline: push + {workers} of our worker(s) …");
    let peak = Peak::start();
    let ours: Vec<OurWorker> = (0..workers)
        .map(|_| OurWorker::start(env))
        .collect::<anyhow::Result<_>>()?;
    let results = env.dir.join(format!("results-{workers}.jsonl"));
    let mut push = push_args(file, &results, &env.api_key, args.window, args.batch_size)?;
    push.no_compress = args.no_compress;
    let cpu = CpuTimes::now();
    let started = Instant::now();
    let pushed = kyc_cli::push::run(&env.settings, push).await?;
    let done = env
        .wait_rows(Table::Submissions, args.records, args.timeout)
        .await?;
    let cpu_end = CpuTimes::now();
    for worker in ours {
        worker.stop().await?;
    }
    anyhow::ensure!(
        pushed.accepted == args.records,
        "push: {} of {} records accepted ({} rejected)",
        pushed.accepted,
        args.records,
        pushed.rejected
    );
    let mut phase = Phase::new(
        format!("push + {workers} worker(s)"),
        Role::Ours,
        args.records,
        done.duration_since(started).as_secs_f64(),
    );
    cpu.record_until(&cpu_end, &mut phase, args.records);
    phase.peak_rss_mib = peak.read();
    env.truncate(Table::Submissions).await?;
    env.purge().await?;

    Ok((phase, peak.own))
}

/// Our workers consuming while the file goes, `--http-batch` records per
/// request, to our intake's batch endpoint over `--http-connections` connections.
async fn http_batch(
    env: &BenchEnv,
    args: &PipelineArgs,
    file: &Path,
    workers: usize,
) -> anyhow::Result<(Phase, bool)> {
    use std::io::BufRead;
    eprintln!("bench pipeline: HTTP batch endpoint + {workers} of our worker(s) …");
    anyhow::ensure!(args.http_batch > 0, "--http-batch must be at least 1");
    let peak = Peak::start();
    let intake = crate::ours::OurIntake::start(env).await?;
    let ours: Vec<OurWorker> = (0..workers)
        .map(|_| OurWorker::start(env))
        .collect::<anyhow::Result<_>>()?;
    // Request bodies are read from the file as they are needed, a few ahead.
    let (bodies, next) = tokio::sync::mpsc::channel::<Vec<u8>>(args.http_connections * 2);
    let (path, per_request) = (file.to_owned(), args.http_batch);
    let reader = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut lines = std::io::BufReader::new(std::fs::File::open(path)?).lines();
        loop {
            let mut body = Vec::with_capacity(per_request * 600);
            for _ in 0..per_request {
                match lines.next() {
                    Some(line) => {
                        body.extend_from_slice(line?.as_bytes());
                        body.push(b'\n');
                    }
                    None => break,
                }
            }
            if body.is_empty() || bodies.blocking_send(body).is_err() {
                return Ok(());
            }
        }
    });
    let next = std::sync::Arc::new(tokio::sync::Mutex::new(next));
    let client = reqwest::Client::new();
    let url = format!("http://{}/v3/submission/migration/batch", intake.addr);
    let cpu = CpuTimes::now();
    let started = Instant::now();
    let senders: Vec<_> = (0..args.http_connections.max(1))
        .map(|_| {
            let (next, client, url, key) = (
                next.clone(),
                client.clone(),
                url.clone(),
                env.api_key.clone(),
            );
            tokio::spawn(async move {
                let mut queued = 0u64;
                loop {
                    let Some(body) = next.lock().await.recv().await else {
                        return anyhow::Ok(queued);
                    };
                    let response = client
                        .post(&url)
                        .header("x-api-key", &key)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await?;
                    let status = response.status();
                    let answer: serde_json::Value = response.json().await?;
                    anyhow::ensure!(status.is_success(), "batch endpoint: {status} {answer}");
                    let results = answer["results"].as_array().cloned().unwrap_or_default();
                    let refused: Vec<&serde_json::Value> = results
                        .iter()
                        .filter(|r| r.get("submissionId").is_none())
                        .collect();
                    anyhow::ensure!(refused.is_empty(), "refused records: {refused:?}");
                    queued += results.len() as u64;
                }
            })
        })
        .collect();
    let mut queued = 0;
    for sender in senders {
        queued += sender.await??;
    }
    reader.await??;
    anyhow::ensure!(
        queued == args.records,
        "the batch endpoint queued {queued} of {} records",
        args.records
    );
    let done = env
        .wait_rows(Table::Submissions, args.records, args.timeout)
        .await?;
    let cpu_end = CpuTimes::now();
    for worker in ours {
        worker.stop().await?;
    }
    intake.stop().await?;
    let mut phase = Phase::new(
        format!("HTTP batch endpoint + {workers} worker(s)"),
        Role::Ours,
        args.records,
        done.duration_since(started).as_secs_f64(),
    );
    phase.peak_rss_mib = peak.read();
    phase
        .extra
        .insert("records_per_request", args.http_batch as f64);
    cpu.record_until(&cpu_end, &mut phase, args.records);
    env.truncate(Table::Submissions).await?;
    env.purge().await?;

    Ok((phase, peak.own))
}

/// The round with the median throughput, noting the spread when there were several.
fn median(mut rounds: Vec<(Phase, bool)>) -> (Phase, bool) {
    rounds.sort_by(|a, b| a.0.throughput.total_cmp(&b.0.throughput));
    let (min, max) = (
        rounds[0].0.throughput,
        rounds[rounds.len() - 1].0.throughput,
    );
    let n = rounds.len();
    let (mut phase, own) = rounds.swap_remove(n / 2);
    if n > 1 {
        phase.extra.insert("rounds", n as f64);
        phase.extra.insert("min", min);
        phase.extra.insert("max", max);
    }
    (phase, own)
}

/// `kycctl push FILE --api-key … --results … --window … --batch-size …`, parsed by push's own
/// flag definitions so every other flag keeps its default.
pub(crate) fn push_args(
    file: &Path,
    results: &Path,
    api_key: &str,
    window: usize,
    batch_size: usize,
) -> anyhow::Result<PushArgs> {
    let command = PushArgs::augment_args(clap::Command::new("push"));
    let matches = command.try_get_matches_from([
        "push".to_owned(),
        file.display().to_string(),
        "--api-key".to_owned(),
        api_key.to_owned(),
        "--results".to_owned(),
        results.display().to_string(),
        "--window".to_owned(),
        window.to_string(),
        "--batch-size".to_owned(),
        batch_size.to_string(),
    ])?;
    Ok(PushArgs::from_arg_matches(&matches)?)
}
