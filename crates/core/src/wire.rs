//! Versioned wire schemas shared by intake, worker and `kycctl`: the headers of a
//! submission message ([`SubmissionHeadersV2`]), routing keys and the result event
//! (`docs/api.md` §6, §8). A `v1` in a name is a promise: a change that old workers could
//! not read gets a new version, not an edit.
//!
//! The header names below are the only place they are spelled; everything else
//! reads and writes headers through [`SubmissionHeadersV2`].

use crate::error::{ErrorCode, Rejection};
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// A direct publisher's project API key (as in HTTP). The intake never sends it.
pub const HEADER_API_KEY: &str = "x-api-key";

// The four headers below are set by the intake and bound by its transit seal
// (`crate::transit`). A worker reads them only from a message that opens under a
// transit key; on any other message they are ignored.

/// Set by the intake: the id it already answered the client with, so the worker
/// stores the submission under that id.
pub const HEADER_SUBMISSION_ID: &str = "x-submission-id";
/// Set by the intake: when the request was received (RFC 3339).
pub const HEADER_RECEIVED_AT: &str = "x-received-at";
/// Set by the intake when the client sent an `Idempotency-Key`; echoed in events.
pub const HEADER_IDEMPOTENCY_KEY: &str = "x-idempotency-key";
/// Set by the intake: the project it authenticated the message for.
pub const HEADER_PROJECT_ID: &str = "x-project-id";
/// Set by the intake: the id of the transit key its body is sealed under
/// ([`crate::transit::TransitKeyring`]).
pub const HEADER_TRANSIT_KEY_ID: &str = "x-transit-key-id";

/// The `content_type` of a transit-sealed message body of version 1
/// (`nonce ‖ ciphertext ‖ tag`, ids in headers, `crate::transit`): batches,
/// image references, and single submissions of intakes before version 2.
pub const TRANSIT_CONTENT_TYPE: &str = "application/vnd.kyc.transit-v1";
/// The `content_type` of a transit-sealed single submission of version 2
/// (`prefix ‖ nonce ‖ ciphertext ‖ tag`, ids in the authenticated prefix, no
/// headers: `crate::transit::Frame`).
pub const TRANSIT_V2_CONTENT_TYPE: &str = "application/vnd.kyc.transit-v2";

/// Routing key of submission messages on the submissions exchange.
pub const SUBMISSION_ROUTING_KEY: &str = "submission.v1";

/// Whether a sender takes its result as its own reply or inside a [`ReplyBatchV1`]
/// (header [`HEADER_REPLY_MODE`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplyMode {
    /// One reply message per result: any AMQP client (`docs/api.md` §8). No header.
    #[default]
    PerMessage,
    /// [`REPLY_MODE_BATCH`]: the results of one worker batch for the same reply
    /// queue travel as one [`ReplyBatchV1`].
    Batch,
}

/// The headers of a submission message, version 2: what the intake (or
/// `kycctl push`, or any AMQP client) tells a worker besides the body.
///
/// Version 2 (against 1): no `x-intake-seal`; `x-transit-key-id` names the
/// transit key of an intake message, whose seal binds submission id, project id,
/// receive time and idempotency key; the intake sends no `x-api-key`; and a
/// worker ignores the id, project and time headers of any message that does not
/// open under a transit key.
///
/// Every header is optional on the wire: a direct publisher sends only
/// `x-api-key` (and `x-reply-mode`). A value that is present but does not parse
/// (a submission id that is not a UUID, say) reads as absent.
///
/// Core knows no AMQP library: [`encode`](Self::encode) yields `(name, value)`
/// pairs and [`decode`](Self::decode) takes a lookup by name; `kyc_bus::headers`
/// converts to and from the broker's header table.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SubmissionHeadersV2<'a> {
    /// [`HEADER_API_KEY`]: a direct publisher's project API key, as in HTTP.
    pub api_key: Option<&'a str>,
    /// [`HEADER_SUBMISSION_ID`]: the id the intake already answered with.
    pub submission_id: Option<Uuid>,
    /// [`HEADER_PROJECT_ID`]: the project the intake authenticated the message for.
    pub project_id: Option<Uuid>,
    /// [`HEADER_TRANSIT_KEY_ID`]: the transit key the intake sealed the body with.
    pub transit_key_id: Option<&'a str>,
    /// [`HEADER_RECEIVED_AT`]: when the intake received the request (RFC 3339).
    pub received_at: Option<OffsetDateTime>,
    /// [`HEADER_IDEMPOTENCY_KEY`]: the client's `Idempotency-Key`.
    pub idempotency_key: Option<&'a str>,
    /// [`HEADER_REPLY_MODE`].
    pub reply_mode: ReplyMode,
    /// [`HEADER_TRACEPARENT`]: the publisher's position in the submission's
    /// trace (W3C Trace Context), which the worker continues.
    pub traceparent: Option<crate::trace::TraceParent>,
}

