//! `POST /v3/submission/migration` (`docs/api.md` §1–§5, §7).
//!
//! Checks run in the order of `docs/api.md` §3: authentication (then the project's rate
//! limit) → size → decryption/parse →
//! unknown parameters → missing fields → formats → project/admin. Only then is the
//! validated body published — plain JSON (decrypted if the client used the
//! envelope), sealed under the transit key with the submission id, project,
//! receive time and idempotency key bound to it, and no API key — and only a
//! broker confirm turns into `200 success`.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use kyc_bus::{Outgoing, persistent};
use kyc_core::envelope::{self, EncryptedResponse, EncryptionPolicy, EnvelopeKey};
use kyc_core::transit::SealedIds;
use kyc_core::wire::{EventKind, ReplyMode, SUBMISSION_ROUTING_KEY, TRANSIT_V2_CONTENT_TYPE};
use kyc_core::{ErrorBody, ErrorCode, Rejection, id};
use serde::Serialize;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tracing::Instrument;
use uuid::Uuid;

/// The request header carrying a client's idempotency key (`docs/api.md` §5).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `200 {"message": "success", "submissionId": …}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuccessBody {
    /// `success`.
    pub message: &'static str,
    /// The id the submission is stored and announced under.
    pub submission_id: Uuid,
}

/// `202 {"message": "accepted", "submissionId": …}`: `?wait` ran out; still queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedBody {
    /// `accepted`.
    pub message: &'static str,
    /// The id the submission is stored and announced under.
    pub submission_id: Uuid,
}

/// The longest `?wait` (`docs/api.md` §5).
pub const MAX_WAIT_SECONDS: u64 = 30;

/// `POST /v3/submission/migration`: authenticates, validates and publishes one
/// submission, answering only after the broker confirmed it (`docs/api.md` §5).
pub async fn submit(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (project, api_key) = app.authenticate(&request_headers).await?;
    // Right after authentication: the cheapest refusal for a flooding client.
    if !app.rate_limit.allow(project.id) {
        return Err(ApiError::code(ErrorCode::RateLimited));
    }
    let bytes = read_limited(body, app.body_limit, app.body_timeout).await?;
    let policy = if project.encryption_required {
        EncryptionPolicy::Required
    } else {
        EncryptionPolicy::Optional
    };
    let mut opened = envelope::open(&bytes, api_key, policy)?;
    let submission = std::mem::take(&mut opened.raw).validate(kyc_core::submission::today_utc())?;
    // The request's own options are checked with the body's formats: after them,
    // before project and admin.
    let wait = wait_seconds(query.as_deref())?;
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
        if project.disabled {
            return Err(ApiError::code(ErrorCode::InvalidProject));
        }
        let is_admin = app
            .directory
            .is_admin(project.id, submission.admin.as_str())
            .await
            .map_err(|e| ApiError::lookup("admin", e))?;
        if !is_admin {
            return Err(ApiError::code(ErrorCode::InvalidAdmin));
        }

        // Register before publishing, so a fast worker's reply cannot be missed.
        let waiting = wait.map(|seconds| (seconds, app.waiters.register(submission_id)));
        let reply_to = waiting.as_ref().and_then(|_| app.waiters.reply_queue());
        let message = Message {
            body: opened.plain(&bytes),
            submission_id,
            project_id: project.id,
            idempotency_key,
            reply_to: reply_to.clone(),
        };
        publish(&app, message).await?;
        tracing::debug!("queued");
        metrics::counter!("kyc_intake_accepted_total").increment(1);

        let respond = |status: StatusCode, body: &dyn erased::Body| -> Response {
            if opened.was_encrypted {
                let sealed = EncryptedResponse {
                    is_encrypted: true,
                    data: EnvelopeKey::from_api_key(api_key).encrypt_to_base64(&body.to_json()),
                };
                (status, Json(sealed)).into_response()
            } else {
                let json = [(header::CONTENT_TYPE, "application/json")];
                (status, json, body.to_json()).into_response()
            }
        };
        let success = SuccessBody {
            message: "success",
            submission_id,
        };
        let Some((seconds, wait)) = waiting else {
            return Ok(respond(StatusCode::OK, &success));
        };
        // Without a reply queue (reconnecting) no result can reach us: waiting
        // would only delay the same 202.
        let seconds = if reply_to.is_some() { seconds } else { 0 };
        match wait.result(Duration::from_secs(seconds)).await {
            Some(event) if event.event == EventKind::Accepted => {
                Ok(respond(StatusCode::OK, &success))
            }
            Some(event) => Err(ApiError::Worker(ErrorBody {
                error_code: event.error_code.unwrap_or(ErrorCode::ProcessingError),
                message: event
                    .message
                    .unwrap_or_else(|| ErrorCode::ProcessingError.base_message().to_owned()),
                parameters: None,
            })),
            None => Ok(respond(
                StatusCode::ACCEPTED,
                &AcceptedBody {
                    message: "accepted",
                    submission_id,
                },
            )),
        }
    }
    .instrument(span)
    .await
}

