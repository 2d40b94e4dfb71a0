//! The one retry schedule of every reconnect and retry loop.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// 100 ms doubling to 5 s, with jitter, without end: callers stop it (shutdown).
pub fn backoff() -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}