impl<'a> SubmissionHeadersV2<'a> {
    /// The headers as `(name, value)` pairs, absent ones left out.
    pub fn encode(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::with_capacity(8);
        let mut put = |name: &'static str, value: Option<String>| {
            if let Some(value) = value {
                pairs.push((name, value));
            }
        };
        put(HEADER_API_KEY, self.api_key.map(str::to_owned));
        // Written through the encoders, not `Display`: these run per message.
        let uuid = |id: Uuid| {
            id.hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .to_owned()
        };
        put(HEADER_SUBMISSION_ID, self.submission_id.map(uuid));
        put(HEADER_PROJECT_ID, self.project_id.map(uuid));
        put(
            HEADER_TRANSIT_KEY_ID,
            self.transit_key_id.map(str::to_owned),
        );
        // RFC 3339 cannot write years past 9999 or before 0; such a time is not a
        // "now" and is left out rather than sent as a value no one could read.
        put(
            HEADER_RECEIVED_AT,
            self.received_at.and_then(|at| at.format(&Rfc3339).ok()),
        );
        put(
            HEADER_IDEMPOTENCY_KEY,
            self.idempotency_key.map(str::to_owned),
        );
        put(
            HEADER_REPLY_MODE,
            (self.reply_mode == ReplyMode::Batch).then(|| REPLY_MODE_BATCH.to_owned()),
        );
        put(
            HEADER_TRACEPARENT,
            self.traceparent.map(|t| t.encode().as_str().to_owned()),
        );
        pairs
    }

    /// Reads the headers through `lookup` (a header's string value by name).
    pub fn decode(lookup: impl Fn(&str) -> Option<&'a str>) -> SubmissionHeadersV2<'a> {
        let uuid = |name: &str| lookup(name).and_then(|s| Uuid::parse_str(s).ok());
        SubmissionHeadersV2 {
            api_key: lookup(HEADER_API_KEY),
            submission_id: uuid(HEADER_SUBMISSION_ID),
            project_id: uuid(HEADER_PROJECT_ID),
            transit_key_id: lookup(HEADER_TRANSIT_KEY_ID),
            received_at: lookup(HEADER_RECEIVED_AT)
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok()),
            idempotency_key: lookup(HEADER_IDEMPOTENCY_KEY),
            reply_mode: match lookup(HEADER_REPLY_MODE) {
                Some(REPLY_MODE_BATCH) => ReplyMode::Batch,
                _ => ReplyMode::PerMessage,
            },
            traceparent: lookup(HEADER_TRACEPARENT).and_then(crate::trace::TraceParent::parse),
        }
    }
}

impl fmt::Debug for SubmissionHeadersV2<'_> {
    // The API key is a credential: `{:?}` says only whether it is there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmissionHeadersV2")
            .field("api_key", &self.api_key.map(|_| "<redacted>"))
            .field("submission_id", &self.submission_id)
            .field("project_id", &self.project_id)
            .field("transit_key_id", &self.transit_key_id)
            .field("received_at", &self.received_at)
            .field("idempotency_key", &self.idempotency_key)
            .field("reply_mode", &self.reply_mode)
            .field("traceparent", &self.traceparent)
            .finish()
    }
}

/// What happened to a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// Stored as accepted: `submission.accepted`.
    #[serde(rename = "submission.accepted")]
    Accepted,
    /// Refused with an error code: `submission.rejected`.
    #[serde(rename = "submission.rejected")]
    Rejected,
}

impl EventKind {
    /// The event name on the wire (`submission.accepted` / `submission.rejected`).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Accepted => "submission.accepted",
            EventKind::Rejected => "submission.rejected",
        }
    }

    /// `accepted` / `rejected`, the status word of results (`docs/api.md` §6).
    pub const fn status(self) -> &'static str {
        match self {
            EventKind::Accepted => "accepted",
            EventKind::Rejected => "rejected",
        }
    }
}

/// The result event, one logical event per processed submission (`docs/api.md` §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultEventV1 {
    /// Accepted or rejected.
    pub event: EventKind,
    /// The submission the event is about.
    pub submission_id: Uuid,
    /// The project it was submitted for.
    pub project_id: Uuid,
    /// The submission's `userid`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    /// The client's `Idempotency-Key`, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Why it was rejected; `None` when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    /// The error message of `docs/api.md` §3; `None` when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the worker decided, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

impl ResultEventV1 {
    /// An accepted event.
    pub fn accepted(submission_id: Uuid, project_id: Uuid, at: time::OffsetDateTime) -> Self {
        ResultEventV1 {
            event: EventKind::Accepted,
            submission_id,
            project_id,
            userid: None,
            idempotency_key: None,
            error_code: None,
            message: None,
            at,
        }
    }

    /// A rejected event carrying the rejection's code and message.
    pub fn rejected(
        submission_id: Uuid,
        project_id: Uuid,
        rejection: &Rejection,
        at: time::OffsetDateTime,
    ) -> Self {
        ResultEventV1 {
            event: EventKind::Rejected,
            error_code: Some(rejection.code),
            message: Some(rejection.message()),
            ..ResultEventV1::accepted(submission_id, project_id, at)
        }
    }

