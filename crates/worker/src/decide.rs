//! What to do with one message: the same rules as the intake, applied again
//! (a message may have come straight from `kycctl push` or any AMQP client).

use kyc_bus::lapin::BasicProperties;
use kyc_core::envelope::{self, EncryptionPolicy};
use kyc_core::seal::SealKey;
use kyc_core::wire::{ReplyMode, SubmissionHeadersV1};
use kyc_core::{ErrorCode, Rejection, id};
use kyc_store::submissions::Outcome;
use kyc_store::{Directory, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

/// Where a result should also be sent (spec §8 `reply_to` + `correlation_id`).
#[derive(Debug, Clone, Default)]
pub struct ReplyTo {
    pub queue: Option<String>,
    pub correlation_id: Option<String>,
    /// The sender takes its result inside a batch reply (`x-reply-mode: batch`).
    pub batch: bool,
}

impl ReplyTo {
    fn of(properties: &BasicProperties, headers: &SubmissionHeadersV1<'_>) -> ReplyTo {
        ReplyTo {
            queue: properties
                .reply_to()
                .as_ref()
                .map(|q| q.as_str().to_owned())
                .filter(|q| !q.is_empty()),
            correlation_id: properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str().to_owned()),
            batch: headers.reply_mode == ReplyMode::Batch,
        }
    }
}

/// The decision for one message.
#[derive(Debug)]
pub enum Decision {
    /// Store this outcome (accepted or rejected), then announce it.
    Store {
        outcome: Box<Outcome>,
        reply: ReplyTo,
    },
    /// No valid API key: nothing can be stored (a row belongs to a project), but
    /// a requester waiting on `reply_to` still learns `forbidden`.
    Forbidden {
        submission_id: Uuid,
        idempotency_key: Option<String>,
        reply: ReplyTo,
    },
}

/// Decides about one message. `Err` only for transient trouble (the directory
/// could not reach the database and had nothing cached): the batch is retried.
pub async fn decide(
    properties: &BasicProperties,
    body: &[u8],
    directory: &Directory,
    seal_key: &SealKey,
    today: time::Date,
) -> Result<Decision, StoreError> {
    // The one place a delivery's headers are read.
    let headers = kyc_bus::headers::decode(properties);
    let reply = ReplyTo::of(properties, &headers);
    let idempotency_key = properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str().to_owned())
        .filter(|m| !m.is_empty())
        .or_else(|| headers.idempotency_key.map(str::to_owned));

    // A message an intake sealed was authenticated there: trust its project even if
    // the key has been rotated since (the client already holds a 200). Anything
    // else is authenticated by its key.
    let project = match sealed_project(&headers, seal_key) {
        Some(project_id) => directory.project_by_id(project_id).await?,
        None => match headers.api_key {
            Some(key) => directory.project_for_key(key).await?,
            None => None,
        },
    };
    let forbidden = |idempotency_key: Option<String>, reply: ReplyTo| Decision::Forbidden {
        submission_id: submission_id(&headers, Uuid::nil(), idempotency_key.as_deref(), body),
        idempotency_key,
        reply,
    };
    let Some(project) = project else {
        return Ok(forbidden(idempotency_key, reply));
    };
    // The envelope key derives from the API key the client encrypted with. A
    // sealed message without one cannot be opened by its sender's key, so it is
    // refused like any message without a key.
    let Some(api_key) = headers.api_key else {
        return Ok(forbidden(idempotency_key, reply));
    };

    let policy = if project.encryption_required {
        EncryptionPolicy::Required
    } else {
        EncryptionPolicy::Optional
    };
    // Spec §3 order: payload and field checks first, then project, then admin.
    let mut result =
        envelope::open(body, api_key, policy).and_then(|opened| opened.raw.validate(today));
    if result.is_ok() && project.disabled {
        result = Err(Rejection::new(ErrorCode::InvalidProject));
    }
    if let Ok(submission) = &result
        && !directory
            .is_admin(project.id, submission.admin.as_str())
            .await?
    {
        result = Err(Rejection::new(ErrorCode::InvalidAdmin));
    }

    Ok(Decision::Store {
        outcome: Box::new(Outcome {
            id: submission_id(&headers, project.id, idempotency_key.as_deref(), body),
            project_id: project.id,
            received_at: received_at(properties, &headers),
            idempotency_key,
            result,
        }),
        reply,
    })
}

/// The project id of a message whose intake seal verifies.
fn sealed_project(headers: &SubmissionHeadersV1<'_>, seal_key: &SealKey) -> Option<Uuid> {
    let project_id = headers.project_id?;
    seal_key
        .verify(headers.submission_id?, project_id, headers.intake_seal?)
        .then_some(project_id)
}

/// The id the intake already promised (header), else one derived from the
/// idempotency key (`message_id`), else from the message's bytes — never a fresh
/// random one, which would store a redelivered message twice.
fn submission_id(
    headers: &SubmissionHeadersV1<'_>,
    project_id: Uuid,
    idempotency_key: Option<&str>,
    body: &[u8],
) -> Uuid {
    if let Some(id) = headers.submission_id {
        return id;
    }
    match idempotency_key {
        Some(key) => id::submission_id(project_id, Some(key)),
        None => id::submission_id(project_id, Some(&id::content_key(body))),
    }
}

/// When the submission was received: the intake's header, else the AMQP
/// timestamp (seconds), else now.
fn received_at(properties: &BasicProperties, headers: &SubmissionHeadersV1<'_>) -> OffsetDateTime {
    headers
        .received_at
        .or_else(|| {
            properties
                .timestamp()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(i64::try_from(t).ok()?).ok())
        })
        .unwrap_or_else(OffsetDateTime::now_utc)
}
