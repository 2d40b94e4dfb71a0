//! The worker's side of one submission's trace (see `kyc_intake::trace`): the
//! trace the intake sent with the message (`traceparent`), continued with a
//! span of the worker's own; a new trace for a message without one (a direct
//! AMQP publisher that sends none).

use kyc_bus::lapin::BasicProperties;
use kyc_core::trace::TraceParent;

/// The worker's position in the trace of the message with these properties and
/// this body (a transit version 2 body carries the trace in its prefix).
pub fn continued(properties: &BasicProperties, body: &[u8]) -> TraceParent {
    kyc_bus::headers::decode_message(properties, body)
        .traceparent
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
