//! The worker's side of one submission's trace (see `kyc_intake::trace`): the
//! trace the intake sent in the message's `traceparent` header, continued with a
//! span of the worker's own; a new trace for a message without one (a direct
//! AMQP publisher that sends none).

use kyc_bus::lapin::BasicProperties;
use kyc_core::trace::TraceParent;
use kyc_core::wire::HEADER_TRACEPARENT;

/// The worker's position in the trace of the message with these properties.
pub fn continued(properties: &BasicProperties) -> TraceParent {
    kyc_bus::headers::get(properties, HEADER_TRACEPARENT)
        .and_then(TraceParent::parse)
        .map_or_else(TraceParent::new_root, |parent| parent.child())
}

/// The span of one submission in the worker: its ids and its trace, never a
/// field of the record.
pub fn submission_span(
    trace: &TraceParent,
    submission_id: uuid::Uuid,
    project_id: uuid::Uuid,
) -> tracing::Span {
    tracing::info_span!(
        "submission",
        trace_id = %trace.trace_id(),
        span_id = %trace.span_id(),
        submission_id = %submission_id,
        project_id = %project_id,
    )
}
