//! Batch messages (`kyc_core::wire::SubmissionBatchV1`): one delivery, many
//! records, each decided, stored and answered on its own.
//!
//! A batch message is a direct message (authenticated by `x-api-key`, like a
//! single one, `docs/api.md` §8) whose body is a batch — plain, or sealed as a
//! whole in the §7 envelope under the project's API key. Each record gets the id
//! `UUIDv5(project, key)` of its own idempotency key, exactly as a single message
//! with that `message_id` would, so ids never depend on how records were grouped.
//!
//! What cannot be decided per record (no valid key, a body that is no batch) is
//! decided for the message as a whole. A record the database refuses is not
//! retried with its batch: it alone is dead-lettered as a batch message of one
//! record (`handle`), so the rest of its batch is stored and acknowledged.

use crate::announce::Announcement;
use crate::decide::{ReplyTo, check, received_at};
use kyc_bus::lapin::BasicProperties;
use kyc_bus::lapin::types::{AMQPValue, FieldTable, LongString};
use kyc_bus::{headers, persistent};
use kyc_core::envelope::{EncryptedRequest, EnvelopeKey};
use kyc_core::submission::RawSubmission;
use kyc_core::transit::{SealedIds, TransitKeyring};
use kyc_core::wire::{
    BatchEncodingError, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, ResultEventV1, SUBMISSION_BATCH_TYPE,
    SubmissionBatchV1, decode_batch_encoding,
};
use kyc_core::{ErrorCode, Rejection, id};
use kyc_store::submissions::Outcome;
use kyc_store::{Directory, StoreError};
use std::borrow::Cow;
use time::OffsetDateTime;
use uuid::Uuid;

/// The idempotency key's name in messages, as the intake names its header.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Whether a delivery is a batch message (its AMQP `type`).
pub(crate) fn is_batch(properties: &BasicProperties) -> bool {
    properties.kind().as_ref().map(|k| k.as_str()) == Some(SUBMISSION_BATCH_TYPE)
}

/// What a dead-lettered record is rebuilt from: its key, correlation id and
/// plain submission bytes.
#[derive(Debug, Clone)]
pub(crate) struct RecordSource {
    pub(crate) key: Option<String>,
    pub(crate) correlation_id: Option<String>,
    /// The id an intake gave it (sealed batches only).
    pub(crate) submission_id: Option<Uuid>,
    pub(crate) submission: Vec<u8>,
}

/// The decision about one record of a batch.
#[derive(Debug)]
pub(crate) enum RecordDecision {
    /// Store this outcome, then announce it.
    Store {
        outcome: Box<Outcome>,
        reply: ReplyTo,
        source: Box<RecordSource>,
    },
    /// Out of bounds: announced, not stored.
    Refused(Box<Announcement>),
}

/// How a batch message was protected, so that a record of it is dead-lettered
/// the same way: nothing of it ever rests on the broker less protected.
#[derive(Debug, Clone)]
pub(crate) enum Sealing {
    /// A direct batch: authenticated by this API key, in the §7 envelope or not.
    Direct { api_key: String, encrypted: bool },
    /// An intake's batch, sealed under the transit key for this project and
    /// receive time.
    Transit {
        project_id: Uuid,
        received_at: OffsetDateTime,
    },
}

/// The decision about a batch message.
#[derive(Debug)]
pub(crate) enum BatchDecision {
    /// One decision per record, in the batch's order.
    Records {
        records: Vec<RecordDecision>,
        /// How the batch was protected.
        sealing: Sealing,
    },
    /// No valid API key: dead-lettered as a whole, `forbidden` (answered under
    /// an id from the nil project and the message's bytes).
    Forbidden { submission_id: Uuid, reply: ReplyTo },
    /// Not a batch at all (or too large): answered once, not stored.
    Refused(Option<Box<Announcement>>),
    /// An intake's sealed batch whose content cannot be read: dead-lettered
    /// whole ([`crate::dead_letter::DeadReason::Unreadable`]), never dropped,
    /// since the intake has answered 200 for it.
    Unreadable,
}

