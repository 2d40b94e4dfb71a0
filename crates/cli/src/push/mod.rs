//! `kycctl push FILE`: a bulk migration straight to RabbitMQ (`docs/api.md` §8).
//!
//! The file streams through a reader thread; records are published to
//! `P.submissions` in batch messages of `--batch-size` records (`batching`; with
//! `--batch-size 1`, one message each) with confirms kept in flight in a window,
//! each record with an idempotency key stable for (line number, line content) — so
//! a rerun, whatever its batch size, names the same submissions and stores nothing
//! twice — and its line number as correlation id, results coming back to this
//! run's private reply queue. Each result event that comes back becomes one line of the
//! results file. `--resume` skips lines that already have a result.
//!
//! A record's image columns (`images`) leave its body before it is published;
//! once its accepted result arrives they are uploaded through the intake, and
//! its result line, written then, says what became of each.

mod batching;
mod images;
mod input;
mod progress;
mod publishing;
mod results;

pub use images::ImageArgs;
pub use input::{Format, Record, RecordImages, message_id, read_from};
pub use results::{ImageResult, ResultLine};

use batching::{Gathering, MAX_BATCHED_RECORD, settle_batch};
use publishing::{CHUNK, Publishing, settle};

use anyhow::Context;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use kyc_bus::lapin::Consumer;
use kyc_bus::{ConfirmChannel, Topology, headers};
use kyc_config::Settings;
use kyc_core::wire::{ImageKind, ReplyMode, SubmissionHeadersV2};
use progress::Progress;
use secrecy::ExposeSecret;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

#[derive(Debug, Clone, clap::Args)]
pub struct PushArgs {
    /// A JSON Lines (one submission object per line) or CSV file (header row of
    /// field names).
    pub file: PathBuf,
    /// The project's API key. Prefer `KYC_API_KEY` or `--api-key-file`: a value
    /// given here shows in the process list (`ps`, /proc) to every local user.
    #[arg(long, env = "KYC_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// A file holding the project's API key (surrounding white space ignored).
    #[arg(long, conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
    /// Where to write one result per input line [default: FILE.results.jsonl].
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Skip lines that already have a result in the results file.
    #[arg(long)]
    pub resume: bool,
    /// Send each record in the encrypted `{"body": …}` form (`docs/api.md` §7).
    #[arg(long)]
    pub encrypt: bool,
    /// Input format [default: by extension; .csv is CSV, anything else JSON Lines].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Publishes awaiting their broker confirm at once (records; with batches,
    /// `window / batch-size` batch messages, at least 4).
    #[arg(long, default_value_t = 1000)]
    pub window: usize,
    /// Records per batch message (`docs/api.md` §8, "Batch messages"); 1 sends
    /// every record as a message of its own. Ids, results and `--resume` do not
    /// depend on it.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Send batch messages uncompressed (by default each batch's JSON is
    /// compressed with zstd before any encryption, `docs/api.md` §8).
    #[arg(long)]
    pub no_compress: bool,
    /// Give up when no result has arrived for this many seconds (are workers running?).
    #[arg(long, default_value_t = 120)]
    pub idle_timeout: u64,
    #[command(flatten)]
    pub images: ImageArgs,
}

impl PushArgs {
    /// The API key from `--api-key-file`, else `--api-key` / `KYC_API_KEY`.
    pub fn api_key(&self) -> anyhow::Result<String> {
        api_key(self)
    }
}

fn api_key(args: &PushArgs) -> anyhow::Result<String> {
    if let Some(path) = &args.api_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the API key from {}", path.display()))?;
        let key = text.trim();
        anyhow::ensure!(!key.is_empty(), "{} holds no API key", path.display());
        return Ok(key.to_owned());
    }
    args.api_key
        .clone()
        .filter(|k| !k.is_empty())
        .context("an API key is required: KYC_API_KEY, --api-key-file or --api-key")
}

/// Records per batch message by default: see `docs/benchmarks.md`
/// ("Batch messages") for the measurement behind it.
pub const DEFAULT_BATCH_SIZE: usize = 200;

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct PushReport {
    /// Records published by this run.
    pub records: u64,
    /// Records skipped because `--resume` found their result.
    pub skipped: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Images uploaded (or found stored by an earlier run) and images that failed.
    pub images_stored: u64,
    pub images_failed: u64,
    pub elapsed: Duration,
    pub results: PathBuf,
}

