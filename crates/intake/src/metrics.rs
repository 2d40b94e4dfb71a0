//! The intake's RED metrics (rate, errors, duration) per route, method, status
//! and error code, and the descriptions of everything the intake exports
//! (docs/operations.md, "Metrics").
//!
//! The `route` label is the matched path template (`/v3/submission/migration/{id}`),
//! never the raw path: a raw path holds ids and would grow a series per
//! submission. Requests no route matched are `route="unmatched"`. Labels never
//! carry an id, a key or a field of a record.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use kyc_core::ErrorCode;
use std::time::Instant;

/// `kyc_intake_requests_total{route,method,status,error_code}`.
pub const REQUESTS: &str = "kyc_intake_requests_total";
/// `kyc_intake_request_duration_seconds{route,method}` (histogram).
pub const DURATION: &str = "kyc_intake_request_duration_seconds";
/// `kyc_intake_requests_in_flight` (gauge).
pub const IN_FLIGHT: &str = "kyc_intake_requests_in_flight";

/// Describes every metric of the intake (and of the bus it publishes through),
/// and starts the counters whose label values are known at 0.
pub fn describe() {
    kyc_bus::metrics::describe();
    metrics::describe_counter!(
        REQUESTS,
        "HTTP requests answered, by route template, method, status and errorCode (\"none\" on success)."
    );
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "Time from a request's arrival to its response, by route template and method."
    );
    metrics::describe_gauge!(IN_FLIGHT, "HTTP requests being handled.");
    metrics::describe_counter!(
        "kyc_intake_errors_total",
        "Error responses, by errorCode (every route and the edge's own refusals)."
    );
    metrics::describe_counter!(
        "kyc_intake_accepted_total",
        "Submissions published and confirmed by the broker (answered 200/202)."
    );
    metrics::describe_histogram!(
        "kyc_intake_publish_seconds",
        metrics::Unit::Seconds,
        "Time to publish one submission and have the broker's confirm."
    );
    metrics::gauge!(IN_FLIGHT).set(0.0);
    metrics::counter!("kyc_intake_accepted_total").increment(0);
    for code in ErrorCode::ALL {
        metrics::counter!("kyc_intake_errors_total", "code" => code.as_str()).increment(0);
    }
}

/// The `method` label: the standard methods by name, anything else `other`
/// (a client may send any token as a method).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts and times every request. A layer of the router (`Router::layer`), so
/// it runs after routing and sees the [`MatchedPath`]; the error code comes from
/// the response's extensions, where `error::error_response` leaves it.
pub async fn red(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let in_flight = InFlight::enter();
    let response = next.run(request).await;
    drop(in_flight);
    let code = response
        .extensions()
        .get::<ErrorCode>()
        .map_or("none", |c| c.as_str());
    metrics::counter!(
        REQUESTS,
        "route" => route.clone(),
        "method" => method,
        "status" => response.status().as_u16().to_string(),
        "error_code" => code,
    )
    .increment(1);
    metrics::histogram!(DURATION, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// One request in `kyc_intake_requests_in_flight`, for as long as it lives: a
/// request whose client went away is dropped mid-way, and must leave the gauge too.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn enter() -> InFlight {
        let gauge = metrics::gauge!(IN_FLIGHT);
        gauge.increment(1.0);
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
