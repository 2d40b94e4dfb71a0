//! What to do with one message: the same rules as the intake, applied again
//! (a message may have come straight from `kycctl push` or any AMQP client).

use kyc_bus::headers;
use kyc_bus::lapin::BasicProperties;
use kyc_core::envelope::{self, EncryptionPolicy};
use kyc_core::seal::SealKey;
use kyc_core::wire::{
    HEADER_API_KEY, HEADER_IDEMPOTENCY_KEY, HEADER_INTAKE_SEAL, HEADER_PROJECT_ID,
    HEADER_RECEIVED_AT, HEADER_REPLY_MODE, HEADER_SUBMISSION_ID, REPLY_MODE_BATCH,
};
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
    fn of(properties: &BasicProperties) -> ReplyTo {
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
            batch: headers::get(properties, HEADER_REPLY_MODE) == Some(REPLY_MODE_BATCH),
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
    let reply = ReplyTo::of(properties);
    let idempotency_key = properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str().to_owned())
        .filter(|m| !m.is_empty())
        .or_else(|| headers::get(properties, HEADER_IDEMPOTENCY_KEY).map(str::to_owned));

    let api_key = headers::get(properties, HEADER_API_KEY);
    // A message an intake sealed was authenticated there: trust its project even if
    // the key has been rotated since (the client already holds a 200). Anything
    // else is authenticated by its key.
    let project = match sealed_project(properties, seal_key) {
        Some(project_id) => directory.project_by_id(project_id).await?,
        None => match api_key {
            Some(key) => directory.project_for_key(key).await?,
            None => None,
        },
    };
    let Some(project) = project else {
        return Ok(Decision::Forbidden {
            submission_id: submission_id(properties, Uuid::nil(), idempotency_key.as_deref(), body),
            idempotency_key,
            reply,
        });
    };
    // The envelope key derives from the API key the client encrypted with.
    let api_key = api_key.unwrap_or_default();

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
            id: submission_id(properties, project.id, idempotency_key.as_deref(), body),
            project_id: project.id,
            received_at: received_at(properties),
            idempotency_key,
            result,
        }),
        reply,
    })
}

/// The project id of a message whose intake seal verifies.
fn sealed_project(properties: &BasicProperties, seal_key: &SealKey) -> Option<Uuid> {
    let submission_id = Uuid::parse_str(headers::get(properties, HEADER_SUBMISSION_ID)?).ok()?;
    let project_id = Uuid::parse_str(headers::get(properties, HEADER_PROJECT_ID)?).ok()?;
    let seal = headers::get(properties, HEADER_INTAKE_SEAL)?;
    seal_key
        .verify(submission_id, project_id, seal)
        .then_some(project_id)
}

/// The id the intake already promised (header), else one derived from the
/// idempotency key (`message_id`), else from the message's bytes — never a fresh
/// random one, which would store a redelivered message twice.
fn submission_id(
    properties: &BasicProperties,
    project_id: Uuid,
    idempotency_key: Option<&str>,
    body: &[u8],
) -> Uuid {
    if let Some(id) =
        headers::get(properties, HEADER_SUBMISSION_ID).and_then(|s| Uuid::parse_str(s).ok())
    {
        return id;
    }
    match idempotency_key {
        Some(key) => id::submission_id(project_id, Some(key)),
        None => id::submission_id(project_id, Some(&id::content_key(body))),
    }
}

/// When the submission was received: the intake's header, else the AMQP
/// timestamp (seconds), else now.
fn received_at(properties: &BasicProperties) -> OffsetDateTime {
    headers::get(properties, HEADER_RECEIVED_AT)
        .and_then(|s| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
        .or_else(|| {
            properties
                .timestamp()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(i64::try_from(t).ok()?).ok())
        })
        .unwrap_or_else(OffsetDateTime::now_utc)
}
