//! The `[webhooks]` section: the dispatcher (`kyc-webhooks`) and the rules for
//! the URLs `kycctl webhook add` accepts.

use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The webhook dispatcher.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Webhooks {
    /// `KYC__WEBHOOKS__RETRY_SCHEDULE`: the delay before each attempt, in
    /// milliseconds, separated by commas; the first is normally 0 (at once).
    /// Its length is the number of attempts before a delivery is failed.
    pub retry_schedule: String,
    /// Each delay but the first is multiplied by a random factor in
    /// `1 ± jitter` (0 to 1), so that retries of one outage do not arrive together.
    pub jitter: f64,
    /// `KYC__WEBHOOKS__TIMEOUT_MS`: one attempt, connection to last body byte.
    pub timeout_ms: u64,
    /// Attempts in flight per dispatcher process.
    pub max_in_flight: usize,
    /// Attempts in flight per endpoint per dispatcher process: a receiver that
    /// hangs holds at most this many slots.
    pub per_endpoint_in_flight: usize,
    /// How often due deliveries are looked for when nothing woke the dispatcher
    /// (retries coming due, other dispatchers' events, replays).
    pub poll_interval_ms: u64,
    /// Unacknowledged events the broker may push ahead of the dispatcher.
    pub prefetch: u16,
    /// `KYC__WEBHOOKS__ALLOW_HTTP`: accept `http://` URLs (tests, local receivers).
    /// Off: HTTPS only.
    pub allow_http: bool,
    /// `KYC__WEBHOOKS__ALLOW_LOOPBACK`: accept targets resolving to loopback
    /// addresses (tests). Off by default.
    pub allow_loopback: bool,
    /// `KYC__WEBHOOKS__ALLOW_PRIVATE`: accept targets resolving to private,
    /// shared (CGNAT) and unique-local addresses (a receiver inside the same
    /// network). Link-local and cloud metadata addresses are never accepted.
    pub allow_private: bool,
    /// `KYC__WEBHOOKS__METRICS_ADDR`: where the dispatcher serves `/metrics`.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            // At once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about 28 hours.
            retry_schedule: "0,5000,300000,1800000,7200000,18000000,36000000,36000000".to_owned(),
            jitter: 0.2,
            timeout_ms: 10_000,
            max_in_flight: 256,
            per_endpoint_in_flight: 8,
            poll_interval_ms: 500,
            prefetch: 1_000,
            allow_http: false,
            allow_loopback: false,
            allow_private: false,
            metrics_addr: None,
        }
    }
}

impl Webhooks {
    /// [`Webhooks::retry_schedule`] as delays; `None` if it is not a non-empty
    /// list of milliseconds.
    pub fn schedule(&self) -> Option<Vec<Duration>> {
        let delays: Option<Vec<Duration>> = self
            .retry_schedule
            .split(',')
            .map(|d| d.trim().parse::<u64>().ok().map(Duration::from_millis))
            .collect();
        delays.filter(|d| !d.is_empty())
    }

    /// [`Webhooks::timeout_ms`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// [`Webhooks::poll_interval_ms`] as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub(super) fn check(&self) -> Result<(), &'static str> {
        if self.schedule().is_none() {
            return Err("webhooks.retry_schedule must be milliseconds separated by commas");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err("webhooks.jitter must be between 0 and 1");
        }
        if self.timeout_ms == 0
            || self.max_in_flight == 0
            || self.per_endpoint_in_flight == 0
            || self.poll_interval_ms == 0
            || self.prefetch == 0
        {
            return Err(
                "webhooks.timeout_ms, max_in_flight, per_endpoint_in_flight, poll_interval_ms \
                 and prefetch must be at least 1",
            );
        }
        Ok(())
    }
}
