//! The worker itself: its options and what it writes through.

use kyc_bus::Topology;
use kyc_core::transit::TransitKeyring;
use kyc_store::{DataKey, Directory, Store};
use std::time::Duration;

/// How a worker connects and batches.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The broker (`KYC__AMQP__URL`).
    pub amqp_url: String,
    /// Exchange and queue names under `KYC__AMQP__PREFIX`, with dead-letter bounds.
    pub topology: Topology,
    /// Deliveries stored per transaction at most (`KYC__WORKER__BATCH_SIZE`).
    pub batch_size: usize,
    /// How long a partial batch waits for more (`KYC__WORKER__BATCH_LINGER_MS`).
    pub batch_linger: Duration,
    /// Unacknowledged deliveries the broker sends ahead (`KYC__WORKER__PREFETCH`).
    pub prefetch: u16,
    /// Batch messages per transaction on the bulk lane
    /// (`KYC__WORKER__BULK_BATCH_MESSAGES`).
    pub bulk_batch_messages: usize,
    /// Unacknowledged batch messages sent ahead on the bulk lane
    /// (`KYC__WORKER__BULK_PREFETCH`).
    pub bulk_prefetch: u16,
    /// Bulk-lane consumers, each with its own channel and transactions
    /// (`KYC__WORKER__BULK_CONSUMERS`).
    pub bulk_consumers: usize,
    /// Bulk records' events grouped per kind and project
    /// (`KYC__WORKER__GROUP_EVENTS`, `announce`).
    pub group_events: bool,
    /// How long a result or dead-letter publish waits for its confirm
    /// (`KYC__AMQP__CONFIRM_TIMEOUT_MS`).
    pub confirm_timeout: Duration,
    /// The largest body decided about (`http.body_limit_bytes`, as at the
    /// intake); a larger one is refused as `payload_too_large` (`bounds`).
    pub body_limit: usize,
    /// Connection name in the broker UI, e.g. `kyc-worker`.
    pub name: String,
}

/// A worker: its options and the store/directory it writes through.
#[derive(Debug, Clone)]
pub struct Worker {
    pub(crate) options: WorkerOptions,
    pub(crate) store: Store,
    pub(crate) directory: Directory,
    pub(crate) data_key: DataKey,
    /// Opens intake messages (`kyc_core::transit`).
    pub(crate) transit: TransitKeyring,
    /// Where image objects lie (`images`): replaced and unused ones are
    /// deleted. `None`: the images queue is not consumed.
    pub(crate) images: Option<kyc_images::ImageStore>,
}

impl Worker {
    /// A worker writing through `store` and `directory`, sealing with `data_key`
    /// and opening intake messages with `transit`.
    pub fn new(
        options: WorkerOptions,
        store: Store,
        directory: Directory,
        data_key: DataKey,
        transit: TransitKeyring,
    ) -> Worker {
        Worker {
            options,
            store,
            directory,
            data_key,
            transit,
            images: None,
        }
    }

    /// This worker, consuming image references too and deleting replaced
    /// images from `images`.
    pub fn with_images(mut self, images: kyc_images::ImageStore) -> Worker {
        self.images = Some(images);
        self
    }

    /// Builds a worker from the process settings (the `kyc-worker` binary and
    /// `kycctl dev` use this). Refuses settings without a data key and a transit
    /// key unless `dev` is set ([`kyc_config::Settings::secrets`]).
    pub fn from_settings(settings: &kyc_config::Settings) -> anyhow::Result<Worker> {
        use secrecy::ExposeSecret;
        let secrets = settings.secrets()?;
        crate::metrics::describe();
        let store = Store::connect_lazy(
            settings.database.url.expose_secret(),
            settings.database.max_connections,
        )?;
        let directory = Directory::new(
            store.clone(),
            Duration::from_millis(settings.directory.ttl_ms),
        );
        let data_key = DataKey::keyring(&secrets.data_key, &secrets.older_data_keys)?;
        let options = WorkerOptions {
            amqp_url: settings.amqp.url.expose_secret().to_owned(),
            topology: Topology::new(settings.amqp.prefix.clone()).with_dead_letter_bounds(
                kyc_bus::DeadLetterBounds {
                    max_length: settings.amqp.dead_letter_max_length,
                    ttl_ms: settings.amqp.dead_letter_ttl_ms,
                },
            ),
            batch_size: settings.worker.batch_size,
            batch_linger: settings.worker.batch_linger(),
            prefetch: settings.worker.prefetch,
            bulk_batch_messages: settings.worker.bulk_batch_messages,
            bulk_prefetch: settings.worker.bulk_prefetch,
            bulk_consumers: settings.worker.bulk_consumers,
            group_events: settings.worker.group_events,
            confirm_timeout: settings.amqp.confirm_timeout(),
            body_limit: settings.http.body_limit_bytes,
            name: "kyc-worker".to_owned(),
        };
        // The S3 image store's TLS needs the process's one provider (ring).
        kyc_images::install_crypto_provider();
        let images = kyc_images::ImageStore::from_settings(&settings.images)?;
        Ok(Worker::new(options, store, directory, data_key, secrets.transit).with_images(images))
    }
}