/// Runs a push; `Ok` only when every published record has its result.
pub async fn run(settings: &Settings, args: PushArgs) -> anyhow::Result<PushReport> {
    let started = Instant::now();
    let api_key = api_key(&args)?;
    anyhow::ensure!(args.window > 0, "--window must be at least 1");
    anyhow::ensure!(
        args.images.image_concurrency > 0,
        "--image-concurrency must be at least 1"
    );
    let uploader = match &args.images.intake_url {
        Some(url) => Some(images::Uploader::new(url, &api_key, &args.file)?),
        None => None,
    };
    anyhow::ensure!(
        (1..=kyc_core::wire::MAX_BATCH_RECORDS).contains(&args.batch_size),
        "--batch-size must be 1 to {}",
        kyc_core::wire::MAX_BATCH_RECORDS
    );
    let format = args.format.unwrap_or_else(|| Format::of(&args.file));
    let results_path = args
        .results
        .clone()
        .unwrap_or_else(|| default_results_path(&args.file));
    let done = if args.resume {
        results::done_lines(&results_path).context("reading the results file")?
    } else {
        HashMap::new()
    };
    let total = input::count(&args.file, format)
        .with_context(|| format!("reading {}", args.file.display()))?;

    let topology = Topology::new(settings.amqp.prefix.clone()).with_dead_letter_bounds(
        kyc_bus::DeadLetterBounds {
            max_length: settings.amqp.dead_letter_max_length,
            ttl_ms: settings.amqp.dead_letter_ttl_ms,
        },
    );
    let connection = kyc_bus::connect(settings.amqp.url.expose_secret(), "kycctl-push").await?;
    // Declared where this user may (an operator's); a migrating client's
    // publisher user may not, and checks passively that the topology exists.
    topology
        .ensure(&connection)
        .await
        .context("the broker topology (is the prefix right, and are workers deployed?)")?;
    // Several confirm channels, used in turn: the broker handles each channel in
    // one process, and one alone would cap the push below what the queue takes.
    let channels = ConfirmChannel::open_many(
        &connection,
        settings.amqp.publish_channels,
        settings.amqp.confirm_timeout(),
    )
    .await?;
    // Lost replies are recovered by `--resume`, which re-sends the line and gets
    // the stored verdict again.
    let (_reply_channel, reply_queue, consumer) = kyc_bus::private_queue(&connection).await?;
    let writer = results::Writer::open(&results_path, !args.resume)?;

    let skipping = done.values().filter(|p| p.complete).count() as u64;
    let progress = Progress::new(total, skipping);
    let (expected_tx, expected_rx) = watch::channel(None);
    let pending = PendingImages::default();
    // Records whose images wait for their result or their upload: a bound on
    // the image data held in memory.
    let image_slots = Arc::new(Semaphore::new(args.window));
    let collector = tokio::spawn(collect(
        consumer,
        writer,
        progress.clone(),
        expected_rx,
        Duration::from_secs(args.idle_timeout),
        uploader.map(|uploader| Uploads {
            uploader: Arc::new(uploader),
            pending: pending.clone(),
            slots: Arc::new(Semaphore::new(args.images.image_concurrency)),
        }),
    ));

    // The reader thread feeds a bounded channel: memory stays flat however large
    // the file is. Records travel in chunks: one hand-over between threads per
    // chunk, not per record.
    let (tx, mut rx) = mpsc::channel::<Vec<input::Record>>(2 * args.window / CHUNK + 1);
    let file = args.file.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = Vec::with_capacity(CHUNK);
        input::read(&file, format, |record| {
            chunk.push(record);
            chunk.len() < CHUNK
                || tx
                    .blocking_send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                    .is_ok()
        })?;
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
        Ok::<(), std::io::Error>(())
    });

    let publishing = Publishing {
        channels,
        exchange: topology.submissions_exchange().into(),
        headers: headers::encode(&SubmissionHeadersV2 {
            api_key: Some(api_key.as_str()),
            reply_mode: ReplyMode::Batch,
            ..SubmissionHeadersV2::default()
        }),
        api_key,
        encrypt: args.encrypt,
        compress: !args.no_compress,
        reply_queue,
    };
    let mut in_flight = FuturesUnordered::new();
    let mut batches_in_flight = FuturesUnordered::new();
    let batch_window = (args.window / args.batch_size).max(4);
    let mut gathering = Gathering::new(args.batch_size);
    let (mut published, mut skipped) = (0u64, 0u64);
    while let Some(chunk) = rx.recv().await {
        for mut record in chunk {
            let previous = done.get(&record.line);
            if previous.is_some_and(|p| p.complete) {
                skipped += 1;
                continue;
            }
            if let Some(images) = record.images.take() {
                anyhow::ensure!(
                    args.images.intake_url.is_some(),
                    "line {} has image columns: --intake-url (KYC_INTAKE_URL) is required to upload them",
                    record.line
                );
                // Slots free up only as results arrive, so while waiting for
                // one, send the batch being gathered and keep the publishes
                // moving.
                let slot = loop {
                    if let Ok(slot) = image_slots.clone().try_acquire_owned() {
                        break slot;
                    }
                    if let Some(batch) = gathering.take() {
                        batches_in_flight.push(publishing.publish_batch(batch, 0));
                    }
                    tokio::select! {
                        slot = image_slots.clone().acquire_owned() => {
                            break slot.expect("the semaphore is never closed");
                        }
                        settled = settle_batch(&publishing, &mut batches_in_flight),
                            if !batches_in_flight.is_empty() => settled?,
                        settled = settle(&publishing, &mut in_flight),
                            if !in_flight.is_empty() => settled?,
                    }
                };
                let stored = previous.map(|p| p.stored.clone()).unwrap_or_default();
                pending.insert(record.line, images, stored, slot);
            }
            published += 1;
            progress.published();
            if args.batch_size > 1 && record.body.len() <= MAX_BATCHED_RECORD {
                if let Some(batch) = gathering.push(record) {
                    while batches_in_flight.len() >= batch_window {
                        settle_batch(&publishing, &mut batches_in_flight).await?;
                    }
                    batches_in_flight.push(publishing.publish_batch(batch, 0));
                }
                continue;
            }
            while in_flight.len() >= args.window {
                settle(&publishing, &mut in_flight).await?;
            }
            in_flight.push(publishing.publish(record, 0));
        }
    }
    if let Some(batch) = gathering.take() {
        batches_in_flight.push(publishing.publish_batch(batch, 0));
    }
    while !in_flight.is_empty() {
        settle(&publishing, &mut in_flight).await?;
    }
    while !batches_in_flight.is_empty() {
        settle_batch(&publishing, &mut batches_in_flight).await?;
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the file reader panicked"))?
        .with_context(|| format!("reading {}", args.file.display()))?;
    expected_tx.send_replace(Some(published));
    tracing::info!(
        published,
        skipped,
        "every record published and confirmed; collecting results"
    );

    let counts = match collector.await? {
        Ok(counts) => counts,
        Err(e) => {
            progress.abandon();
            return Err(e);
        }
    };
    progress.finish();
    tracing::info!(
        accepted = counts.accepted,
        rejected = counts.rejected,
        "every result written"
    );
    kyc_bus::close(&connection, "done").await;
    Ok(PushReport {
        records: published,
        skipped,
        accepted: counts.accepted,
        rejected: counts.rejected,
        images_stored: counts.images_stored,
        images_failed: counts.images_failed,
        elapsed: started.elapsed(),
        results: results_path,
    })
}