    /// `submission.accepted.<projectId>` or `submission.rejected.<projectId>`.
    pub fn routing_key(&self) -> String {
        routing_key(self.event, self.project_id)
    }
}

/// The events-exchange routing key for a kind of event in a project.
pub fn routing_key(kind: EventKind, project_id: Uuid) -> String {
    format!("{}.{}", kind.as_str(), project_id)
}

/// Set (to [`REPLY_MODE_BATCH`]) on a message with `reply_to` whose sender takes its
/// result inside a [`ReplyBatchV1`]: a worker then sends the results of all such
/// messages of one batch that name the same reply queue as one message, instead of
/// one message each. Without it (any AMQP client, `docs/api.md` §8) each result event is
/// its own reply. A bulk sender asks for it: one reply per record would double the
/// broker's work per record.
pub const HEADER_REPLY_MODE: &str = "x-reply-mode";
/// The W3C Trace Context header, under its HTTP name (as the W3C's AMQP
/// binding draft has it): `00-<trace id>-<parent span id>-<flags>`.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// The value of [`HEADER_REPLY_MODE`] asking for batched replies.
pub const REPLY_MODE_BATCH: &str = "batch";
/// The AMQP `type` property of a [`ReplyBatchV1`] message.
pub const REPLY_BATCH_TYPE: &str = "kyc.reply-batch.v1";

/// Several results in one reply message, each with the `correlation_id` of the
/// message it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyBatchV1 {
    /// The results, in no particular order.
    pub results: Vec<BatchedReplyV1>,
}

/// One result of a [`ReplyBatchV1`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchedReplyV1 {
    /// The `correlation_id` of the message this answers, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The result.
    pub event: ResultEventV1,
}

/// The results a reply message carries, each with its correlation id: one for a
/// plain result event, several for a [`ReplyBatchV1`] (told apart by the message
/// `type`).
pub fn decode_reply(
    kind: Option<&str>,
    correlation_id: Option<&str>,
    body: &[u8],
) -> Result<Vec<BatchedReplyV1>, serde_json::Error> {
    if kind == Some(REPLY_BATCH_TYPE) {
        return Ok(serde_json::from_slice::<ReplyBatchV1>(body)?.results);
    }
    Ok(vec![BatchedReplyV1 {
        correlation_id: correlation_id.map(str::to_owned),
        event: serde_json::from_slice(body)?,
    }])
}

/// The body of a [`ReplyBatchV1`] built from result events already serialised
/// (each the JSON of one [`ResultEventV1`]) without parsing or cloning them again:
/// a worker has just written each event for the events exchange.
pub fn encode_reply_batch<'a>(
    results: impl IntoIterator<Item = (Option<&'a str>, &'a [u8])>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(br#"{"results":["#);
    for (i, (correlation_id, event)) in results.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        if let Some(id) = correlation_id {
            out.extend_from_slice(br#""correlationId":"#);
            // Writing a &str as JSON into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, id);
            out.push(b',');
        }
        out.extend_from_slice(br#""event":"#);
        out.extend_from_slice(event);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// The AMQP `type` property of a [`ResultBatchEventV1`] on the events exchange.
pub const RESULT_BATCH_TYPE: &str = "kyc.result-batch.v1";

/// Several result events of one project and one kind in one message of the
/// events exchange (AMQP `type` [`RESULT_BATCH_TYPE`], the routing key of the
/// events it carries): how the results of bulk records are announced
/// (`docs/api.md` §6). Each event is exactly the [`ResultEventV1`] a single
/// message would have had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultBatchEventV1 {
    /// The events, in no particular order.
    pub events: Vec<ResultEventV1>,
}

/// The result events a message of the events exchange carries: one for a plain
/// result event, several for a [`ResultBatchEventV1`] (told apart by the message
/// `type`).
pub fn decode_events(
    kind: Option<&str>,
    body: &[u8],
) -> Result<Vec<ResultEventV1>, serde_json::Error> {
    if kind == Some(RESULT_BATCH_TYPE) {
        return Ok(serde_json::from_slice::<ResultBatchEventV1>(body)?.events);
    }
    Ok(vec![serde_json::from_slice(body)?])
}

/// The body of a [`ResultBatchEventV1`] built from result events already
/// serialised (each the JSON of one [`ResultEventV1`]), without parsing them again.
pub fn encode_result_batch<'a>(events: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(br#"{"events":["#);
    for (i, event) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(event);
    }
    out.extend_from_slice(b"]}");
    out
}

mod batch;
pub use batch::{
    BATCH_ZSTD, BatchEncodingError, BatchRecordV1, MAX_BATCH_BYTES, MAX_BATCH_RECORD_BYTES,
    MAX_BATCH_RECORDS, SUBMISSION_BATCH_ROUTING_KEY, SUBMISSION_BATCH_TYPE, SubmissionBatchV1,
    batch_runs, compress_batch, decode_batch_encoding, encode_batch, submission_value,
};

mod image;
pub use image::{
    IMAGE_REFERENCE_TYPE, IMAGE_ROUTING_KEY, IMAGE_STORED_EVENT, ImageKind, ImageReferenceV1,
    ImageStoredEventV1,
};