/// Decides about every record of a batch message. `Err` only when the
/// directory cannot answer (the worker batch is retried).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn decide_batch(
    properties: &BasicProperties,
    body: &[u8],
    body_limit: usize,
    directory: &Directory,
    transit: &TransitKeyring,
    prefix: &str,
    today: time::Date,
) -> Result<BatchDecision, StoreError> {
    let headers = headers::decode(properties);
    let reply = ReplyTo::of(properties, &headers, prefix);
    let encoding = properties.content_encoding().as_ref().map(|e| e.as_str());
    if let Some((ids, plain)) = open_sealed_batch(&headers, body, transit) {
        // An intake authenticated and validated this batch: trust its project
        // and its records' ids, as for a sealed single message (`decide`).
        let Some(project) = directory.project_by_id(ids.project_id).await? else {
            return Ok(BatchDecision::Forbidden {
                submission_id: ids.submission_id,
                reply,
            });
        };
        let Ok(plain) = decode_batch_encoding(encoding, Cow::Owned(plain)) else {
            return Ok(BatchDecision::Unreadable);
        };
        let Ok(batch) = SubmissionBatchV1::from_slice(&plain) else {
            return Ok(BatchDecision::Unreadable);
        };
        let mut records = Vec::with_capacity(batch.records.len());
        for record in batch.records {
            let submission = record.submission.get().as_bytes();
            let parsed = RawSubmission::from_slice(submission).and_then(|raw| raw.validate(today));
            let result = check(parsed, &project, directory).await?;
            let id = record.submission_id.unwrap_or_else(|| {
                id::submission_id(project.id, Some(&id::content_key(submission)))
            });
            records.push(RecordDecision::Store {
                outcome: Box::new(Outcome {
                    id,
                    project_id: project.id,
                    received_at: ids.received_at,
                    idempotency_key: record.key.clone(),
                    result,
                }),
                reply: ReplyTo {
                    queue: reply.queue.clone(),
                    correlation_id: record.correlation_id.clone(),
                    batch: true,
                },
                source: Box::new(RecordSource {
                    key: record.key,
                    correlation_id: record.correlation_id,
                    submission_id: Some(id),
                    submission: submission.to_vec(),
                }),
            });
        }
        return Ok(BatchDecision::Records {
            records,
            sealing: Sealing::Transit {
                project_id: project.id,
                received_at: ids.received_at,
            },
        });
    }
    let now = OffsetDateTime::now_utc();
    let project = match headers.api_key {
        Some(key) => directory.project_for_key(key).await?,
        None => None,
    };
    let (Some(project), Some(api_key)) = (project, headers.api_key) else {
        return Ok(BatchDecision::Forbidden {
            submission_id: id::submission_id(Uuid::nil(), Some(&id::content_key(body))),
            reply,
        });
    };
    // The whole message is answered once, under an id from its bytes, when it
    // cannot be read as a batch.
    let refuse = |code: ErrorCode| {
        let id = id::submission_id(project.id, Some(&id::content_key(body)));
        let event = ResultEventV1::rejected(id, project.id, &Rejection::new(code), now);
        BatchDecision::Refused(Some(Box::new(Announcement {
            event,
            reply: reply.clone(),
            grouped: false,
        })))
    };
    if body.len() > MAX_BATCH_BYTES {
        return Ok(refuse(ErrorCode::PayloadTooLarge));
    }
    // Compression comes before the envelope, so a compressed body in the
    // envelope opens to compressed bytes (and a compressed one without it is no
    // JSON: its first byte already tells).
    let (plain, encrypted) = match serde_json::from_slice::<EncryptedRequest>(body) {
        Ok(envelope) => match EnvelopeKey::from_api_key(api_key).decrypt_base64(&envelope.body) {
            Ok(plain) => (Cow::Owned(plain), true),
            Err(_) => return Ok(refuse(ErrorCode::InvalidPayload)),
        },
        Err(_) => (Cow::Borrowed(body), false),
    };
    let plain = match decode_batch_encoding(encoding, plain) {
        Ok(plain) => plain,
        Err(BatchEncodingError::TooLarge) => return Ok(refuse(ErrorCode::PayloadTooLarge)),
        Err(BatchEncodingError::Unreadable | BatchEncodingError::Unsupported) => {
            return Ok(refuse(ErrorCode::InvalidPayload));
        }
    };
    let Ok(batch) = SubmissionBatchV1::from_slice(&plain) else {
        return Ok(refuse(ErrorCode::InvalidPayload));
    };
    if batch.records.len() > MAX_BATCH_RECORDS {
        return Ok(refuse(ErrorCode::PayloadTooLarge));
    }
    let received_at = received_at(properties);
    let mut records = Vec::with_capacity(batch.records.len());
    for record in batch.records {
        let submission = record.submission.get().as_bytes();
        let reply = ReplyTo {
            queue: reply.queue.clone(),
            correlation_id: record.correlation_id.clone(),
            // A batch's results always travel as batch replies.
            batch: true,
        };
        let key = record.key.filter(|k| !k.is_empty());
        let bound = if submission.len() > body_limit {
            Some(Rejection::new(ErrorCode::PayloadTooLarge))
        } else if key
            .as_deref()
            .is_some_and(|k| !id::valid_idempotency_key(k))
        {
            Some(Rejection::invalid_format(IDEMPOTENCY_KEY))
        } else {
            None
        };
        if let Some(rejection) = bound {
            // As for a single message out of bounds (`bounds`): not stored, named
            // by its bytes, its key echoed only when within bounds.
            let id = id::submission_id(project.id, Some(&id::content_key(submission)));
            let mut event = ResultEventV1::rejected(id, project.id, &rejection, now);
            event.idempotency_key = key.filter(|k| id::valid_idempotency_key(k));
            records.push(RecordDecision::Refused(Box::new(Announcement {
                event,
                reply,
                grouped: true,
            })));
            continue;
        }
        let parsed = if !encrypted && project.encryption_required {
            Err(Rejection::new(ErrorCode::InvalidPayload))
        } else {
            RawSubmission::from_slice(submission).and_then(|raw| raw.validate(today))
        };
        let result = check(parsed, &project, directory).await?;
        let id = match &key {
            Some(key) => id::submission_id(project.id, Some(key)),
            None => id::submission_id(project.id, Some(&id::content_key(submission))),
        };
        records.push(RecordDecision::Store {
            outcome: Box::new(Outcome {
                id,
                project_id: project.id,
                received_at,
                idempotency_key: key.clone(),
                result,
            }),
            reply,
            source: Box::new(RecordSource {
                key,
                correlation_id: record.correlation_id,
                submission_id: None,
                submission: submission.to_vec(),
            }),
        });
    }
    Ok(BatchDecision::Records {
        records,
        sealing: Sealing::Direct {
            api_key: api_key.to_owned(),
            encrypted,
        },
    })
}

