//! Uploading a record's images once the record is accepted (`docs/api.md` §16,
//! "Order"): one `PUT /v3/submission/image` per record, through the intake like
//! any client's upload, so the images take the same claim-check path (sealed,
//! written to the image store, a reference queued) and the same checks.
//!
//! An image column holds `@relative/path.jpg` (relative to the input file's
//! folder; absolute paths and `..` are refused) or the Base64 text of the image.
//! The intake answers 200 for an image it already holds with the same digest,
//! so pushing a file twice stores each image once.

use super::input::RecordImages;
use super::results::ImageResult;
use backon::{ExponentialBuilder, Retryable};
use kyc_core::wire::ImageKind;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

/// The image options of `kycctl push`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImageArgs {
    /// The intake's base URL (`http://host:8080`), for the image columns
    /// (`idImage`, `idBackImage`, `selfieImage`, `addressImage`). Required only
    /// when the file has them.
    #[arg(long, env = "KYC_INTAKE_URL")]
    pub intake_url: Option<String>,
    /// Image uploads in flight at once.
    #[arg(long, default_value_t = DEFAULT_IMAGE_CONCURRENCY)]
    pub image_concurrency: usize,
}

/// Image uploads in flight by default.
pub const DEFAULT_IMAGE_CONCURRENCY: usize = 8;

impl Default for ImageArgs {
    /// No intake URL; the default concurrency.
    fn default() -> ImageArgs {
        ImageArgs {
            intake_url: None,
            image_concurrency: DEFAULT_IMAGE_CONCURRENCY,
        }
    }
}

/// A file larger than this is not read: the intake's own limit per image is
/// 5 MiB by default, and it answers `payload_too_large` for anything over it.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Sends records' images to the intake.
#[derive(Debug)]
pub struct Uploader {
    http: reqwest::Client,
    url: String,
    api_key: String,
    base_dir: PathBuf,
}

/// One image of a call, ready to send.
struct Loaded {
    kind: ImageKind,
    part: Part,
}

enum Part {
    /// Base64 text, sent as the ARGOS form sends it.
    Text(String),
    /// The bytes of a file, sent as a file part.
    File(Vec<u8>),
}

/// The intake's answer to one call.
enum Answer {
    Stored,
    /// An answer that will not change on a retry.
    Refused {
        code: String,
        message: String,
    },
}

/// An answer worth retrying: busy, unavailable, not reachable, or the
/// submission not visible yet.
#[derive(Debug)]
struct Transient(String, String);

impl Uploader {
    /// An uploader for the intake at `intake_url`, resolving `@paths` against
    /// the folder of `input`.
    pub fn new(intake_url: &str, api_key: &str, input: &Path) -> anyhow::Result<Uploader> {
        let base = intake_url.trim_end_matches('/');
        anyhow::ensure!(
            base.starts_with("http://") || base.starts_with("https://"),
            "--intake-url must be an http:// or https:// URL"
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Uploader {
            http,
            url: format!("{base}/v3/submission/image"),
            api_key: api_key.to_owned(),
            base_dir: input
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        })
    }

    /// Uploads the images of an accepted record, except the kinds in `skip`
    /// (stored by an earlier run), and says what became of each.
    pub async fn upload(
        &self,
        submission_id: Uuid,
        images: &RecordImages,
        skip: &BTreeSet<ImageKind>,
    ) -> BTreeMap<ImageKind, ImageResult> {
        let mut results = BTreeMap::new();
        let mut loaded = Vec::new();
        for (kind, value) in &images.images {
            if skip.contains(kind) {
                results.insert(*kind, ImageResult::stored());
                continue;
            }
            match self.load(value).await {
                Ok(part) => loaded.push(Loaded { kind: *kind, part }),
                Err(failed) => {
                    results.insert(*kind, failed);
                }
            }
        }
        if loaded.is_empty() {
            return results;
        }
        match self.send(submission_id, images, &loaded).await {
            Answer::Stored => {
                for image in &loaded {
                    results.insert(image.kind, ImageResult::stored());
                }
            }
            // One call answers one code: with several images, each is sent
            // alone so that the refusal is told for the image it concerns.
            Answer::Refused { code, message } if loaded.len() == 1 => {
                results.insert(loaded[0].kind, ImageResult::failed(code, message));
            }
            Answer::Refused { .. } => {
                for image in loaded {
                    let kind = image.kind;
                    let result = match self.send(submission_id, images, &[image]).await {
                        Answer::Stored => ImageResult::stored(),
                        Answer::Refused { code, message } => ImageResult::failed(code, message),
                    };
                    results.insert(kind, result);
                }
            }
        }
        results
    }

