//! What to do with one message: the same rules as the intake, applied again
//! (a message may have come straight from `kycctl push` or any AMQP client).
//!
//! Two kinds of message, told apart by whether the body opens under a transit
//! key (`kyc_core::transit`):
//!
//! - **intake messages** open under a key of the worker's keyring, with their ids
//!   bound as associated data: in the body's prefix (transit version 2, what
//!   intakes send) or in headers (version 1, what they sent before). Only then
//!   are submission id, project, receive time and idempotency key believed: the
//!   intake authenticated the client, and the seal proves the ids are the
//!   intake's.
//! - **direct messages** (anything else, including a seal that does not open) are
//!   authenticated by `x-api-key`; their id, project and time headers are ignored,
//!   and the submission id derives from the authenticated project and
//!   `message_id` (or the body's bytes).

use kyc_bus::lapin::BasicProperties;
use kyc_core::envelope::{self, EncryptionPolicy};
use kyc_core::submission::RawSubmission;
use kyc_core::transit::{SealedIds, TransitKeyring};
use kyc_core::wire::{ReplyMode, SubmissionHeadersV2, TRANSIT_V2_CONTENT_TYPE};
use kyc_core::{ErrorCode, Rejection, Submission, id};
use kyc_store::submissions::Outcome;
use kyc_store::{Directory, Project, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

/// Where a result should also be sent (`docs/api.md` §8 `reply_to` + `correlation_id`).
#[derive(Debug, Clone, Default)]
pub struct ReplyTo {
    /// The message's `reply_to` queue; `None`: no reply asked for.
    pub queue: Option<String>,
    /// The message's `correlation_id`, echoed on the reply.
    pub correlation_id: Option<String>,
    /// The sender takes its result inside a batch reply (`x-reply-mode: batch`).
    pub batch: bool,
}

impl ReplyTo {
    /// The message's reply address; a `reply_to` outside [`reply_queue_allowed`]
    /// is dropped (and counted in `kyc_worker_replies_refused_total`).
    pub(crate) fn of(
        properties: &BasicProperties,
        headers: &SubmissionHeadersV2<'_>,
        prefix: &str,
    ) -> ReplyTo {
        let queue = properties
            .reply_to()
            .as_ref()
            .map(|q| q.as_str())
            .filter(|q| !q.is_empty());
        let queue = match queue {
            Some(q) if reply_queue_allowed(q, prefix) => Some(q.to_owned()),
            Some(_) => {
                metrics::counter!("kyc_worker_replies_refused_total").increment(1);
                None
            }
            None => None,
        };
        ReplyTo {
            queue,
            correlation_id: properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str().to_owned()),
            batch: headers.reply_mode == ReplyMode::Batch,
        }
    }
}

/// Whether a worker sends replies to `queue`: server-named queues (`amq.gen-…`),
/// RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to…`) and `<prefix>.reply.*`.
/// Any other name could be another component's queue, reachable through the
/// default exchange; it gets no reply.
pub fn reply_queue_allowed(queue: &str, prefix: &str) -> bool {
    queue.starts_with("amq.gen-")
        || queue.starts_with("amq.rabbitmq.reply-to")
        || queue
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(".reply."))
            .is_some_and(|name| !name.is_empty())
}

/// The decision for one message.
#[derive(Debug)]
pub enum Decision {
    /// Store this outcome (accepted or rejected), then announce it.
    Store {
        /// The row to store and the event it becomes.
        outcome: Box<Outcome>,
        /// Where the result should also go.
        reply: ReplyTo,
    },
    /// No valid API key: nothing can be stored (a row belongs to a project), but
    /// a requester waiting on `reply_to` still learns `forbidden`.
    Forbidden {
        /// Derived under the nil project from the idempotency key or the body, so a
        /// redelivery gets the same id.
        submission_id: Uuid,
        /// The message's `message_id`, echoed in the `forbidden` event.
        idempotency_key: Option<String>,
        /// Where the `forbidden` result should go.
        reply: ReplyTo,
    },
}

