//! The plain sections of [`Settings`](super::Settings): the HTTP server, the
//! database, the broker, the worker, the directory cache and logging.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The intake's HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Http {
    /// `KYC__HTTP__ADDR`; port 0 picks a free port (tests).
    pub addr: SocketAddr,
    /// Largest accepted body (`docs/api.md` §3: default 64 KiB → 413 beyond).
    pub body_limit_bytes: usize,
    /// `KYC__HTTP__BATCH_BODY_LIMIT_BYTES`: largest body of the batch endpoint
    /// (default 4 MiB → 413 beyond).
    pub batch_body_limit_bytes: usize,
    /// `KYC__HTTP__BATCH_MAX_RECORDS`: most records per batch request (default
    /// 1,000 → 413 beyond).
    pub batch_max_records: usize,
    /// `KYC__HTTP__COMPRESS_BATCHES`: whether the batch endpoint's broker
    /// messages are zstd-compressed before they are sealed (default true;
    /// `docs/api.md` §8).
    pub compress_batches: bool,
    /// Per-project requests per second (`docs/api.md` §3 `rate_limited`); 0 disables.
    pub rate_limit_per_second: u32,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub drain_timeout_ms: u64,
    /// `KYC__HTTP__OPERATOR_ADDR`: where `/metrics` and `/readyz` are served
    /// apart from the API. Unset, they share the public listener.
    pub operator_addr: Option<SocketAddr>,
    /// A request's headers must arrive within this time after its connection
    /// opens or after the previous response on it: the slow-client and
    /// keep-alive idle timeout.
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive within this time (408 `request_timeout`).
    pub body_timeout_ms: u64,
    /// A request must be answered within this time (503 `unavailable`); above
    /// the longest `?wait` (30 s) plus the confirm timeout.
    pub request_timeout_ms: u64,
    /// Open connections at most per listener; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Requests per second from one client address, checked before
    /// authentication; 0 (the default) turns it off, as behind a load balancer
    /// every client shares the balancer's address.
    pub per_address_rate_limit: u32,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 64 * 1024,
            batch_body_limit_bytes: 4 << 20,
            batch_max_records: 1_000,
            compress_batches: true,
            rate_limit_per_second: 5_000,
            drain_timeout_ms: 10_000,
            operator_addr: None,
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            request_timeout_ms: 45_000,
            max_connections: 4_096,
            per_address_rate_limit: 0,
        }
    }
}

/// PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Database {
    /// `KYC__DATABASE__URL`.
    pub url: SecretString,
    /// Pool size per process.
    pub max_connections: u32,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/kyc"),
            max_connections: 10,
        }
    }
}

/// RabbitMQ, and how publishing to it is bounded.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Amqp {
    /// `KYC__AMQP__URL`: the broker's AMQP URL, or the URLs of a cluster's nodes
    /// separated by commas, tried in turn on every connection and reconnection
    /// (a comma inside a password must be written `%2C`). After loading, this
    /// holds the whole list also when it was given as [`Amqp::urls`].
    pub url: SecretString,
    /// `KYC__AMQP__URLS` (comma-separated) or `urls = [...]` in the file: the
    /// nodes' URLs as a list, the same as a comma-separated `url`. When set it
    /// takes the place of `url` (setting both to different lists is an error).
    pub urls: Vec<SecretString>,
    /// `KYC__AMQP__PREFIX`: names every exchange and queue (`<prefix>.submissions`…).
    pub prefix: String,
    /// Confirm-mode channels the intake (and `kycctl push`) spread publishes over.
    pub publish_channels: usize,
    /// How long a publish may wait for its confirm before it counts as failed
    /// (the intake's client gets 503, `kycctl push` stops).
    pub confirm_timeout_ms: u64,
    /// Publishes awaiting confirms per process; beyond it requests get 503 at once.
    pub max_in_flight: usize,
    /// `KYC__AMQP__DEAD_LETTER_MAX_LENGTH`: dead letters kept at most (the
    /// dead queue's `x-max-length`); beyond it the oldest are dropped.
    pub dead_letter_max_length: u32,
    /// `KYC__AMQP__DEAD_LETTER_TTL_MS`: how long a dead letter is kept (the dead
    /// queue's `x-message-ttl`).
    pub dead_letter_ttl_ms: u64,
}

impl Default for Amqp {
    fn default() -> Self {
        Amqp {
            url: SecretString::from(DEFAULT_AMQP_URL),
            urls: Vec::new(),
            prefix: "kyc".to_owned(),
            publish_channels: 4,
            confirm_timeout_ms: 5_000,
            max_in_flight: 8_192,
            dead_letter_max_length: 100_000,
            dead_letter_ttl_ms: 14 * 24 * 3600 * 1000,
        }
    }
}

/// The local machine's broker, the default of [`Amqp::url`].
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

impl Amqp {
    /// The broker addresses, in the order they are tried: [`Amqp::url`] split
    /// at commas, blanks and empty entries left out.
    pub fn addresses(&self) -> Vec<String> {
        addresses_of(self.url.expose_secret())
    }