/// `?wait=<1..30>`; absent is no waiting. Other query parameters are ignored.
pub(crate) fn wait_seconds(query: Option<&str>) -> Result<Option<u64>, Rejection> {
    let Some(query) = query else { return Ok(None) };
    let Some(value) = query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find_map(|(k, v)| (k == "wait").then_some(v))
    else {
        return Ok(None);
    };
    value
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=MAX_WAIT_SECONDS).contains(s))
        .map(Some)
        .ok_or_else(|| Rejection::invalid_format("wait"))
}

/// Serialising to JSON behind a trait object, so one closure can answer with
/// either success body, plain or encrypted.
mod erased {
    pub trait Body {
        fn to_json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Body for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).expect("our response structs always serialise")
        }
    }
}

/// Reads the body up to `limit` bytes: over it is 413 `payload_too_large`; a body
/// that breaks off is `invalid_payload`.
pub(crate) async fn read_limited(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let Ok(read) = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await else {
        return Err(ApiError::code(ErrorCode::RequestTimeout));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::code(ErrorCode::PayloadTooLarge))
        }
        Err(_) => Err(ApiError::code(ErrorCode::InvalidPayload)),
    }
}

/// What the intake publishes for one accepted request.
struct Message<'a> {
    /// The request's plain JSON (decrypted if it came in the envelope).
    body: &'a [u8],
    submission_id: Uuid,
    project_id: Uuid,
    idempotency_key: Option<&'a str>,
    reply_to: Option<String>,
}

/// Publishes the body sealed under the current transit key, persistent and
/// mandatory, and waits for the broker's confirm; anything but a plain ack is 503
/// `unavailable`.
async fn publish(app: &AppState, message: Message<'_>) -> Result<(), ApiError> {
    let ids = SealedIds {
        submission_id: message.submission_id,
        project_id: message.project_id,
        received_at: OffsetDateTime::now_utc(),
        idempotency_key: message.idempotency_key,
    };
    // Waiting requests share one reply queue: a worker's batch answers them with
    // one message.
    let reply_mode = if message.reply_to.is_some() {
        ReplyMode::Batch
    } else {
        ReplyMode::PerMessage
    };
    // Transit version 2: ids, reply mode and trace (which the worker continues,
    // `crate::trace`) in the sealed body's authenticated prefix, no header
    // table — headers cost the broker a quarter of its publish rate. No API
    // key: the message is authenticated by its seal.
    let sealed = app
        .transit
        .seal_framed(&ids, reply_mode, crate::trace::current(), message.body);
    let mut properties = persistent().with_content_type(TRANSIT_V2_CONTENT_TYPE.into());
    if let Some(key) = message.idempotency_key {
        properties = properties.with_message_id(key.into());
    }
    if let Some(queue) = message.reply_to {
        properties = properties
            .with_reply_to(queue.into())
            .with_correlation_id(message.submission_id.to_string().into());
    }
    let exchange = app.topology.submissions_exchange();
    let started = Instant::now();
    let outcome = app
        .publisher
        .publish(Outgoing {
            exchange: &exchange,
            routing_key: SUBMISSION_ROUTING_KEY,
            payload: &sealed,
            properties,
            mandatory: true,
        })
        .await;
    metrics::histogram!("kyc_intake_publish_seconds").record(started.elapsed().as_secs_f64());
    outcome.map_err(ApiError::from)
}
