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
use axum::middleware::Next;
use axum::response::Response;
use kyc_core::trace::TraceParent;
use kyc_core::wire::HEADER_TRACEPARENT;
use tracing::Instrument;

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// The intake's position in the trace of the request being handled, if any.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|t| *t).ok()
}

/// The middleware: continue or start the trace, run the request in its span.
pub async fn continue_or_start(request: Request, next: Next) -> Response {
    let here = request
        .headers()
        .get(HEADER_TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse)
        .map_or_else(TraceParent::new_root, |parent| parent.child());
    let span = tracing::info_span!("trace", trace_id = %here.trace_id(), span_id = %here.span_id());
    let mut response = CURRENT
        .scope(here, next.run(request).instrument(span))
        .await;
    if let Ok(value) = HeaderValue::from_str(&here.to_string()) {
        response.headers_mut().insert(HEADER_TRACEPARENT, value);
    }
    response
}
