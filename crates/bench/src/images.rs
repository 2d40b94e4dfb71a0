//! `kyc-bench images`: image uploads per second (and MB/s) through
//! `PUT /v3/submission/image`, against the image store's raw write ceiling.
//!
//! - ceiling: the same number of objects of the same size written straight to
//!   the image store (`kyc_images::ImageStore::put`, the configured backend; a
//!   local folder of this run by default, each write flushed to disk as the
//!   intake's are) with the same number in flight: nothing parsed, sealed,
//!   looked up or published;
//! - ours: the intake (in this process, no worker running, as in `bench
//!   intake`) taking one image per request as a multipart file part over
//!   keep-alive connections: the request parsed, the submission looked up, the
//!   image sniffed, digested and sealed, the object written, its reference
//!   published with a confirm, then 200;
//! - a reference, [`BareUpload`]: the same requests to an HTTP server that
//!   only writes each body to the same store — what receiving an upload over a
//!   socket costs before any of our work;
//! - then a worker starts and records the queued references: its rate is
//!   reported as a phase of its own (no ceiling).
//!
//! The submissions the images belong to are stored first (not timed). With
//! `--rounds`, the three upload phases run that many times, each going first
//! in turn, each round to submissions of its own; every phase starts after a
//! `sync`, so none pays for the write-back of another's dirty pages.

use crate::Common;
use crate::env::{BenchEnv, Table, with_env};
use crate::record;
use crate::report::{Phase, Ratio, Report, Role, memory::Peak};
use futures_util::StreamExt;
use kyc_config::Settings;
use kyc_config::settings::ImageBackend;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Distinct images the phases send in turn.
const POOL: usize = 16;

#[derive(Debug, Clone, clap::Args)]
pub struct ImagesArgs {
    /// Images per phase (one per submission).
    #[arg(long, default_value_t = 2_000)]
    pub images: usize,
    /// Size of each image in KB.
    #[arg(long, default_value_t = 200)]
    pub kb: usize,
    /// Uploads (and raw writes) in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Rounds of the three phases (raw writes, bare uploads, ours), each going
    /// first in turn; each round uploads to submissions of its own.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    #[command(flatten)]
    pub common: Common,
}

/// A JPEG by its signature, `kb` KB of noise after it, different for each `i`.
fn jpeg(i: usize, kb: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(kb * 1024 + 8);
    bytes.extend_from_slice(b"\xFF\xD8\xFF\xE0\0\x10JFIF\0");
    // xorshift: cheap, and no two images alike (so no digest repeats).
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    while bytes.len() < kb * 1024 - 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(kb * 1024 - 2);
    bytes.extend_from_slice(b"\xFF\xD9");
    bytes
}