    /// Folds [`Amqp::urls`] into [`Amqp::url`] (the one field every connection
    /// reads) and checks the list: at least one address, each an `amqp://` or
    /// `amqps://` URL, none twice.
    pub(super) fn resolve_addresses(&mut self) -> Result<(), &'static str> {
        if self
            .urls
            .iter()
            .any(|url| url.expose_secret().contains(','))
        {
            return Err("amqp.urls: one URL per entry (a comma in a password is written %2C)");
        }
        if !self.urls.is_empty() {
            let joined = self
                .urls
                .iter()
                .map(|url| url.expose_secret().trim())
                .collect::<Vec<_>>()
                .join(",");
            let url = self.url.expose_secret();
            if url != DEFAULT_AMQP_URL && self.addresses() != addresses_of(&joined) {
                return Err("amqp.url and amqp.urls are both set, to different brokers: set one");
            }
            self.url = SecretString::from(joined);
        }
        let addresses = self.addresses();
        if addresses.is_empty() {
            return Err("amqp.url must name at least one broker");
        }
        if !addresses
            .iter()
            .all(|a| a.starts_with("amqp://") || a.starts_with("amqps://"))
        {
            return Err("amqp.url: every broker address must be an amqp:// or amqps:// URL");
        }
        let distinct: std::collections::BTreeSet<&String> = addresses.iter().collect();
        if distinct.len() != addresses.len() {
            return Err("amqp.url: a broker address is listed twice");
        }
        Ok(())
    }

    /// [`Amqp::confirm_timeout_ms`] as a duration.
    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.confirm_timeout_ms)
    }
}

/// `urls` split at commas, blanks and empty entries left out.
fn addresses_of(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The worker's batching, prefetch and draining.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Worker {
    /// `KYC__WORKER__BATCH_SIZE`: deliveries per transaction.
    pub batch_size: usize,
    /// `KYC__WORKER__BATCH_LINGER_MS`: how long a partial batch waits for more.
    pub batch_linger_ms: u64,
    /// Unacknowledged deliveries the broker may push ahead (≥ batch size, so the
    /// next batch is already local while one is being stored).
    pub prefetch: u16,
    /// `KYC__WORKER__BULK_BATCH_MESSAGES`: batch messages (bulk lane) per
    /// transaction; each carries up to 1,000 records (`kycctl push` and the batch
    /// endpoint send 200).
    pub bulk_batch_messages: usize,
    /// `KYC__WORKER__BULK_PREFETCH`: unacknowledged batch messages the broker may
    /// push ahead on each bulk consumer (≥ `bulk_batch_messages`). Each is held
    /// in memory: 20 of ours (200 records) are about 3 MiB, 20 of the largest a
    /// direct publisher may send (4 MiB) 80 MiB.
    pub bulk_prefetch: u16,
    /// `KYC__WORKER__BULK_CONSUMERS`: bulk-lane consumers per worker, each on a
    /// channel of its own with its own transactions, so that one decides its
    /// next batch while another's transaction commits. Each holds up to
    /// `bulk_prefetch` batch messages. 2 by default, of 10 messages (2,000
    /// records) a transaction: two of 20 took the single-record lane's p99
    /// during a migration past its goal, and one of 20 left the worker idle
    /// while its transaction committed (`docs/benchmarks.md`, "two bulk
    /// consumers per worker").
    pub bulk_consumers: usize,
    /// `KYC__WORKER__GROUP_EVENTS`: announce the results of the records of batch
    /// messages as one `kyc.result-batch.v1` message per kind, project and
    /// worker batch (`true`), or one event message per record (`false`, for
    /// consumers that read only single events).
    pub group_events: bool,
    /// How long the worker may take to finish its batch after SIGTERM.
    pub drain_timeout_ms: u64,
    /// `KYC__WORKER__METRICS_ADDR`: where the worker serves `/metrics`
    /// (Prometheus text); unset, it serves none.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            batch_size: 500,
            batch_linger_ms: 20,
            prefetch: 1_000,
            bulk_batch_messages: 10,
            bulk_prefetch: 20,
            bulk_consumers: 2,
            group_events: true,
            drain_timeout_ms: 20_000,
            metrics_addr: None,
        }
    }
}

impl Worker {
    /// [`Worker::batch_linger_ms`] as a duration.
    pub fn batch_linger(&self) -> Duration {
        Duration::from_millis(self.batch_linger_ms)
    }
}

/// The project/admin lookup cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Directory {
    /// How long a lookup is trusted; a rotated key or removed admin stops working
    /// within this time.
    pub ttl_ms: u64,
    /// Known keys (and projects, admin lists) kept, least recently used evicted.
    pub max_entries: usize,
    /// Unknown keys remembered as unknown, least recently used evicted: apart
    /// from the known ones, so a flood of random keys cannot evict a real one.
    pub max_unknown_entries: usize,
}

impl Default for Directory {
    fn default() -> Self {
        Directory {
            ttl_ms: 5_000,
            max_entries: 100_000,
            max_unknown_entries: 10_000,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Log {
    /// `KYC__LOG__JSON=true` for JSON lines.
    pub json: bool,
}
