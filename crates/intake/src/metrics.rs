//! The intake's RED metrics (rate, errors, duration) per route, method, status
//! and error code, and the descriptions of everything the intake exports
//! (docs/operations.md, "Metrics").
//!
//! The `route` label is the matched path template (`/v3/submission/migration/{id}`),
//! never the raw path: a raw path holds ids and would grow a series per
//! submission. Requests no route matched are `route="unmatched"`. Labels never
//! carry an id, a key or a field of a record.

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use kyc_core::ErrorCode;
use metrics::SharedString;
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

/// One request being counted and timed ([`Red::start`] when it arrives,
/// [`Red::finish`] with its response). Started after routing, so it sees the
/// [`MatchedPath`]; the error code comes from the response's extensions, where
/// `error::error_response` leaves it.
#[derive(Debug)]
pub struct Red {
    started: Instant,
    route: SharedString,
    method: &'static str,
    _in_flight: InFlight,
}

impl Red {
    /// Notes the request's route, method and arrival, and counts it in flight.
    pub fn start(request: &Request) -> Red {
        Red {
            started: Instant::now(),
            route: route_label(request.extensions().get::<MatchedPath>()),
            method: method_label(request.method()),
            _in_flight: InFlight::enter(),
        }
    }

    /// Counts the response and records the request's duration.
    pub fn finish(self, response: &Response) {
        let code = response
            .extensions()
            .get::<ErrorCode>()
            .map_or("none", |c| c.as_str());
        metrics::counter!(
            REQUESTS,
            "route" => self.route.clone(),
            "method" => self.method,
            "status" => status_label(response.status()),
            "error_code" => code,
        )
        .increment(1);
        metrics::histogram!(DURATION, "route" => self.route, "method" => self.method)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// The route templates of the intake's listeners, so that the label of a
/// matched route is a static string rather than a copy per request.
const ROUTES: &[&str] = &[
    "/v3/submission/migration",
    "/v3/submission/migration/batch",
    "/v3/submission/migration/{id}",
    "/v3/submission/migration/{id}/images/{kind}",
    "/v3/submission/image",
    "/v3/submission",
    "/v3/submission/partial",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
];

/// The `route` label: the matched template, `unmatched` when none matched.
fn route_label(matched: Option<&MatchedPath>) -> SharedString {
    let Some(matched) = matched else {
        return SharedString::const_str("unmatched");
    };
    match ROUTES.iter().find(|r| **r == matched.as_str()) {
        Some(route) => SharedString::const_str(route),
        // A route added without a line above still gets its own label.
        None => SharedString::from_owned(matched.as_str().to_owned()),
    }
}

/// The `status` label; the statuses the intake answers with are static strings.
fn status_label(status: StatusCode) -> SharedString {
    let known = match status.as_u16() {
        200 => "200",
        202 => "202",
        400 => "400",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        429 => "429",
        500 => "500",
        503 => "503",
        other => return SharedString::from_owned(other.to_string()),
    };
    SharedString::const_str(known)
}

/// One request in `kyc_intake_requests_in_flight`, for as long as it lives: a
/// request whose client went away is dropped mid-way, and must leave the gauge too.
#[derive(Debug)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_intake_has_a_static_label() {
        // Routes are matched by their template; the table must hold them all.
        use utoipa::OpenApi;
        let doc = crate::openapi::ApiDoc::openapi();
        // The document names path parameters for clients (`{submissionId}`),
        // the router tersely (`{id}`): compare with the names left out.
        let shape = |path: &str| -> String {
            path.split('/')
                .map(|s| if s.starts_with('{') { "{}" } else { s })
                .collect::<Vec<_>>()
                .join("/")
        };
        let labelled: Vec<String> = ROUTES.iter().map(|r| shape(r)).collect();
        for path in doc.paths.paths.keys() {
            assert!(
                labelled.contains(&shape(path)),
                "{path} has no static label"
            );
        }
    }

    #[test]
    fn statuses_outside_the_table_keep_their_number() {
        assert_eq!(&*status_label(StatusCode::OK), "200");
        assert_eq!(&*status_label(StatusCode::IM_A_TEAPOT), "418");
        assert_eq!(&*route_label(None), "unmatched");
    }
}
