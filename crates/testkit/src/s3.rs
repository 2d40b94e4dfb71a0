//! A real S3-protocol server on loopback for the tests of the S3 image store:
//! `s3s-fs` (the `s3s` project's file-system backed S3 server), started as a
//! process of its own on a free port with a data folder and a bucket of its
//! own, and killed when the [`S3Server`] is dropped. Not a mock: requests are
//! signed (SigV4) and checked, objects land as files under the data folder.
//!
//! `scripts/test` and `.ci/run` install it
//! (`cargo install s3s-fs --version 0.14.1 --features binary --locked`).

use kyc_config::settings::{ImageBackend, Images};
use secrecy::SecretString;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The credentials the server is started with.
pub const ACCESS_KEY: &str = "kyc-test-access";
const SECRET_KEY: &str = "kyc-test-secret-key-0123456789";

/// A running `s3s-fs`.
#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket made for this server.
    pub bucket: String,
    /// The data folder: each bucket is a folder in it, each object a file.
    pub root: PathBuf,
    child: Child,
}

impl S3Server {
    /// Starts a server with a fresh data folder under `dir` and one bucket,
    /// `bucket`; waits until it accepts connections. Panics, saying how to
    /// install it, if `s3s-fs` is not on the path.
    pub fn start(dir: &Path, bucket: &str) -> S3Server {
        let root = dir.join("s3-data");
        std::fs::create_dir_all(root.join(bucket)).expect("creating the S3 data folder");
        // A free port: bound by the OS, released, then given to the server (a
        // race with another process is possible but caught by the wait below).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start s3s-fs ({e}): install it with \
                     `cargo install s3s-fs --version 0.14.1 --features binary --locked` \
                     (scripts/test does)"
                )
            });
        let mut server = S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_owned(),
            root,
            child,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("s3s-fs exited at start with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {addr} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `images` pointed at this server's bucket (plain HTTP allowed: loopback).
    pub fn image_settings(&self, images: &Images) -> Images {
        Images {
            backend: ImageBackend::S3,
            s3_endpoint: self.endpoint.clone(),
            s3_bucket: self.bucket.clone(),
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: Some(SecretString::from(ACCESS_KEY.to_owned())),
            s3_secret_access_key: Some(SecretString::from(SECRET_KEY.to_owned())),
            s3_allow_http: true,
            ..images.clone()
        }
    }

    /// The same settings as environment variables, for a `kycctl` process.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KYC__IMAGES__BACKEND", "s3".to_owned()),
            ("KYC__IMAGES__S3_ENDPOINT", self.endpoint.clone()),
            ("KYC__IMAGES__S3_BUCKET", self.bucket.clone()),
            ("KYC__IMAGES__S3_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("KYC__IMAGES__S3_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("KYC__IMAGES__S3_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// The bucket's folder, where its objects lie as files.
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.join(&self.bucket)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