/// `FILE.results.jsonl`.
pub fn default_results_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".results.jsonl");
    PathBuf::from(name)
}

#[derive(Debug, Default)]
struct Counts {
    accepted: u64,
    rejected: u64,
    images_stored: u64,
    images_failed: u64,
}

impl Counts {
    fn write(&mut self, writer: &mut results::Writer, result: &ResultLine) -> std::io::Result<()> {
        for image in result.images.values() {
            if image.is_stored() {
                self.images_stored += 1;
            } else {
                self.images_failed += 1;
            }
        }
        writer.write(result)
    }
}

/// Images of published records, by line, until their result arrives.
#[derive(Debug, Clone, Default)]
struct PendingImages(Arc<Mutex<HashMap<u64, Pending>>>);

#[derive(Debug)]
struct Pending {
    images: Box<RecordImages>,
    /// Kinds an earlier run stored.
    stored: BTreeSet<ImageKind>,
    _slot: OwnedSemaphorePermit,
}

impl PendingImages {
    fn insert(
        &self,
        line: u64,
        images: Box<RecordImages>,
        stored: BTreeSet<ImageKind>,
        slot: OwnedSemaphorePermit,
    ) {
        let pending = Pending {
            images,
            stored,
            _slot: slot,
        };
        self.0.lock().expect("never poisoned").insert(line, pending);
    }

