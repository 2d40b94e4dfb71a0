//! What the publish path reports (docs/operations.md, "Metrics"):
//!
//! - `kyc_bus_publish_confirm_seconds` (histogram): from sending a message to
//!   its settled broker confirm (ack, nack, return or timeout), per message;
//! - `kyc_bus_publish_failures_total{reason}`: publishes that did not end in a
//!   plain ack, by [`PublishError`] kind.
//!
//! Labels are fixed words, never a queue name, id or message content.

use crate::PublishError;
use std::time::Instant;

/// Every `reason` label value of `kyc_bus_publish_failures_total`.
pub const FAILURE_REASONS: [&str; 8] = [
    "not_connected",
    "blocked",
    "busy",
    "timeout",
    "nacked",
    "returned",
    "not_confirming",
    "amqp",
];

/// The `reason` label of a failed publish.
pub fn failure_reason(error: &PublishError) -> &'static str {
    match error {
        PublishError::NotConnected => "not_connected",
        PublishError::Blocked => "blocked",
        PublishError::Busy => "busy",
        PublishError::Timeout(_) => "timeout",
        PublishError::Nacked => "nacked",
        PublishError::Returned(_) => "returned",
        PublishError::NotConfirming => "not_confirming",
        PublishError::Amqp(_) => "amqp",
    }
}

/// Describes the bus's metrics and starts every failure series at 0, so that
/// `rate()` and alerts see them before the first failure.
pub fn describe() {
    metrics::describe_histogram!(
        "kyc_bus_publish_confirm_seconds",
        metrics::Unit::Seconds,
        "Time from sending a message to its settled broker confirm."
    );
    metrics::describe_counter!(
        "kyc_bus_publish_failures_total",
        "Publishes not confirmed by a plain broker ack, by reason."
    );
    for reason in FAILURE_REASONS {
        metrics::counter!("kyc_bus_publish_failures_total", "reason" => reason).increment(0);
    }
}

/// Records the outcomes of messages that went out together at `started`.
pub(crate) fn record<'a>(
    started: Instant,
    sent: bool,
    outcomes: impl IntoIterator<Item = &'a Result<(), PublishError>>,
) {
    let seconds = started.elapsed().as_secs_f64();
    let confirm = metrics::histogram!("kyc_bus_publish_confirm_seconds");
    for outcome in outcomes {
        // A message refused before it was sent (busy, not connected, blocked)
        // never waited for a confirm.
        if sent {
            confirm.record(seconds);
        }
        if let Err(error) = outcome {
            metrics::counter!("kyc_bus_publish_failures_total", "reason" => failure_reason(error))
                .increment(1);
        }
    }
}
