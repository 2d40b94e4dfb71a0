//! What a message may be before it is decided about at all (`docs/api.md` §8, "Bounds").
//!
//! The intake refuses a body over `http.body_limit_bytes` and an `Idempotency-Key`
//! that is not 1–200 printable ASCII characters. A direct publisher passes neither
//! check, so the worker applies the same bounds first: a message that breaks one
//! is not stored, its sender learns why (a rejection event, and a reply when it
//! asked for one) and it is acknowledged. Nothing of such a message is copied into
//! an event but ids: the idempotency key only when it is within bounds.
//!
//! `correlation_id` and `reply_to` are AMQP short strings (at most 255 bytes), so
//! the protocol bounds them already.

use crate::announce::Announcement;
use crate::decide::ReplyTo;
use kyc_bus::lapin::BasicProperties;
use kyc_core::transit::SEAL_OVERHEAD;
use kyc_core::wire::ResultEventV1;
use kyc_core::{ErrorCode, Rejection, id};
use kyc_store::{Directory, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

/// The idempotency key's name in messages, as the intake names its header.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// What the bounds say about one message.
#[derive(Debug)]
pub(crate) enum Screened {
    /// Within bounds: decide about it as usual.
    Pass,
    /// Refused: announce this (if anything), store nothing, acknowledge.
    Refused(Option<Box<Announcement>>),
}

/// The first bound a message breaks, in the intake's order: body size, then the
/// idempotency key (`message_id`; the `x-idempotency-key` header counts only on
/// an intake's sealed message, whose key the intake checked). The body may be
/// [`SEAL_OVERHEAD`] bytes longer than the HTTP limit: an intake's body at the
/// limit, sealed, is that much longer.
pub(crate) fn check(
    properties: &BasicProperties,
    body: &[u8],
    body_limit: usize,
) -> Result<(), Rejection> {
    if body.len() > body_limit + SEAL_OVERHEAD {
        return Err(Rejection::new(ErrorCode::PayloadTooLarge));
    }
    let message_id = properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str())
        .filter(|m| !m.is_empty());
    match message_id {
        Some(key) if !id::valid_idempotency_key(key) => {
            Err(Rejection::invalid_format(IDEMPOTENCY_KEY))
        }
        _ => Ok(()),
    }
}

/// Applies [`check`]; for a refused message, finds its project by `x-api-key`
/// (authentication comes first, `docs/api.md` §3: an unknown key is `forbidden`) and
/// builds its rejection event. `Err` only when the directory cannot answer.
pub(crate) async fn screen(
    properties: &BasicProperties,
    body: &[u8],
    body_limit: usize,
    directory: &Directory,
    prefix: &str,
) -> Result<Screened, StoreError> {
    let headers = kyc_bus::headers::decode(properties);
    let Err(rejection) = check(properties, body, body_limit) else {
        return Ok(Screened::Pass);
    };
    let project = match headers.api_key {
        Some(key) => directory.project_for_key(key).await?,
        None => None,
    };
    let reply = ReplyTo::of(properties, &headers, prefix);
    let (project_id, rejection) = match &project {
        Some(project) => (project.id, rejection),
        None if reply.queue.is_none() => return Ok(Screened::Refused(None)),
        None => (Uuid::nil(), Rejection::new(ErrorCode::Forbidden)),
    };
    // Not stored, so the id only has to name the message for its sender: one from
    // its bytes in its own project (id headers are no one's word on a message not
    // yet opened, `docs/api.md` §8).
    let submission_id = id::submission_id(project_id, Some(&id::content_key(body)));
    let mut event = ResultEventV1::rejected(
        submission_id,
        project_id,
        &rejection,
        OffsetDateTime::now_utc(),
    );
    event.idempotency_key = properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str())
        .filter(|m| id::valid_idempotency_key(m))
        .map(str::to_owned);
    Ok(Screened::Refused(Some(Box::new(Announcement {
        event,
        reply,
        grouped: false,
    }))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_message_id(id: &str) -> BasicProperties {
        BasicProperties::default().with_message_id(id.into())
    }

    #[test]
    fn the_body_limit_is_inclusive_and_allows_for_the_seal() {
        let none = BasicProperties::default();
        let limit = 10 + SEAL_OVERHEAD;
        assert_eq!(check(&none, &vec![b' '; limit], 10), Ok(()));
        assert_eq!(
            check(&none, &vec![b' '; limit + 1], 10),
            Err(Rejection::new(ErrorCode::PayloadTooLarge))
        );
    }

    #[test]
    fn the_size_is_checked_before_the_key() {
        let bad = with_message_id(&"k".repeat(201));
        assert_eq!(
            check(&bad, &[b' '; 11 + SEAL_OVERHEAD], 10).map_err(|r| r.code),
            Err(ErrorCode::PayloadTooLarge)
        );
    }

    #[test]
    fn message_ids_are_bounded_like_idempotency_key() {
        let refused = Err(Rejection::invalid_format(IDEMPOTENCY_KEY));
        let at_max = "k".repeat(200);
        assert_eq!(check(&with_message_id(&at_max), b"{}", 10), Ok(()));
        assert_eq!(check(&with_message_id(""), b"{}", 10), Ok(()));
        let over = "k".repeat(201);
        assert_eq!(check(&with_message_id(&over), b"{}", 10), refused);
        assert_eq!(check(&with_message_id("tab\there"), b"{}", 10), refused);
    }
}