    fn take(&self, line: u64) -> Option<Pending> {
        self.0.lock().expect("never poisoned").remove(&line)
    }
}

/// What the collector needs to upload images.
struct Uploads {
    uploader: Arc<images::Uploader>,
    pending: PendingImages,
    /// Uploads in flight at once (`--image-concurrency`).
    slots: Arc<Semaphore>,
}

/// Receives result events, writes one result line per input line (the first
/// result of a line wins; events are at-least-once), until every published
/// record has one.
async fn collect(
    mut consumer: Consumer,
    mut writer: results::Writer,
    progress: Progress,
    mut expected: watch::Receiver<Option<u64>>,
    idle: Duration,
    uploads: Option<Uploads>,
) -> anyhow::Result<Counts> {
    let mut seen: HashSet<u64> = HashSet::new();
    let mut counts = Counts::default();
    let mut publishing_done = false;
    let mut uploading = FuturesUnordered::new();
    loop {
        if let Some(n) = *expected.borrow()
            && seen.len() as u64 >= n
        {
            break;
        }
        tokio::select! {
            changed = expected.changed(), if !publishing_done => {
                publishing_done = changed.is_err() || expected.borrow().is_some();
            }
            Some(result) = uploading.next(), if !uploading.is_empty() => {
                counts.write(&mut writer, &result)?;
            }
            next = tokio::time::timeout(idle, consumer.next()) => {
                let delivery = match next {
                    Err(_) => {
                        writer.flush()?;
                        anyhow::bail!(
                            "no result for {}s ({} results so far): are workers running? Rerun with --resume to continue",
                            idle.as_secs(),
                            seen.len()
                        );
                    }
                    Ok(None) => anyhow::bail!("the reply queue was closed; rerun with --resume"),
                    Ok(Some(delivery)) => delivery?,
                };
                let results = kyc_core::wire::decode_reply(
                    delivery.properties.kind().as_ref().map(|k| k.as_str()),
                    delivery.properties.correlation_id().as_ref().map(|c| c.as_str()),
                    &delivery.data,
                );
                let Ok(results) = results else {
                    tracing::warn!("ignoring a reply that is not a result event");
                    continue;
                };
                for reply in results {
                    let Some(line) = reply.correlation_id.and_then(|c| c.parse::<u64>().ok()) else {
                        tracing::warn!("ignoring a result without a line number");
                        continue;
                    };
                    if seen.insert(line) {
                        let mut result = ResultLine::of(line, &reply.event);
                        if result.accepted() {
                            counts.accepted += 1;
                        } else {
                            counts.rejected += 1;
                        }
                        progress.result(result.accepted());
                        // A rejected record's images are not sent.
                        let pending = uploads.as_ref().and_then(|u| u.pending.take(line));
                        match (pending, &uploads) {
                            (Some(pending), Some(uploads)) if result.accepted() => {
                                let uploader = uploads.uploader.clone();
                                let slots = uploads.slots.clone();
                                uploading.push(async move {
                                    let _slot = slots.acquire_owned().await;
                                    result.images = uploader
                                        .upload(result.submission_id, &pending.images, &pending.stored)
                                        .await;
                                    result
                                });
                            }
                            _ => counts.write(&mut writer, &result)?,
                        }
                    }
                }
            }
        }
    }
    while let Some(result) = uploading.next().await {
        counts.write(&mut writer, &result)?;
    }
    writer.flush()?;
    Ok(counts)
}
