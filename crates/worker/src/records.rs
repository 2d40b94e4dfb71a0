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
use kyc_core::wire::{
    MAX_BATCH_BYTES, MAX_BATCH_RECORDS, ResultEventV1, SUBMISSION_BATCH_TYPE, SubmissionBatchV1,
    encode_batch,
};
use kyc_core::{ErrorCode, Rejection, id};
use kyc_store::submissions::Outcome;
use kyc_store::{Directory, StoreError};
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

/// The decision about a batch message.
#[derive(Debug)]
pub(crate) enum BatchDecision {
    /// One decision per record, in the batch's order.
    Records {
        records: Vec<RecordDecision>,
        /// The key that authenticated the message (to seal a dead-lettered record
        /// the way the batch was sealed).
        api_key: String,
        /// The batch came in the §7 envelope.
        encrypted: bool,
    },
    /// No valid API key: dead-lettered as a whole, `forbidden` (answered under
    /// an id from the nil project and the message's bytes).
    Forbidden { submission_id: Uuid, reply: ReplyTo },
    /// Not a batch at all (or too large): answered once, not stored.
    Refused(Option<Box<Announcement>>),
}

/// Decides about every record of a batch message. `Err` only when the
/// directory cannot answer (the worker batch is retried).
pub(crate) async fn decide_batch(
    properties: &BasicProperties,
    body: &[u8],
    body_limit: usize,
    directory: &Directory,
    prefix: &str,
    today: time::Date,
) -> Result<BatchDecision, StoreError> {
    let headers = headers::decode(properties);
    let reply = ReplyTo::of(properties, &headers, prefix);
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
        })))
    };
    if body.len() > MAX_BATCH_BYTES {
        return Ok(refuse(ErrorCode::PayloadTooLarge));
    }
    let (plain, encrypted) = match serde_json::from_slice::<EncryptedRequest>(body) {
        Ok(envelope) => match EnvelopeKey::from_api_key(api_key).decrypt_base64(&envelope.body) {
            Ok(plain) => (std::borrow::Cow::Owned(plain), true),
            Err(_) => return Ok(refuse(ErrorCode::InvalidPayload)),
        },
        Err(_) => (std::borrow::Cow::Borrowed(body), false),
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
                submission: submission.to_vec(),
            }),
        });
    }
    Ok(BatchDecision::Records {
        records,
        api_key: api_key.to_owned(),
        encrypted,
    })
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
/// queue: the original's properties (reply address, API key, timestamp) with
/// the record's key as `message_id` (what `kycctl dlq` lists and replays by),
/// and the reason and detail headers. Sealed in the §7 envelope if its batch was.
pub(crate) fn record_letter(
    original: &BasicProperties,
    source: &RecordSource,
    api_key: &str,
    encrypted: bool,
    detail: &str,
) -> (Vec<u8>, BasicProperties) {
    let body = encode_batch([(
        source.key.as_deref(),
        source.correlation_id.as_deref(),
        source.submission.as_slice(),
    )]);
    let body = if encrypted {
        kyc_core::envelope::encrypt_request(api_key, &body)
    } else {
        body
    };
    let mut table = FieldTable::default();
    if let Some(original) = original.headers() {
        for (name, value) in original.inner() {
            if !headers::is_broker_bookkeeping(name.as_str()) {
                table.insert(name.clone(), value.clone());
            }
        }
    }
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
    let key = source
        .key
        .clone()
        .unwrap_or_else(|| id::content_key(&source.submission));
    let mut properties = persistent()
        .with_type(SUBMISSION_BATCH_TYPE.into())
        .with_message_id(key.into())
        .with_headers(table);
    if let Some(reply_to) = original.reply_to() {
        properties = properties.with_reply_to(reply_to.clone());
    }
    if let Some(timestamp) = original.timestamp() {
        properties = properties.with_timestamp(*timestamp);
    }
    (body, properties)
}
