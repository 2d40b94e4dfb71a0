//! `/healthz`, `/readyz`, `/metrics` (`docs/api.md` §9).

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;

/// The process is alive and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready to accept submissions: the broker link is up (and not blocked), the
/// database answers, and the process is not draining.
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, &'static str) {
    if app.draining.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    if !app.publisher.link().is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "broker unavailable");
    }
    if !app.directory.store().ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
    }
    (StatusCode::OK, "ready")
}

/// Prometheus text format.
pub async fn metrics(State(app): State<AppState>) -> String {
    app.metrics.render()
}
