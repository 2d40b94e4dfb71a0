//! The one place where failures become HTTP responses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kyc_core::{ErrorBody, ErrorCode, Rejection};

/// Seconds a client should wait before retrying a 503 or 429.
const RETRY_AFTER_SECONDS: &str = "1";

/// Every way a request can fail, each answered with a documented code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A contract rejection (`invalid_payload`, `missing_data`, `invalid_format`,
    /// `forbidden`, …): its own status and body.
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// A dependency is away or saturated (broker unconfirmed, database needed but
    /// unreachable): 503 `unavailable` with `Retry-After`. The cause is logged,
    /// never sent.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The worker rejected the submission while the client waited (`?wait`): its
    /// code and message, as stored.
    #[error("rejected by the worker: {}", .0.error_code)]
    Worker(ErrorBody),
}

impl ApiError {
    pub fn code(code: ErrorCode) -> ApiError {
        ApiError::Rejected(Rejection::new(code))
    }

    pub fn error_code(&self) -> ErrorCode {
        match self {
            ApiError::Rejected(r) => r.code,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Worker(body) => body.error_code,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self {
            ApiError::Rejected(r) => r.to_body(),
            ApiError::Unavailable(cause) => {
                tracing::warn!(error.message = %cause, "answering 503 unavailable");
                Rejection::new(ErrorCode::Unavailable).to_body()
            }
            ApiError::Worker(body) => body,
        };
        let code = body.error_code;
        metrics::counter!("kyc_intake_errors_total", "code" => code.as_str()).increment(1);
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(body)).into_response();
        if matches!(code, ErrorCode::Unavailable | ErrorCode::RateLimited) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}
