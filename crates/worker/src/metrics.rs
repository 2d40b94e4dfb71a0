//! Everything a worker exports (docs/operations.md, "Metrics"), described once
//! with the counters whose label values are known started at 0, so that
//! `rate()`, `increase()` and the alerts see a series before its first event.
//!
//! Labels are fixed words (a status, an error code, a reason), never an id, a
//! key or a field of a record. Which worker a series belongs to is the scrape's
//! `instance` label, not ours.

use kyc_core::ErrorCode;

/// `kyc_worker_deliveries_total`: deliveries taken from the submissions queue.
pub const DELIVERIES: &str = "kyc_worker_deliveries_total";
/// `kyc_worker_redeliveries_total`: of those, deliveries the broker marked redelivered.
pub const REDELIVERIES: &str = "kyc_worker_redeliveries_total";
/// `kyc_worker_acked_total`: deliveries settled by an ack.
pub const ACKED: &str = "kyc_worker_acked_total";
/// `kyc_worker_in_flight`: deliveries taken and not yet settled.
pub const IN_FLIGHT: &str = "kyc_worker_in_flight";
/// `kyc_worker_batch_size` (histogram): deliveries per batch.
pub const BATCH_SIZE: &str = "kyc_worker_batch_size";
/// `kyc_worker_batch_seconds` (histogram): a batch from taken to acknowledged.
pub const BATCH_SECONDS: &str = "kyc_worker_batch_seconds";
/// `kyc_worker_store_seconds` (histogram): one store transaction.
pub const STORE_SECONDS: &str = "kyc_worker_store_seconds";
/// `kyc_worker_time_to_persisted_seconds` (histogram): from the intake's
/// receipt (`x-received-at`) to the stored row.
pub const TIME_TO_PERSISTED: &str = "kyc_worker_time_to_persisted_seconds";
/// `kyc_worker_events_published_total`: result events confirmed by the broker.
pub const EVENTS: &str = "kyc_worker_events_published_total";
/// `kyc_worker_replies_published_total`: replies (single or batched) confirmed.
pub const REPLIES: &str = "kyc_worker_replies_published_total";
/// `kyc_worker_replies_dropped_total`: replies the broker returned (the reply
/// queue is gone) or refused (its node is down); the batch is acknowledged anyway.
pub const REPLIES_DROPPED: &str = "kyc_worker_replies_dropped_total";
/// `kyc_worker_rejections_total{code}`: submissions stored as rejected, by code.
pub const REJECTIONS: &str = "kyc_worker_rejections_total";
/// `kyc_worker_dead_lettered_total{reason}`.
pub const DEAD_LETTERED: &str = "kyc_worker_dead_lettered_total";

/// Every `reason` of `kyc_worker_dead_lettered_total`: `forbidden` (moved by the
/// worker, `dead_letter`), `unstorable` (one record of a batch message the
/// database refused, moved alone), `unsealed` (an image reference that does
/// not open), `unreadable` (an intake's sealed batch with no readable batch
/// inside) and `delivery_limit` (rejected without requeue on its last allowed
/// delivery, dead-lettered by the broker).
pub const DEAD_REASONS: [&str; 5] = [
    "forbidden",
    "unstorable",
    "unsealed",
    "unreadable",
    "delivery_limit",
];

/// Every `status` of `kyc_worker_submissions_total`.
pub const STATUSES: [&str; 6] = [
    "accepted",
    "rejected",
    "refused",
    "forbidden",
    "unreadable",
    "processing_error",
];

/// Describes the worker's metrics (and the bus's) on the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    kyc_bus::metrics::describe();
    describe_counter!(DELIVERIES, "Deliveries taken from the submissions queue.");
    describe_counter!(
        REDELIVERIES,
        "Deliveries the broker marked as redelivered (a worker died or rejected them)."
    );
    describe_counter!(ACKED, "Deliveries acknowledged (stored and announced).");
    describe_gauge!(IN_FLIGHT, "Deliveries taken and not yet settled.");
    describe_histogram!(BATCH_SIZE, Unit::Count, "Deliveries per batch.");
    describe_histogram!(
        BATCH_SECONDS,
        Unit::Seconds,
        "A batch from taken to acknowledged, retries included."
    );
    describe_histogram!(STORE_SECONDS, Unit::Seconds, "One store transaction.");
    describe_histogram!(
        TIME_TO_PERSISTED,
        Unit::Seconds,
        "From the intake's receipt of a submission to its stored row."
    );
    describe_counter!(EVENTS, "Result events published and confirmed.");
    describe_counter!(REPLIES, "Replies published and confirmed.");
    describe_counter!(
        REPLIES_DROPPED,
        "Replies returned or refused by the broker (the requester's queue gone or unavailable)."
    );
    describe_counter!(REJECTIONS, "Submissions stored as rejected, by errorCode.");
    describe_counter!(DEAD_LETTERED, "Messages sent to the dead queue, by reason.");
    describe_counter!(
        "kyc_worker_submissions_total",
        "Submissions decided, by status."
    );
    describe_counter!("kyc_worker_batches_total", "Batches acknowledged.");
    describe_counter!(
        "kyc_worker_batch_retries_total",
        "Batch attempts that failed (database or broker away) and were retried."
    );
    describe_counter!(
        "kyc_worker_poison_total",
        "Deliveries that could not be stored and were rejected."
    );
    describe_counter!(
        "kyc_worker_replies_refused_total",
        "Reply queues refused (not a queue a worker may answer to)."
    );

    metrics::gauge!(IN_FLIGHT).set(0.0);
    for name in [
        DELIVERIES,
        REDELIVERIES,
        ACKED,
        EVENTS,
        REPLIES,
        REPLIES_DROPPED,
        "kyc_worker_batches_total",
        "kyc_worker_batch_retries_total",
        "kyc_worker_poison_total",
        "kyc_worker_replies_refused_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for reason in DEAD_REASONS {
        metrics::counter!(DEAD_LETTERED, "reason" => reason).increment(0);
    }
    for status in STATUSES {
        metrics::counter!("kyc_worker_submissions_total", "status" => status).increment(0);
    }
    for code in ErrorCode::ALL {
        metrics::counter!(REJECTIONS, "code" => code.as_str()).increment(0);
    }
}

/// A batch was taken from the queue: deliveries, redeliveries, batch size, in flight.
pub(crate) fn taken(batch: &[kyc_bus::lapin::message::Delivery]) {
    let n = batch.len() as u64;
    metrics::counter!(DELIVERIES).increment(n);
    let redelivered = batch.iter().filter(|d| d.redelivered).count() as u64;
    metrics::counter!(REDELIVERIES).increment(redelivered);
    metrics::histogram!(BATCH_SIZE).record(n as f64);
    metrics::gauge!(IN_FLIGHT).increment(n as f64);
}

/// A submission received at `received_at` was stored at `now`, rejected with
/// `code` if any.
pub(crate) fn stored(
    received_at: time::OffsetDateTime,
    code: Option<ErrorCode>,
    now: time::OffsetDateTime,
) {
    let waited = (now - received_at).as_seconds_f64();
    // A clock behind the intake's would give a negative wait: not a latency.
    if waited >= 0.0 {
        metrics::histogram!(TIME_TO_PERSISTED).record(waited);
    }
    if let Some(code) = code {
        metrics::counter!(REJECTIONS, "code" => code.as_str()).increment(1);
    }
}
