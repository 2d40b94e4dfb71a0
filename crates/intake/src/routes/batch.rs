//! `POST /v3/submission/migration/batch` (`docs/api.md` §5a): many submissions in
//! one request, answered per record in input order.
//!
//! The body is a JSON array of submission objects, or NDJSON (one per line); in
//! the §7 envelope it is encrypted as a whole. Authentication, then the project's
//! rate limit counted in records, then size and count (413 beyond the batch
//! limits). Each record is validated at the edge exactly as the single-record
//! endpoint would validate it; a record that fails is answered at once and not
//! queued. The rest travel as transit-sealed batch messages
//! (`kyc_core::wire::SubmissionBatchV1`) on the bulk lane, all under one wait for
//! their confirms: only when every one is confirmed is the request answered 200;
//! otherwise nothing is promised (503).

use super::submit::{IDEMPOTENCY_KEY, MAX_WAIT_SECONDS, read_limited, wait_seconds};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kyc_bus::{Outgoing, headers, persistent};
use kyc_core::envelope::{EncryptedRequest, EncryptedResponse, EnvelopeKey};
use kyc_core::submission::RawSubmission;
use kyc_core::transit::SealedIds;
use kyc_core::wire::{
    BATCH_ZSTD, BatchRecordV1, EventKind, ReplyMode, SUBMISSION_BATCH_ROUTING_KEY,
    SUBMISSION_BATCH_TYPE, SubmissionBatchV1, SubmissionHeadersV2, TRANSIT_CONTENT_TYPE,
    batch_runs, compress_batch,
};
use kyc_core::{ErrorCode, Rejection, id};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Records per batch message the endpoint publishes at most (as `kycctl push`;
/// `docs/benchmarks.md`, "memory").
const RECORDS_PER_MESSAGE: usize = 200;

/// The batch endpoint's limits (settings `KYC__HTTP__BATCH_…`).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// The largest body (413 beyond).
    pub body_limit: usize,
    /// The most records (413 beyond).
    pub max_records: usize,
    /// Whether the batch messages' JSON is compressed before it is sealed
    /// ([`kyc_core::wire::BATCH_ZSTD`]).
    pub compress: bool,
}

/// `200 {"results": […]}`: one entry per record, in input order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// One per record, in input order.
    pub results: Vec<BatchResult>,
}

/// The answer for one record: its `submissionId` when it was queued (and, with
/// `?wait`, stored as accepted), or the error it was refused with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    /// The record's position in the request, from 0.
    pub index: usize,
    /// The id it is stored and announced under; absent when refused at the edge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submission_id: Option<Uuid>,
    /// With `?wait`: `accepted`, `rejected` (by the worker; with `errorCode`), or
    /// `pending` (the wait ran out; still queued). Absent without `?wait`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// Why the record was refused (`docs/api.md` §3).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub error_code: Option<ErrorCode>,
    /// The error message of `docs/api.md` §3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The fields concerned, when the error names any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<String>>,
}

impl BatchResult {
    fn queued(index: usize, id: Uuid) -> BatchResult {
        BatchResult {
            index,
            submission_id: Some(id),
            status: None,
            error_code: None,
            message: None,
            parameters: None,
        }
    }

    fn refused(index: usize, rejection: &Rejection) -> BatchResult {
        let body = rejection.to_body();
        BatchResult {
            index,
            submission_id: None,
            status: None,
            error_code: Some(body.error_code),
            message: Some(body.message),
            parameters: body.parameters,
        }
    }
}

/// The records of a body: a JSON array's elements, or NDJSON's non-blank lines
/// (a line that is no JSON is still a record, answered `invalid_payload`).
fn split_records(plain: &[u8]) -> Result<Vec<&[u8]>, Rejection> {
    let trimmed = plain.trim_ascii_start();
    if trimmed.first() == Some(&b'[') {
        let values: Vec<&RawValue> =
            serde_json::from_slice(plain).map_err(|_| Rejection::new(ErrorCode::InvalidPayload))?;
        return Ok(values.into_iter().map(|v| v.get().as_bytes()).collect());
    }
    Ok(plain
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .collect())
}

/// Whether a plain body is one JSON object that is not the envelope, sent as
/// anything but NDJSON: a JSON body is an array of records or the envelope
/// (`docs/api.md` §5a). A single record goes to the single-record endpoint, or as
/// a one-line `application/x-ndjson` body.
fn is_lone_object(body: &[u8], request_headers: &HeaderMap) -> bool {
    let ndjson = request_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/x-ndjson"));
    !ndjson && serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_ok()
}

