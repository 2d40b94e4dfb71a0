//! The `[images]` section: where submission images are kept (`docs/api.md`,
//! "Images") and how large they may be.

use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;

/// Which object store holds the (sealed) images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageBackend {
    /// A directory of the local file system ([`Images::local_dir`]): the
    /// default, so that a development machine needs nothing else.
    #[default]
    Local,
    /// An S3-compatible object store ([`Images::s3_endpoint`] and so on).
    S3,
}

/// The image store and the image limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Images {
    /// `KYC__IMAGES__BACKEND`: `local` (default) or `s3`.
    pub backend: ImageBackend,
    /// `KYC__IMAGES__LOCAL_DIR`: the directory of the `local` backend, created
    /// if missing (default `kyc-images`, relative to the working directory).
    pub local_dir: PathBuf,
    /// `KYC__IMAGES__S3_ENDPOINT`: the S3 endpoint URL; empty for AWS itself.
    pub s3_endpoint: String,
    /// `KYC__IMAGES__S3_BUCKET`: the bucket (must exist).
    pub s3_bucket: String,
    /// `KYC__IMAGES__S3_REGION` (default `us-east-1`).
    pub s3_region: String,
    /// `KYC__IMAGES__S3_ACCESS_KEY_ID`.
    pub s3_access_key_id: Option<SecretString>,
    /// `KYC__IMAGES__S3_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key: Option<SecretString>,
    /// `KYC__IMAGES__S3_ALLOW_HTTP`: accept a plain `http://` endpoint (tests,
    /// a store on the same host). Off: HTTPS only.
    pub s3_allow_http: bool,
    /// `KYC__IMAGES__MAX_IMAGE_BYTES`: one image, decoded (default 5 MiB).
    pub max_image_bytes: usize,
    /// `KYC__IMAGES__MAX_REQUEST_BYTES`: one `PUT /v3/submission/image`
    /// request body (default 24 MiB).
    pub max_request_bytes: usize,
}

impl Default for Images {
    fn default() -> Self {
        Images {
            backend: ImageBackend::Local,
            local_dir: PathBuf::from("kyc-images"),
            s3_endpoint: String::new(),
            s3_bucket: String::new(),
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: false,
            max_image_bytes: 5 * 1024 * 1024,
            max_request_bytes: 24 * 1024 * 1024,
        }
    }
}

impl Images {
    /// Whether the values make sense together; says which rule does not hold.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.max_image_bytes == 0 || self.max_request_bytes < self.max_image_bytes {
            return Err(
                "images.max_image_bytes must be at least 1 and images.max_request_bytes at least that",
            );
        }
        if self.backend == ImageBackend::S3 && self.s3_bucket.is_empty() {
            return Err("images.s3_bucket must be set for the s3 backend");
        }
        if self.backend == ImageBackend::S3
            && self.s3_endpoint.starts_with("http://")
            && !self.s3_allow_http
        {
            return Err("images.s3_endpoint is plain http: set images.s3_allow_http to accept it");
        }
        Ok(())
    }
}