    async fn load(&self, value: &str) -> Result<Part, ImageResult> {
        let Some(path) = value.strip_prefix('@') else {
            return Ok(Part::Text(value.to_owned()));
        };
        let relative = Path::new(path);
        let inside = !path.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(ImageResult::failed(
                "invalid_image_path",
                format!("{path}: a path relative to the input file's folder, without `..`"),
            ));
        }
        let full = self.base_dir.join(relative);
        let read = async {
            let metadata = tokio::fs::metadata(&full).await?;
            if metadata.len() > MAX_FILE_BYTES {
                return Err(std::io::Error::other(format!(
                    "larger than {} MiB",
                    MAX_FILE_BYTES >> 20
                )));
            }
            tokio::fs::read(&full).await
        };
        read.await
            .map(Part::File)
            .map_err(|e| ImageResult::failed("unreadable_image", format!("{path}: {e}")))
    }

    /// One call with retries of what may pass later.
    async fn send(&self, submission_id: Uuid, images: &RecordImages, loaded: &[Loaded]) -> Answer {
        let boundary = format!("kycctl-{}", Uuid::new_v4().simple());
        let body = multipart(&boundary, submission_id, images, loaded);
        let attempt = || async {
            let response = self
                .http
                .put(&self.url)
                .header("x-api-key", &self.api_key)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body.clone())
                .send()
                .await
                .map_err(|e| Transient("unavailable".into(), e.without_url().to_string()))?;
            let status = response.status();
            if status.is_success() {
                return Ok(Answer::Stored);
            }
            let error: serde_json::Value = response.json().await.unwrap_or_default();
            let code = error["errorCode"]
                .as_str()
                .unwrap_or("unavailable")
                .to_owned();
            let message = error["message"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}"), str::to_owned);
            let transient = status.as_u16() == 429
                || status.is_server_error()
                || status.as_u16() == 408
                // The record's result came first, so its row is there; a
                // replica or a cache may lag for a moment.
                || code == "invalid_submission";
            if transient {
                Err(Transient(code, message))
            } else {
                Ok(Answer::Refused { code, message })
            }
        };
        let retried = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(10))
                    .with_max_times(8)
                    .with_jitter(),
            )
            .await;
        retried.unwrap_or_else(|Transient(code, message)| Answer::Refused { code, message })
    }
}

fn multipart(
    boundary: &str,
    submission_id: Uuid,
    images: &RecordImages,
    loaded: &[Loaded],
) -> bytes::Bytes {
    let size = loaded
        .iter()
        .map(|l| match &l.part {
            Part::Text(t) => t.len(),
            Part::File(b) => b.len(),
        })
        .sum::<usize>();
    let mut body = Vec::with_capacity(size + 1024);
    let text = |body: &mut Vec<u8>, name: &str, value: &[u8]| {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    };
    text(
        &mut body,
        "submissionId",
        submission_id.to_string().as_bytes(),
    );
    if let Some(admin) = &images.admin {
        text(&mut body, "admin", admin.as_bytes());
    }
    if let Some(id_type) = &images.id_type {
        text(&mut body, "idType", id_type.as_bytes());
    }
    for image in loaded {
        let name = image.kind.as_str();
        match &image.part {
            Part::Text(t) => text(&mut body, name, t.as_bytes()),
            Part::File(bytes) => {
                body.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body.into()
}