/// The ids and plain body of an intake's sealed batch: `None` unless the body
/// opens as a batch under the transit key its header names, with exactly the
/// ids of its headers.
fn open_sealed_batch<'h>(
    headers: &kyc_core::wire::SubmissionHeadersV2<'h>,
    body: &[u8],
    transit: &TransitKeyring,
) -> Option<(SealedIds<'h>, Vec<u8>)> {
    let key_id = headers.transit_key_id?;
    let ids = SealedIds {
        submission_id: headers.submission_id?,
        project_id: headers.project_id?,
        received_at: headers.received_at?,
        idempotency_key: headers.idempotency_key,
    };
    let plain = transit.open_batch(key_id, &ids, body)?;
    Some((ids, plain))
}

/// Why a record could not be stored, for the dead letter's
/// [`headers::DEAD_DETAIL`]: the SQLSTATE and constraint, never the database's
/// message (which may quote the row's values).
pub(crate) fn refusal_detail(error: &StoreError) -> String {
    match error {
        StoreError::Database(sqlx::Error::Database(db)) => {
            let mut detail = format!("sqlstate {}", db.code().unwrap_or_default());
            if let Some(constraint) = db.constraint() {
                detail.push_str(" constraint ");
                detail.push_str(constraint);
            }
            detail
        }
        StoreError::Database(_) => "database error".to_owned(),
        StoreError::NotFound(what) => format!("{what} not found"),
        other => other.to_string(),
    }
}

