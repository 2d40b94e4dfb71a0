//! The object store of sealed images, built from the `[images]` settings.

use bytes::Bytes;
use futures_util::StreamExt;
use kyc_config::settings::{ImageBackend, Images};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use secrecy::ExposeSecret;
use std::sync::Arc;
use time::OffsetDateTime;

/// Why an object store operation failed. Names the object key at most (which
/// carries no personal data), never content.
#[derive(Debug, thiserror::Error)]
pub enum ImageStoreError {
    /// The settings do not describe a usable store.
    #[error("image store settings: {0}")]
    Settings(String),
    /// The object does not exist.
    #[error("image object {0} not found")]
    NotFound(String),
    /// A written object could not be flushed to disk (`local` backend).
    #[error("image object {0} not flushed to disk: {1}")]
    Durability(String, #[source] std::io::Error),
    /// The store could not be reached or refused the operation.
    #[error("image store: {0}")]
    Store(#[source] object_store::Error),
}

impl From<object_store::Error> for ImageStoreError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => ImageStoreError::NotFound(path),
            e => ImageStoreError::Store(e),
        }
    }
}

/// An object of the store, as [`ImageStore::list`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its key (`images/<uuid>`).
    pub key: String,
    /// When it was last written.
    pub last_modified: OffsetDateTime,
    /// Its size in bytes (sealed).
    pub size: u64,
}

/// Where sealed images lie: a local directory or an S3-compatible bucket.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct ImageStore {
    inner: Arc<dyn ObjectStore>,
    /// The folder of the `local` backend, whose writes [`ImageStore::put`]
    /// makes durable itself (`object_store` leaves them in the page cache).
    local_dir: Option<Arc<std::path::Path>>,
}

impl ImageStore {
    /// The store the settings describe: the `local` backend creates its
    /// directory if missing; the `s3` backend connects lazily (a wrong endpoint
    /// or credentials show at the first operation).
    pub fn from_settings(settings: &Images) -> Result<ImageStore, ImageStoreError> {
        match settings.backend {
            ImageBackend::Local => ImageStore::local(&settings.local_dir),
            ImageBackend::S3 => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&settings.s3_bucket)
                    .with_region(&settings.s3_region)
                    .with_allow_http(settings.s3_allow_http);
                if !settings.s3_endpoint.is_empty() {
                    builder = builder.with_endpoint(&settings.s3_endpoint);
                }
                if let Some(id) = &settings.s3_access_key_id {
                    builder = builder.with_access_key_id(id.expose_secret());
                }
                if let Some(secret) = &settings.s3_secret_access_key {
                    builder = builder.with_secret_access_key(secret.expose_secret());
                }
                let store = builder
                    .build()
                    .map_err(|e| ImageStoreError::Settings(e.to_string()))?;
                Ok(ImageStore::new(Arc::new(store)))
            }
        }
    }

    /// A store in the local directory `dir`, created if missing.
    pub fn local(dir: &std::path::Path) -> Result<ImageStore, ImageStoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            ImageStoreError::Settings(format!("images.local_dir {}: {e}", dir.display()))
        })?;
        let dir = std::fs::canonicalize(dir).map_err(|e| {
            ImageStoreError::Settings(format!("images.local_dir {}: {e}", dir.display()))
        })?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| ImageStoreError::Settings(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(ImageStore {
            inner: Arc::new(store),
            local_dir: Some(dir.into()),
        })
    }

    /// A store around any `object_store` implementation.
    pub fn new(inner: Arc<dyn ObjectStore>) -> ImageStore {
        ImageStore {
            inner,
            local_dir: None,
        }
    }

    /// Writes `sealed` under `key`, durably once this returns `Ok`: S3 answers
    /// after storing; the local backend writes a temporary file and renames it
    /// (`object_store`), then this flushes the file and its folder to disk, so
    /// that a power cut after a 200 cannot lose an object its reference names.
    pub async fn put(&self, key: &str, sealed: Vec<u8>) -> Result<(), ImageStoreError> {
        let path = Path::from(key);
        self.inner.put(&path, PutPayload::from(sealed)).await?;
        if let Some(dir) = &self.local_dir {
            let file = dir.join(path.as_ref());
            tokio::task::spawn_blocking(move || {
                std::fs::File::open(&file)?.sync_all()?;
                match file.parent() {
                    Some(folder) => std::fs::File::open(folder)?.sync_all(),
                    None => Ok(()),
                }
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|e| ImageStoreError::Durability(key.to_owned(), e))?;
        }
        Ok(())
    }

    /// The object under `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, ImageStoreError> {
        Ok(self.inner.get(&Path::from(key)).await?.bytes().await?)
    }

    /// Deletes the object under `key`; one already gone is fine.
    pub async fn delete(&self, key: &str) -> Result<(), ImageStoreError> {
        match self.inner.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes `key`, logging (the key only) rather than failing: used where a
    /// failure leaves an orphan for `kycctl images gc`, nothing worse.
    pub async fn delete_best_effort(&self, key: &str) {
        if let Err(e) = self.delete(key).await {
            tracing::warn!(object_key = %key, error = %e, "image object not deleted; left for `kycctl images gc`");
        }
    }

    /// Every image object ([`crate::OBJECT_PREFIX`]).
    pub async fn list(&self) -> Result<Vec<StoredObject>, ImageStoreError> {
        let prefix = Path::from(crate::OBJECT_PREFIX);
        let mut stream = self.inner.list(Some(&prefix));
        let mut objects = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta?;
            let seconds = meta.last_modified.timestamp();
            let nanos = meta.last_modified.timestamp_subsec_nanos();
            let last_modified = OffsetDateTime::from_unix_timestamp(seconds)
                .map(|t| t + time::Duration::nanoseconds(i64::from(nanos)))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            objects.push(StoredObject {
                key: meta.location.to_string(),
                last_modified,
                size: meta.size,
            });
        }
        Ok(objects)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_backend_writes_reads_lists_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Images {
            local_dir: dir.path().join("nested"),
            ..Images::default()
        };
        let store = ImageStore::from_settings(&settings).unwrap();
        let key = crate::new_object_key();
        store.put(&key, b"sealed".to_vec()).await.unwrap();
        assert_eq!(&store.get(&key).await.unwrap()[..], b"sealed");
        let listed = store.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, key);
        assert_eq!(listed[0].size, 6);
        store.delete(&key).await.unwrap();
        store.delete(&key).await.unwrap();
        assert!(matches!(
            store.get(&key).await,
            Err(ImageStoreError::NotFound(_))
        ));
        assert!(store.list().await.unwrap().is_empty());
    }
}