fn multipart(boundary: &str, id: Uuid, image: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(image.len() + 512);
    for (name, value) in [
        ("submissionId", id.to_string()),
        ("admin", record::ADMIN.to_owned()),
        ("idType", "passport".to_owned()),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"idImage\"; filename=\"front.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(image);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

pub async fn run(settings: &Settings, args: ImagesArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.images > 0 && args.kb > 0 && args.concurrency > 0 && args.rounds > 0,
        "--images, --kb, --concurrency and --rounds must be at least 1"
    );
    with_env(settings, async |env: &BenchEnv| {
        let mut report = Report::new("images", "images/s", args.common.json);
        report.param("images", args.images);
        report.param("kb", args.kb);
        report.param("concurrency", args.concurrency);
        report.param("rounds", args.rounds);
        let settings = env.settings.clone();
        report.param(
            "backend",
            match settings.images.backend {
                ImageBackend::Local => "local folder",
                ImageBackend::S3 => "s3",
            },
        );
        let store = kyc_images::ImageStore::from_settings(&settings.images)?;
        let n = args.images;
        let total = n * args.rounds;

        eprintln!("bench images: storing {total} submissions …");
        let intake =
            kyc_testkit::run::start_intake(&settings, env.stop.child_token(), true).await?;
        let worker = kyc_testkit::run::start_worker(&settings, env.stop.child_token())?;
        let base = format!(
            "http://{}",
            intake
                .addr
                .ok_or_else(|| anyhow::anyhow!("the intake has no address"))?
        );
        let client = reqwest::Client::new();
        let ids: Vec<Uuid> = futures_util::stream::iter(0..total)
            .map(|i| {
                let request = client
                    .post(format!("{base}/v3/submission/migration"))
                    .header("x-api-key", &env.api_key)
                    .json(&record::full(&format!("image-user-{i}")));
                async move {
                    let reply: serde_json::Value = request.send().await?.json().await?;
                    reply["submissionId"]
                        .as_str()
                        .and_then(|s| Uuid::parse_str(s).ok())
                        .ok_or_else(|| anyhow::anyhow!("no submission id in {reply}"))
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<anyhow::Result<Uuid>>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        env.wait_rows(Table::Submissions, total as u64, Duration::from_secs(300))
            .await?;
        // The intake is measured alone; the worker comes back afterwards.
        worker.shutdown().await?;
        // A few distinct images, used in turn: an image is stored once per
        // submission and kind, so repeats across submissions are all stored,
        // and the bench's own memory stays small beside the intake's.
        let pool: Vec<Vec<u8>> = (0..POOL).map(|i| jpeg(i, args.kb)).collect();
        let bare = BareUpload::start(store.clone()).await?;
        let uploads = Uploads {
            client: &client,
            pool: &pool,
            concurrency: args.concurrency,
            per_phase: n,
            mb: (n * args.kb) as f64 / 1024.0,
        };

        for (round, ids) in ids.chunks(n).enumerate() {
            let suffix = if args.rounds > 1 {
                format!(" #{}", round + 1)
            } else {
                String::new()
            };
            // Each phase starts once the previous one's writes are on disk,
            // and each goes first in turn: a phase that finds the page cache
            // full of dirty pages pays for their write-back.
            let mut phases = Vec::with_capacity(3);
            for step in 0..3 {
                sync().await?;
                phases.push(match (round + step) % 3 {
                    0 => uploads.raw(&store, &suffix).await?,
                    1 => {
                        let name = format!(
                            "bare upload: body received, written, {} in flight{suffix}",
                            args.concurrency
                        );
                        uploads
                            .upload(name, Role::Reference, &bare.url, None, ids)
                            .await?
                    }
                    _ => {
                        let name = format!(
                            "PUT /v3/submission/image, {} in flight{suffix}",
                            args.concurrency
                        );
                        let url = format!("{base}/v3/submission/image");
                        let key = Some(env.api_key.as_str());
                        uploads.upload(name, Role::Ours, &url, key, ids).await?
                    }
                });
            }
            // Reported ceiling, reference, ours, whatever the order they ran in.
            phases.sort_by_key(|(phase, _)| match phase.role {
                Role::Ceiling => 0,
                Role::Reference => 1,
                Role::Ours => 2,
            });
            for (phase, own) in phases {
                report.push(phase, own);
            }
        }
        bare.stop();
        intake.shutdown().await?;

        let mut ratios = Vec::new();
        for round in report.phases.chunks(3) {
            let [raw, bare, ours] = round else { continue };
            ratios.push(Ratio::throughput(ours, raw));
            ratios.push(Ratio::throughput(bare, raw));
            ratios.push(Ratio::throughput(ours, bare));
        }
        // Over all rounds: every upload against every raw write (and the
        // bare uploads against both), the figures to quote for several rounds.
        if args.rounds > 1 {
            let all = |role, name| Phase::all_rounds(&report.phases, role, name);
            let raw = all(Role::Ceiling, "raw object writes");
            let bare = all(Role::Reference, "bare upload");
            let ours = all(Role::Ours, "PUT /v3/submission/image");
            ratios.push(Ratio::throughput(&ours, &raw));
            ratios.push(Ratio::throughput(&bare, &raw));
            ratios.push(Ratio::throughput(&ours, &bare));
        }

        eprintln!("bench images: the worker records the references …");
        let peak = Peak::start();
        let started = Instant::now();
        let worker = kyc_testkit::run::start_worker(&settings, env.stop.child_token())?;
        let recorded = env
            .wait_rows(Table::Images, total as u64, Duration::from_secs(600))
            .await?;
        let mut recording = Phase::new(
            "worker: references recorded, events published",
            Role::Ours,
            total as u64,
            recorded.duration_since(started).as_secs_f64(),
        );
        recording.peak_rss_mib = peak.read();
        report.push(recording, peak.own);
        worker.shutdown().await?;
        report.ratios = ratios;
        Ok(report)
    })
    .await
}

/// Flushes every dirty page of the machine to disk (`sync`).
async fn sync() -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sync").status().await?;
    anyhow::ensure!(status.success(), "sync failed: {status}");
    Ok(())
}

/// What the three phases of a round share.
struct Uploads<'a> {
    client: &'a reqwest::Client,
    /// The images, sent in turn.
    pool: &'a [Vec<u8>],
    concurrency: usize,
    /// Images per phase.
    per_phase: usize,
    /// Megabytes of images per phase.
    mb: f64,
}

impl Uploads<'_> {
    fn images(&self, n: usize) -> impl Iterator<Item = &Vec<u8>> {
        self.pool.iter().cycle().take(n)
    }

    /// CEILING: the images written straight to the store.
    async fn raw(
        &self,
        store: &kyc_images::ImageStore,
        suffix: &str,
    ) -> anyhow::Result<(Phase, bool)> {
        let name = format!("raw object writes, {} in flight{suffix}", self.concurrency);
        eprintln!("bench images: {name} …");
        let n = self.per_phase;
        let peak = Peak::start();
        let started = Instant::now();
        let failures = futures_util::stream::iter(self.images(n))
            .map(|image| {
                // As sealed: the same size, nonce and tag aside.
                let bytes = image.clone();
                async move { store.put(&kyc_images::new_object_key(), bytes).await }
            })
            .buffer_unordered(self.concurrency)
            .filter(|r| std::future::ready(r.is_err()))
            .count()
            .await;
        let took = started.elapsed();
        anyhow::ensure!(failures == 0, "{failures} raw writes failed");
        let mut phase = Phase::new(name, Role::Ceiling, n as u64, took.as_secs_f64());
        phase.extra.insert("MB/s", self.mb / took.as_secs_f64());
        phase.peak_rss_mib = peak.read();
        Ok((phase, peak.own))
    }

    /// One image per submission of `ids`, PUT as a multipart file part to
    /// `url` (with `api_key` when given); every one must be answered 200.
    async fn upload(
        &self,
        name: String,
        role: Role,
        url: &str,
        api_key: Option<&str>,
        ids: &[Uuid],
    ) -> anyhow::Result<(Phase, bool)> {
        eprintln!("bench images: {name} …");
        let boundary = "kyc-bench-images-boundary";
        let peak = Peak::start();
        let started = Instant::now();
        let refused = futures_util::stream::iter(ids.iter().zip(self.images(ids.len())))
            .map(|(id, image)| {
                let mut request = self
                    .client
                    .put(url)
                    .header(
                        "content-type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(multipart(boundary, *id, image));
                if let Some(key) = api_key {
                    request = request.header("x-api-key", key);
                }
                async move { request.send().await.map(|r| r.status().as_u16()) }
            })
            .buffer_unordered(self.concurrency)
            .filter(|r| std::future::ready(!matches!(r, Ok(200))))
            .count()
            .await;
        let took = started.elapsed();
        anyhow::ensure!(
            refused == 0,
            "{refused} uploads to {url} were not answered 200"
        );
        let mut phase = Phase::new(name, role, ids.len() as u64, took.as_secs_f64());
        phase.extra.insert("MB/s", self.mb / took.as_secs_f64());
        phase.peak_rss_mib = peak.read();
        Ok((phase, peak.own))
    }
}

/// REFERENCE: the least any upload endpoint does. An HTTP server on loopback
/// that collects each request's body and writes it, as it came, as one object
/// to the same image store, then answers 200: nothing parsed, authenticated,
/// looked up, digested, sealed or published.
struct BareUpload {
    url: String,
    stop: tokio_util::sync::CancellationToken,
}

impl BareUpload {
    async fn start(store: kyc_images::ImageStore) -> anyhow::Result<BareUpload> {
        async fn put(
            axum::extract::State(store): axum::extract::State<kyc_images::ImageStore>,
            body: bytes::Bytes,
        ) -> axum::http::StatusCode {
            match store.put(&kyc_images::new_object_key(), body.into()).await {
                Ok(()) => axum::http::StatusCode::OK,
                Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
        let app = axum::Router::new()
            .route("/", axum::routing::put(put))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(store);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/", listener.local_addr()?);
        let stop = tokio_util::sync::CancellationToken::new();
        let until = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(until)
                .await
        });
        Ok(BareUpload { url, stop })
    }

    fn stop(&self) {
        self.stop.cancel();
    }
}
