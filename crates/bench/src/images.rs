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
//! - then a worker starts and records the queued references: its rate is
//!   reported as a phase of its own (no ceiling).
//!
//! The submissions the images belong to are stored first (not timed).

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
        args.images > 0 && args.kb > 0 && args.concurrency > 0,
        "--images, --kb and --concurrency must be at least 1"
    );
    with_env(settings, async |env: &BenchEnv| {
        let mut report = Report::new("images", "images/s", args.common.json);
        report.param("images", args.images);
        report.param("kb", args.kb);
        report.param("concurrency", args.concurrency);
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
        let mb = (n * args.kb) as f64 / 1024.0;

        eprintln!("bench images: storing {n} submissions …");
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
        let ids: Vec<Uuid> = futures_util::stream::iter(0..n)
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
        env.wait_rows(Table::Submissions, n as u64, Duration::from_secs(300))
            .await?;
        // The intake is measured alone; the worker comes back afterwards.
        worker.shutdown().await?;
        // A few distinct images, used in turn: an image is stored once per
        // submission and kind, so repeats across submissions are all stored,
        // and the bench's own memory stays small beside the intake's.
        let pool: Vec<Vec<u8>> = (0..POOL).map(|i| jpeg(i, args.kb)).collect();
        let images = || pool.iter().cycle().take(n);

        eprintln!("bench images: raw writes to the image store …");
        let peak = Peak::start();
        let started = Instant::now();
        let failures = futures_util::stream::iter(images())
            .map(|image| {
                let store = &store;
                // As sealed: the same size, nonce and tag aside.
                let bytes = image.clone();
                async move { store.put(&kyc_images::new_object_key(), bytes).await }
            })
            .buffer_unordered(args.concurrency)
            .filter(|r| std::future::ready(r.is_err()))
            .count()
            .await;
        let took = started.elapsed();
        anyhow::ensure!(failures == 0, "{failures} raw writes failed");
        let mut bare = Phase::new(
            format!("raw object writes, {} in flight", args.concurrency),
            Role::Ceiling,
            n as u64,
            took.as_secs_f64(),
        );
        bare.extra.insert("MB/s", mb / took.as_secs_f64());
        bare.peak_rss_mib = peak.read();
        report.push(bare, peak.own);

        eprintln!("bench images: uploads through the intake …");
        let boundary = "kyc-bench-images-boundary";
        let peak = Peak::start();
        let started = Instant::now();
        let refused = futures_util::stream::iter(ids.iter().zip(images()))
            .map(|(id, image)| {
                let request = client
                    .put(format!("{base}/v3/submission/image"))
                    .header("x-api-key", &env.api_key)
                    .header(
                        "content-type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(multipart(boundary, *id, image));
                async move { request.send().await.map(|r| r.status().as_u16()) }
            })
            .buffer_unordered(args.concurrency)
            .filter(|r| std::future::ready(!matches!(r, Ok(200))))
            .count()
            .await;
        let took = started.elapsed();
        anyhow::ensure!(refused == 0, "{refused} uploads were not answered 200");
        let mut ours = Phase::new(
            format!("PUT /v3/submission/image, {} in flight", args.concurrency),
            Role::Ours,
            n as u64,
            took.as_secs_f64(),
        );
        ours.extra.insert("MB/s", mb / took.as_secs_f64());
        ours.peak_rss_mib = peak.read();
        report.push(ours, peak.own);
        intake.shutdown().await?;

        eprintln!("bench images: the worker records the references …");
        let peak = Peak::start();
        let started = Instant::now();
        let worker = kyc_testkit::run::start_worker(&settings, env.stop.child_token())?;
        let recorded = env
            .wait_rows(Table::Images, n as u64, Duration::from_secs(600))
            .await?;
        let mut recording = Phase::new(
            "worker: references recorded, events published",
            Role::Ours,
            n as u64,
            recorded.duration_since(started).as_secs_f64(),
        );
        recording.peak_rss_mib = peak.read();
        report.push(recording, peak.own);
        worker.shutdown().await?;

        let phases = &report.phases;
        report.ratios = vec![Ratio::throughput(&phases[1], &phases[0])];
        Ok(report)
    })
    .await
}