/// Decides about one message. `Err` only for transient trouble (the directory
/// could not reach the database and had nothing cached): the batch is retried.
/// `prefix` is the topology's prefix (for the allowed reply queues).
pub async fn decide(
    properties: &BasicProperties,
    body: &[u8],
    directory: &Directory,
    transit: &TransitKeyring,
    prefix: &str,
    today: time::Date,
) -> Result<Decision, StoreError> {
    // The one place a delivery's headers are read: from the header table, or
    // from the prefix of a transit version 2 body.
    let headers = kyc_bus::headers::decode_message(properties, body);
    let reply = ReplyTo::of(properties, &headers, prefix);

    if let Some((ids, plain)) = open_sealed(properties, &headers, body, transit) {
        // An intake authenticated this message: trust its project even if the
        // key has been rotated since (the client already holds a 200).
        let idempotency_key = ids.idempotency_key.map(str::to_owned);
        let Some(project) = directory.project_by_id(ids.project_id).await? else {
            return Ok(Decision::Forbidden {
                submission_id: ids.submission_id,
                idempotency_key,
                reply,
            });
        };
        // The intake already opened the client's envelope and applied the
        // project's encryption policy; the sealed body is plain JSON.
        let parsed = RawSubmission::from_slice(&plain).and_then(|raw| raw.validate(today));
        let result = check(parsed, &project, directory).await?;
        return Ok(Decision::Store {
            outcome: Box::new(Outcome {
                id: ids.submission_id,
                project_id: project.id,
                received_at: ids.received_at,
                idempotency_key,
                result,
            }),
            reply,
        });
    }

    // A direct message: only `message_id` names it; the id, project, time and
    // idempotency headers are the intake's and are not believed here.
    let idempotency_key = properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str().to_owned())
        .filter(|m| !m.is_empty());
    let project = match headers.api_key {
        Some(key) => directory.project_for_key(key).await?,
        None => None,
    };
    let (Some(project), Some(api_key)) = (project, headers.api_key) else {
        return Ok(Decision::Forbidden {
            submission_id: submission_id(Uuid::nil(), idempotency_key.as_deref(), body),
            idempotency_key,
            reply,
        });
    };
    let policy = if project.encryption_required {
        EncryptionPolicy::Required
    } else {
        EncryptionPolicy::Optional
    };
    let parsed =
        envelope::open(body, api_key, policy).and_then(|opened| opened.raw.validate(today));
    let result = check(parsed, &project, directory).await?;
    Ok(Decision::Store {
        outcome: Box::new(Outcome {
            id: submission_id(project.id, idempotency_key.as_deref(), body),
            project_id: project.id,
            received_at: received_at(properties),
            idempotency_key,
            result,
        }),
        reply,
    })
}

/// Spec §3 order after the payload and field checks: project, then admin.
pub(crate) async fn check(
    parsed: Result<Submission, Rejection>,
    project: &Project,
    directory: &Directory,
) -> Result<Result<Submission, Rejection>, StoreError> {
    let mut result = parsed;
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
    Ok(result)
}

/// The authenticated ids and the plain body of an intake message: `None` unless
/// the body opens under a transit key — version 2 with the ids of its own
/// prefix, version 1 under the key its header names with exactly the ids of its
/// headers.
fn open_sealed<'h>(
    properties: &BasicProperties,
    headers: &SubmissionHeadersV2<'h>,
    body: &'h [u8],
    transit: &TransitKeyring,
) -> Option<(SealedIds<'h>, Vec<u8>)> {
    if properties.content_type().as_ref().map(|c| c.as_str()) == Some(TRANSIT_V2_CONTENT_TYPE) {
        return transit
            .open_framed(body)
            .map(|(frame, plain)| (frame.ids, plain));
    }
    let key_id = headers.transit_key_id?;
    let ids = SealedIds {
        submission_id: headers.submission_id?,
        project_id: headers.project_id?,
        received_at: headers.received_at?,
        idempotency_key: headers.idempotency_key,
    };
    let plain = transit.open(key_id, &ids, body)?;
    Some((ids, plain))
}

/// A direct message's id: derived from its project and idempotency key
/// (`message_id`), else from its bytes — never a fresh random one, which would
/// store a redelivered message twice.
fn submission_id(project_id: Uuid, idempotency_key: Option<&str>, body: &[u8]) -> Uuid {
    match idempotency_key {
        Some(key) => id::submission_id(project_id, Some(key)),
        None => id::submission_id(project_id, Some(&id::content_key(body))),
    }
}

/// When a direct message was received: its AMQP timestamp (seconds), else now.
pub(crate) fn received_at(properties: &BasicProperties) -> OffsetDateTime {
    properties
        .timestamp()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(i64::try_from(t).ok()?).ok())
        .unwrap_or_else(OffsetDateTime::now_utc)
}

#[cfg(test)]
mod tests {
    use super::reply_queue_allowed;

    #[test]
    fn only_private_and_prefixed_reply_queues_are_allowed() {
        for q in [
            "amq.gen-JzTY20BRgKO-HjmUJj0wLg",
            "amq.rabbitmq.reply-to",
            "amq.rabbitmq.reply-to.g1h2AA==",
            "kyc.reply.push-1",
        ] {
            assert!(reply_queue_allowed(q, "kyc"), "{q}");
        }
        for q in [
            "kyc.submissions",
            "kyc.submissions.dead",
            "kyc.reply.",
            "kycx.reply.a",
            "other.reply.a",
            "amq.direct",
            "billing",
        ] {
            assert!(!reply_queue_allowed(q, "kyc"), "{q}");
        }
    }
}
