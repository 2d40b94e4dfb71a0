//! `POST /v3/submission/migration` (spec §1–§5, §7).
//!
//! Checks run in the order of spec §3: authentication → size → decryption/parse →
//! unknown parameters → missing fields → formats → project/admin. Only then is the
//! request body published, byte for byte as received, and only a broker confirm
//! turns into `200 success`.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use kyc_bus::{Outgoing, headers, persistent};
use kyc_core::envelope::{self, EncryptedResponse, EncryptionPolicy, EnvelopeKey};
use kyc_core::wire::{
    HEADER_API_KEY, HEADER_IDEMPOTENCY_KEY, HEADER_RECEIVED_AT, HEADER_SUBMISSION_ID,
    SUBMISSION_ROUTING_KEY,
};
use kyc_core::{ErrorCode, Rejection, id};
use serde::Serialize;
use std::time::Instant;
use time::OffsetDateTime;
use tracing::Instrument;
use uuid::Uuid;

/// The request header carrying a client's idempotency key (spec §5).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `200 {"message": "success", "submissionId": …}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuccessBody {
    /// `success`.
    pub message: &'static str,
    pub submission_id: Uuid,
}

pub async fn submit(
    State(app): State<AppState>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (project, api_key) = app.authenticate(&request_headers).await?;
    let bytes = read_limited(body, app.body_limit).await?;

    let idempotency_key = match request_headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .filter(|k| id::valid_idempotency_key(k))
                .ok_or_else(|| Rejection::invalid_format("Idempotency-Key"))?,
        ),
    };
    let submission_id = id::submission_id(project.id, idempotency_key);
    let span =
        tracing::info_span!("submission", submission_id = %submission_id, project_id = %project.id);

    async move {
        let policy = if project.encryption_required {
            EncryptionPolicy::Required
        } else {
            EncryptionPolicy::Optional
        };
        let opened = envelope::open(&bytes, api_key, policy)?;
        let submission = opened.raw.validate(kyc_core::submission::today_utc())?;
        if project.disabled {
            return Err(ApiError::code(ErrorCode::InvalidProject));
        }
        let is_admin = app
            .directory
            .is_admin(project.id, submission.admin.as_str())
            .await
            .map_err(|e| ApiError::Unavailable(format!("admin lookup: {e}")))?;
        if !is_admin {
            return Err(ApiError::code(ErrorCode::InvalidAdmin));
        }

        publish(&app, &bytes, api_key, submission_id, idempotency_key).await?;
        tracing::debug!("queued");
        metrics::counter!("kyc_intake_accepted_total").increment(1);

        let success = SuccessBody {
            message: "success",
            submission_id,
        };
        Ok(if opened.was_encrypted {
            Json(EncryptedResponse::seal(
                &EnvelopeKey::from_api_key(api_key),
                &success,
            ))
            .into_response()
        } else {
            Json(success).into_response()
        })
    }
    .instrument(span)
    .await
}

/// Reads the body up to `limit` bytes: over it is 413 `payload_too_large`; a body
/// that breaks off is `invalid_payload`.
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::code(ErrorCode::PayloadTooLarge))
        }
        Err(_) => Err(ApiError::code(ErrorCode::InvalidPayload)),
    }
}

/// Publishes the body as received, persistent and mandatory, and waits for the
/// broker's confirm; anything but a plain ack is 503 `unavailable`.
async fn publish(
    app: &AppState,
    body: &[u8],
    api_key: &str,
    submission_id: Uuid,
    idempotency_key: Option<&str>,
) -> Result<(), ApiError> {
    let id = submission_id.to_string();
    let received_at = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut pairs = vec![
        (HEADER_API_KEY, api_key),
        (HEADER_SUBMISSION_ID, id.as_str()),
        (HEADER_RECEIVED_AT, received_at.as_str()),
    ];
    if let Some(key) = idempotency_key {
        pairs.push((HEADER_IDEMPOTENCY_KEY, key));
    }
    let mut properties = persistent().with_headers(headers::table(pairs));
    if let Some(key) = idempotency_key {
        properties = properties.with_message_id(key.into());
    }
    let exchange = app.topology.submissions_exchange();
    let started = Instant::now();
    let outcome = app
        .publisher
        .publish(Outgoing {
            exchange: &exchange,
            routing_key: SUBMISSION_ROUTING_KEY,
            payload: body,
            properties,
            mandatory: true,
        })
        .await;
    metrics::histogram!("kyc_intake_publish_seconds").record(started.elapsed().as_secs_f64());
    outcome.map_err(|e| ApiError::Unavailable(format!("publish: {e}")))
}
