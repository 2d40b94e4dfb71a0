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
}

impl ApiError {
    pub fn code(code: ErrorCode) -> ApiError {
        ApiError::Rejected(Rejection::new(code))
    }

    pub fn error_code(&self) -> ErrorCode {
        match self {
            ApiError::Rejected(r) => r.code,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let rejection = match self {
            ApiError::Rejected(r) => r,
            ApiError::Unavailable(cause) => {
                tracing::warn!(error.message = %cause, "answering 503 unavailable");
                Rejection::new(ErrorCode::Unavailable)
            }
        };
        metrics::counter!("kyc_intake_errors_total", "code" => rejection.code.as_str())
            .increment(1);
        let status = StatusCode::from_u16(rejection.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(rejection.to_body())).into_response();
        if matches!(
            rejection.code,
            ErrorCode::Unavailable | ErrorCode::RateLimited
        ) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

/// The body of a plain error response, for handlers that build one directly.
pub fn body(code: ErrorCode) -> ErrorBody {
    ErrorBody::from_code(code)
}
