//! # kyc-images — submission images at rest
//!
//! The claim check of `PUT /v3/submission/image` (`docs/api.md`, "Images";
//! `docs/architecture.md`, "Images"): the intake seals an image and writes it to
//! an object store, the broker carries only a reference, the worker records the
//! reference in PostgreSQL. This crate is what intake, worker and `kycctl` share
//! for that:
//!
//! - [`ImageStore`]: the object store, built from the `[images]` settings — a
//!   local directory (the default) or any S3-compatible store — through the
//!   `object_store` crate;
//! - [`ImageKeys`]: sealing and opening an image under the data key
//!   (AES-256-GCM, the object key, submission id and image kind bound as
//!   associated data) and its keyed digest;
//! - [`sniff`]: JPEG or PNG, by the bytes;
//! - [`new_object_key`]: random object keys that carry no personal data.
#![warn(missing_docs)]

mod keys;
mod store;

pub use keys::{BadImageKey, ImageKeys};
pub use store::{ImageStore, ImageStoreError, StoredObject};

/// The folder every image object lies under.
pub const OBJECT_PREFIX: &str = "images";

/// A fresh object key, `images/<uuid v4>`: random, so that it says nothing
/// about the person, the submission or the project.
pub fn new_object_key() -> String {
    format!("{OBJECT_PREFIX}/{}", uuid::Uuid::new_v4())
}

/// Whether `key` is shaped like an object key of ours (`images/<uuid>`).
pub fn is_object_key(key: &str) -> bool {
    key.strip_prefix(OBJECT_PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|id| uuid::Uuid::try_parse(id).is_ok())
}

/// The content type of an image by its first bytes: `image/jpeg` or
/// `image/png`; `None` for anything else, whatever it is called.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() > PNG.len() && bytes.starts_with(PNG) {
        Some("image/png")
    } else if bytes.len() > 3 && bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else {
        None
    }
}

/// Installs ring as the process's rustls crypto provider (the only one in the
/// workspace), which the S3 client's TLS needs. Call once at process start;
/// later calls do nothing.
pub fn install_crypto_provider() {
    // An error means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_goes_by_bytes() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"GIF89a......"), None);
        assert_eq!(sniff(b"\xFF\xD8"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn object_keys_are_random_and_recognised() {
        let (a, b) = (new_object_key(), new_object_key());
        assert_ne!(a, b);
        assert!(is_object_key(&a));
        assert!(!is_object_key("images/../x"));
        assert!(!is_object_key("other/0b7e4d4e-3f2c-4a51-9c7e-6b1d2a3c4d5e"));
    }
}
