//! The one place where failures become HTTP responses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kyc_bus::PublishError;
use kyc_core::{ErrorBody, ErrorCode, Rejection};
use kyc_store::StoreError;

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
    Unavailable(#[from] Unavailable),
    /// The worker rejected the submission while the client waited (`?wait`): its
    /// code and message, as stored.
    #[error("rejected by the worker: {}", .0.error_code)]
    Worker(ErrorBody),
}

/// Which dependency failed a request, with its error as the source.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The broker did not durably accept the submission (not connected, busy,
    /// nacked, returned, no confirm in time).
    #[error("publish: {0}")]
    Publish(#[from] PublishError),
    /// A database lookup failed, with nothing cached to answer from.
    #[error("{what} lookup: {source}")]
    Lookup {
        /// What was looked up: `project`, `admin`, `result`.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: StoreError,
    },
    /// The image store did not take or give an image (`docs/api.md` §16); the
    /// store's error, which names an object key at most.
    #[error("image store: {0}")]
    Images(String),
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> ApiError {
        ApiError::Unavailable(Unavailable::Publish(e))
    }
}

impl ApiError {
    /// A rejection with `code` and its standard message.
    pub fn code(code: ErrorCode) -> ApiError {
        ApiError::Rejected(Rejection::new(code))
    }

    /// A database lookup of `what` failed: 503 `unavailable`.
    pub fn lookup(what: &'static str, source: StoreError) -> ApiError {
        ApiError::Unavailable(Unavailable::Lookup { what, source })
    }

    /// The documented code this error is answered with.
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
            ApiError::Unavailable(e) => {
                // The whole chain for the operator; the client gets the opaque body.
                tracing::warn!(
                    error.message = %e,
                    error.cause_chain = ?e,
                    "answering 503 unavailable"
                );
                Rejection::new(ErrorCode::Unavailable).to_body()
            }
            ApiError::Worker(body) => body,
        };
        error_response(body)
    }
}

/// `{"errorCode", "message", "parameters"?}` with the code's status, counted by
/// code, with `Retry-After` where the contract sets one: the one way every error
/// of every route (and of the edge's middleware) is answered.
pub fn error_response(body: ErrorBody) -> Response {
    let code = body.error_code;
    metrics::counter!("kyc_intake_errors_total", "code" => code.as_str()).increment(1);
    let status = StatusCode::from_u16(code.http_status())
        .expect("every error code maps to a valid HTTP status");
    let mut response = (status, Json(body)).into_response();
    // For the request metrics (`metrics::Red`): the code, never the message.
    response.extensions_mut().insert(code);
    if matches!(code, ErrorCode::Unavailable | ErrorCode::RateLimited) {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::error::Error;

    #[test]
    fn an_unconfirmed_publish_keeps_its_cause() {
        let error = ApiError::from(PublishError::Nacked);
        let cause = error
            .source()
            .and_then(Error::source)
            .expect("the publish error is in the chain");
        assert!(cause.downcast_ref::<PublishError>().is_some());
    }

    #[tokio::test]
    async fn unavailable_answers_the_documented_opaque_body() {
        let response = ApiError::from(PublishError::Nacked).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static(RETRY_AFTER_SECONDS))
        );
        let body = response
            .into_body()
            .collect()
            .await
            .expect("an in-memory body")
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({"errorCode": "unavailable", "message": "Service unavailable"})
        );
    }
}