/// `POST /v3/submission/migration/batch`.
pub async fn submit_batch(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (project, api_key) = app.authenticate(&request_headers).await?;
    let bytes = read_limited(body, app.batch.body_limit, app.body_timeout).await?;
    // The envelope covers the whole body.
    let (plain, encrypted) = match serde_json::from_slice::<EncryptedRequest>(&bytes) {
        Ok(envelope) => (
            EnvelopeKey::from_api_key(api_key).decrypt_base64(&envelope.body)?,
            true,
        ),
        Err(_) if project.encryption_required => {
            return Err(Rejection::new(ErrorCode::InvalidPayload).into());
        }
        Err(_) if is_lone_object(&bytes, &request_headers) => {
            return Err(Rejection::new(ErrorCode::InvalidPayload).into());
        }
        Err(_) => (bytes.to_vec(), false),
    };
    let records = split_records(&plain)?;
    if records.is_empty() {
        return Err(Rejection::new(ErrorCode::InvalidPayload).into());
    }
    if records.len() > app.batch.max_records {
        return Err(Rejection::new(ErrorCode::PayloadTooLarge).into());
    }
    let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
    if !app.rate_limit.allow_n(project.id, count) {
        return Err(ApiError::code(ErrorCode::RateLimited));
    }
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
    if project.disabled {
        return Err(ApiError::code(ErrorCode::InvalidProject));
    }

    // Edge validation, record by record; admins looked up once each.
    let today = kyc_core::submission::today_utc();
    let mut admins: HashMap<String, bool> = HashMap::new();
    let mut results: Vec<BatchResult> = Vec::with_capacity(records.len());
    // (index, id, record key, submission bytes) of the records to queue.
    let mut queued: Vec<(usize, Uuid, Option<String>, &[u8])> = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let checked = if record.len() > app.body_limit {
            Err(Rejection::new(ErrorCode::PayloadTooLarge))
        } else {
            RawSubmission::from_slice(record).and_then(|raw| raw.validate(today))
        };
        let submission = match checked {
            Ok(submission) => submission,
            Err(rejection) => {
                results.push(BatchResult::refused(index, &rejection));
                continue;
            }
        };
        let admin = submission.admin.as_str().to_owned();
        let is_admin = match admins.get(&admin) {
            Some(&known) => known,
            None => {
                let known = app
                    .directory
                    .is_admin(project.id, &admin)
                    .await
                    .map_err(|e| ApiError::lookup("admin", e))?;
                admins.insert(admin, known);
                known
            }
        };
        if !is_admin {
            results.push(BatchResult::refused(
                index,
                &Rejection::new(ErrorCode::InvalidAdmin),
            ));
            continue;
        }
        // With an Idempotency-Key each record's key is `<key>:<index>`: the same
        // request again names the same submissions.
        let key = idempotency_key.map(|k| format!("{k}:{index}"));
        let submission_id = id::submission_id(project.id, key.as_deref());
        results.push(BatchResult::queued(index, submission_id));
        queued.push((index, submission_id, key, record));
    }

    let waits: Vec<_> = match wait {
        Some(_) => queued
            .iter()
            .map(|(_, id, _, _)| Some(app.waiters.register(*id)))
            .collect(),
        None => Vec::new(),
    };
    let reply_to = wait.and_then(|_| app.waiters.reply_queue());
    publish(&app, project.id, &queued, reply_to.as_deref()).await?;
    metrics::counter!("kyc_intake_accepted_total").increment(queued.len() as u64);

    let mut status = StatusCode::OK;
    if let Some(seconds) = wait {
        let seconds = if reply_to.is_some() {
            seconds.min(MAX_WAIT_SECONDS)
        } else {
            0
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        for ((index, _, _, _), wait) in queued.iter().zip(waits) {
            let Some(wait) = wait else { continue };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let result = &mut results[*index];
            match wait.result(left).await {
                Some(event) if event.event == EventKind::Accepted => {
                    result.status = Some("accepted");
                }
                Some(event) => {
                    let code = event.error_code.unwrap_or(ErrorCode::ProcessingError);
                    result.status = Some("rejected");
                    result.error_code = Some(code);
                    result.message = Some(
                        event
                            .message
                            .unwrap_or_else(|| code.base_message().to_owned()),
                    );
                }
                None => {
                    result.status = Some("pending");
                    status = StatusCode::ACCEPTED;
                }
            }
        }
    }

    let body = BatchResponse { results };
    let json = serde_json::to_vec(&body).expect("our response structs always serialise");
    if encrypted {
        let sealed = EncryptedResponse {
            is_encrypted: true,
            data: EnvelopeKey::from_api_key(api_key).encrypt_to_base64(&json),
        };
        return Ok((status, Json(sealed)).into_response());
    }
    Ok((status, [(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// Publishes the queued records as transit-sealed batch messages on the bulk
/// lane, all in flight together; `Err` (503) unless every one is confirmed.
async fn publish(
    app: &AppState,
    project_id: Uuid,
    queued: &[(usize, Uuid, Option<String>, &[u8])],
    reply_to: Option<&str>,
) -> Result<(), ApiError> {
    if queued.is_empty() {
        return Ok(());
    }
    let received_at = OffsetDateTime::now_utc();
    let exchange = app.topology.submissions_exchange();
    let mut messages = Vec::new();
    // Messages of 200 records (as `kycctl push`), fewer when they pass 2 MiB:
    // a worker holds up to its bulk prefetch of them (`docs/operations.md`,
    // "Memory of the bulk lane").
    for chunk in batch_runs(queued, RECORDS_PER_MESSAGE, |(_, _, _, record)| {
        record.len()
    }) {
        let mut records = Vec::with_capacity(chunk.len());
        // The encoded batch, sized once: the records and room for each one's
        // key, ids and member names.
        let mut plain = Vec::with_capacity(
            chunk
                .iter()
                .map(|(_, _, key, record)| record.len() + key.as_ref().map_or(0, String::len) + 160)
                .sum(),
        );
        for (_, submission_id, key, record) in chunk {
            records.push(BatchRecordV1 {
                key: key.clone(),
                correlation_id: Some(submission_id.to_string()),
                submission_id: Some(*submission_id),
                // Validated above, so one JSON value.
                submission: serde_json::from_slice(record)
                    .map_err(|_| Rejection::new(ErrorCode::InvalidPayload))?,
            });
        }
        serde_json::to_writer(&mut plain, &SubmissionBatchV1 { records })
            .expect("a batch of JSON values serialises");
        // The batch's own id: only names the message (dead letters, logs).
        let ids = SealedIds {
            submission_id: Uuid::now_v7(),
            project_id,
            received_at,
            idempotency_key: None,
        };
        // Compressed, then sealed: encrypted bytes would not shrink.
        let (plain, encoding) = match app.batch.compress.then(|| compress_batch(&plain)).flatten() {
            Some(packed) => (packed, Some(BATCH_ZSTD)),
            None => (plain, None),
        };
        let sealed = app.transit.seal_batch(&ids, &plain);
        let wire = SubmissionHeadersV2 {
            submission_id: Some(ids.submission_id),
            project_id: Some(project_id),
            transit_key_id: Some(&sealed.key_id),
            received_at: Some(received_at),
            reply_mode: if reply_to.is_some() {
                ReplyMode::Batch
            } else {
                ReplyMode::PerMessage
            },
            ..SubmissionHeadersV2::default()
        };
        let mut properties = persistent()
            .with_type(SUBMISSION_BATCH_TYPE.into())
            .with_content_type(TRANSIT_CONTENT_TYPE.into())
            .with_headers(headers::encode(&wire));
        if let Some(queue) = reply_to {
            properties = properties.with_reply_to(queue.into());
        }
        if let Some(encoding) = encoding {
            properties = properties.with_content_encoding(encoding.into());
        }
        messages.push((sealed.body, properties));
    }
    let outgoing = messages
        .iter()
        .map(|(body, properties)| Outgoing {
            exchange: &exchange,
            routing_key: SUBMISSION_BATCH_ROUTING_KEY,
            payload: body,
            properties: properties.clone(),
            mandatory: true,
        })
        .collect();
    for outcome in app.publisher.publish_all(outgoing).await {
        outcome?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_records;

    #[test]
    fn arrays_and_ndjson_split_into_records() {
        let array = split_records(br#" [{"a":1}, {"b":[2]}] "#).expect("an array");
        assert_eq!(array, [&br#"{"a":1}"#[..], &br#"{"b":[2]}"#[..]]);
        let lines = split_records(b"{\"a\":1}\n\n  not json \n{\"b\":2}\n").expect("lines");
        assert_eq!(
            lines,
            [&br#"{"a":1}"#[..], &b"not json"[..], &br#"{"b":2}"#[..]]
        );
        assert!(split_records(b"[1, 2").is_err());
    }
}