/// A record the database refused, as a batch message of its own for the dead
/// queue, protected as its batch was: a direct batch's record with the
/// original's properties (reply address, API key, timestamp), in the §7
/// envelope if its batch was; an intake batch's record sealed again under the
/// transit key, as a batch of one under its own id. `message_id` is the
/// record's key, else its id (what `kycctl dlq` lists and replays by); the
/// reason and detail headers say why.
pub(crate) fn record_letter(
    original: &BasicProperties,
    source: &RecordSource,
    sealing: &Sealing,
    transit: &TransitKeyring,
    detail: &str,
) -> (Vec<u8>, BasicProperties) {
    let plain = |with_id: bool| {
        let record = kyc_core::wire::BatchRecordV1 {
            key: source.key.clone(),
            correlation_id: source.correlation_id.clone(),
            submission_id: if with_id { source.submission_id } else { None },
            submission: serde_json::from_slice(&source.submission)
                .unwrap_or(serde_json::value::RawValue::NULL),
        };
        serde_json::to_vec(&SubmissionBatchV1 {
            records: vec![record],
        })
        .unwrap_or_default()
    };
    let mut table = FieldTable::default();
    let (body, message_id) = match sealing {
        Sealing::Direct { api_key, encrypted } => {
            if let Some(original) = original.headers() {
                for (name, value) in original.inner() {
                    if !headers::is_broker_bookkeeping(name.as_str()) {
                        table.insert(name.clone(), value.clone());
                    }
                }
            }
            let body = plain(false);
            let body = if *encrypted {
                kyc_core::envelope::encrypt_request(api_key, &body)
            } else {
                body
            };
            let key = source
                .key
                .clone()
                .unwrap_or_else(|| id::content_key(&source.submission));
            (body, key)
        }
        Sealing::Transit {
            project_id,
            received_at,
        } => {
            let id = source.submission_id.unwrap_or_else(Uuid::now_v7);
            let ids = SealedIds {
                submission_id: id,
                project_id: *project_id,
                received_at: *received_at,
                idempotency_key: None,
            };
            let sealed = transit.seal_batch(&ids, &plain(true));
            let wire = kyc_core::wire::SubmissionHeadersV2 {
                submission_id: Some(id),
                project_id: Some(*project_id),
                transit_key_id: Some(&sealed.key_id),
                received_at: Some(*received_at),
                ..Default::default()
            };
            table = headers::encode(&wire);
            (
                sealed.body,
                source.key.clone().unwrap_or_else(|| id.to_string()),
            )
        }
    };
    table.insert(
        headers::DEAD_REASON.into(),
        AMQPValue::LongString(LongString::from(
            crate::dead_letter::DeadReason::Unstorable.as_str(),
        )),
    );
    table.insert(
        headers::DEAD_DETAIL.into(),
        AMQPValue::LongString(LongString::from(detail)),
    );
    let mut properties = persistent()
        .with_type(SUBMISSION_BATCH_TYPE.into())
        .with_message_id(message_id.into())
        .with_headers(table);
    if let Sealing::Transit { .. } = sealing {
        properties = properties.with_content_type(kyc_core::wire::TRANSIT_CONTENT_TYPE.into());
    }
    if let Some(reply_to) = original.reply_to() {
        properties = properties.with_reply_to(reply_to.clone());
    }
    if let Some(timestamp) = original.timestamp() {
        properties = properties.with_timestamp(*timestamp);
    }
    (body, properties)
}
