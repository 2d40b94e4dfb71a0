//! The edge: what a slow, idle, flooding or broken client may cost the intake.
//!
//! `axum::serve` gives hyper no timer, so a client that sends half a request line
//! and then nothing holds its socket and task for ever. [`serve`] runs hyper's
//! HTTP/1 connection itself instead, with:
//!
//! - a **header-read timeout** (hyper's own, with a timer): started when a
//!   connection opens and again while a kept-alive connection waits for its next
//!   request, so it is also the keep-alive idle timeout;
//! - a **cap on open connections**: past it the listener stops accepting (the
//!   kernel's backlog holds the rest), so file descriptors cannot run out before
//!   authentication runs; a slow client's slot is freed by the timeouts;
//! - **graceful drain**: on shutdown it stops accepting and lets requests in
//!   flight finish, bounded by the drain timeout.
//!
//! HTTP/1 only, on purpose: hyper-util's protocol auto-detection reads the first
//! bytes with no timer running. Request and body timeouts, per-address limits
//! and "every error is JSON" are middleware ([`layers`]).

use crate::error::error_response;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kyc_core::{ErrorBody, ErrorCode};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::Instrument;

/// The bounds of one listener; every field is a setting (`KYC__HTTP__…`).
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// A request's headers must arrive within this time after the connection
    /// opens or after the previous response (so it is the idle timeout too).
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this time (else 408 `request_timeout`).
    pub body_timeout: Duration,
    /// A request must be answered within this time (else 503 `unavailable`).
    /// Longer than the longest `?wait` plus a confirm timeout.
    pub request_timeout: Duration,
    /// Open connections at most; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Requests per second from one client address, checked before
    /// authentication; 0 turns the limit off (behind a load balancer every
    /// client has the balancer's address).
    pub per_address_per_second: u32,
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains for at
/// most `drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &EdgeLimits,
    shutdown: CancellationToken,
    drain: Duration,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    loop {
        // Take a slot before accepting: at the cap, new clients wait in the
        // backlog instead of costing a task and a descriptor each.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot?,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(move |mut request: Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts and resets of misbehaving clients: routine, not errors.
                tracing::debug!(error = %e, %peer, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => Ok(()),
        () = tokio::time::sleep(drain) => {
            Err(anyhow::anyhow!("in-flight requests did not finish within {drain:?}"))
        }
    }
}

/// The middleware every listener gets: [`around`] every request, and inside
/// it a panic turned into an opaque JSON 500 (the cause logged, never sent).
///
/// One middleware function rather than a layer per concern: each layer costs
/// every request a clone of the service stack and a boxed future, and the
/// single-record endpoint is measured per microsecond (`docs/benchmarks.md`).
pub fn layers(router: Router, limits: &EdgeLimits) -> Router {
    use tower_http::catch_panic::CatchPanicLayer;
    let edge = Edge {
        request_timeout: limits.request_timeout,
        per_address: PerAddress::new(limits.per_address_per_second),
    };
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(edge, around))
}

/// What [`around`] needs of the listener's limits.
#[derive(Debug, Clone)]
struct Edge {
    request_timeout: Duration,
    per_address: PerAddress,
}

/// Every request, in this order:
///
/// 1. counted in flight and timed per route template (`crate::metrics::Red`);
/// 2. its W3C `traceparent` continued or a trace started, the trace id in every
///    log line of the request (`crate::trace`), under a debug span with the
///    method and path only (headers hold the API key);
/// 3. refused 429 when its client address is over the per-address limit;
/// 4. answered 503 `unavailable` when not answered within the request timeout;
/// 5. its error, if any, rewritten as JSON ([`json_errors`]);
/// 6. counted with its final status and error code, and given the trace's
///    `traceparent`.
async fn around(State(edge): State<Edge>, request: Request, next: Next) -> Response {
    let red = crate::metrics::Red::start(&request);
    let here = crate::trace::here(&request);
    let span =
        tracing::debug_span!("request", method = %request.method(), path = %request.uri().path());
    let handling = async {
        if edge.per_address.refuses(&request) {
            return error_response(ErrorBody::from_code(ErrorCode::RateLimited));
        }
        match tokio::time::timeout(edge.request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                let limit = edge.request_timeout;
                tracing::warn!(?limit, "request not answered within the request timeout");
                error_response(ErrorBody::from_code(ErrorCode::Unavailable))
            }
        }
    };
    let mut response = json_errors(crate::trace::within(here, handling).instrument(span).await);
    if response.status().is_server_error() {
        tracing::error!(status = response.status().as_u16(), "request failed");
    }
    red.finish(&response);
    crate::trace::answer(here, &mut response);
    response
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_owned());
    tracing::error!(panic = %text, "handler panicked; answering 500 processing_error");
    let mut body = ErrorBody::from_code(ErrorCode::ProcessingError);
    body.message = "Internal error".to_owned();
    let mut response = error_response(body);
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// Every error the server emits is JSON (`docs/api.md` §3): the router's own
/// 404/405, extractor rejections and anything else a layer answers in plain
/// text are rewritten here, keeping their status and headers (`Allow`).
fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let body = match status {
        StatusCode::NOT_FOUND => ErrorBody {
            error_code: ErrorCode::NotFound,
            message: "Not found".to_owned(),
            parameters: None,
        },
        StatusCode::METHOD_NOT_ALLOWED => ErrorBody::from_code(ErrorCode::MethodNotAllowed),
        StatusCode::PAYLOAD_TOO_LARGE => ErrorBody::from_code(ErrorCode::PayloadTooLarge),
        StatusCode::REQUEST_TIMEOUT => ErrorBody::from_code(ErrorCode::RequestTimeout),
        StatusCode::TOO_MANY_REQUESTS => ErrorBody::from_code(ErrorCode::RateLimited),
        StatusCode::SERVICE_UNAVAILABLE => ErrorBody::from_code(ErrorCode::Unavailable),
        s if s.is_server_error() => {
            let mut body = ErrorBody::from_code(ErrorCode::ProcessingError);
            body.message = "Internal error".to_owned();
            body
        }
        _ => ErrorBody::from_code(ErrorCode::InvalidPayload),
    };
    let (parts, _) = response.into_parts();
    let mut json = error_response(body);
    *json.status_mut() = status;
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            json.headers_mut().insert(name, value.clone());
        }
    }
    json
}

/// Requests per second per client address, before authentication: the cheapest
/// refusal for one address flooding random keys.
#[derive(Debug, Clone)]
struct PerAddress(Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>);

impl PerAddress {
    fn new(per_second: u32) -> PerAddress {
        PerAddress(
            NonZeroU32::new(per_second)
                .map(|rate| Arc::new(RateLimiter::dashmap(Quota::per_second(rate)))),
        )
    }
}

impl PerAddress {
    /// Whether the request's client address is over its budget (counting this
    /// request when it is not).
    fn refuses(&self, request: &Request) -> bool {
        let Some(limiter) = &self.0 else {
            return false;
        };
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(ip) = peer
            && limiter.check_key(&ip).is_err()
        {
            return true;
        }
        // Keys of addresses that have been quiet long enough are dropped, so the
        // map does not grow with every address ever seen.
        if limiter.len() > 100_000 {
            limiter.retain_recent();
        }
        false
    }
}
