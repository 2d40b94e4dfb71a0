//! One submission, one trace: every request runs in a trace span — the caller's
//! trace continued when it sent a valid W3C `traceparent`, a new trace
//! otherwise — and the submission is published with the intake's position in
//! that trace (`traceparent` in the message headers, `kyc_core::wire`), which
//! the worker continues. Log lines inside carry `trace_id` (and, within a
//! submission, `submission_id` and `project_id`), so a log search joins the
//! intake's lines and the worker's for one submission.
//!
//! The response carries the intake's `traceparent` too, so a client that sent
//! none learns the trace id of its request.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::Response;
use kyc_core::trace::TraceParent;
use kyc_core::wire::HEADER_TRACEPARENT;
use std::future::Future;
use tracing::Instrument;

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// The intake's position in the trace of the request being handled, if any.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|t| *t).ok()
}

/// The request's trace continued (a child of a valid `traceparent`) or started.
pub fn here(request: &Request) -> TraceParent {
    request
        .headers()
        .get(HEADER_TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse)
        .map_or_else(TraceParent::new_root, |parent| parent.child())
}

/// Runs `handling` in `here`'s span, with `here` as [`current`].
pub async fn within<F: Future>(here: TraceParent, handling: F) -> F::Output {
    let span = tracing::info_span!("trace", trace_id = %here.trace_id(), span_id = %here.span_id());
    CURRENT.scope(here, handling.instrument(span)).await
}

/// Tells the client its request's position in the trace.
pub fn answer(here: TraceParent, response: &mut Response) {
    if let Ok(value) = HeaderValue::from_str(here.encode().as_str()) {
        response.headers_mut().insert(HEADER_TRACEPARENT, value);
    }
}
