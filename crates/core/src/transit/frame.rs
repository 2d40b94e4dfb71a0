//! Transit version 2, the form of a single submission an intake publishes: the
//! ids travel in the message body, in front of the sealed JSON, instead of in
//! AMQP headers (content type [`TRANSIT_V2_CONTENT_TYPE`]).
//!
//! ```text
//! prefix:
//!   "kyc-ingest/transit/v2\0"
//!   u16 BE length ‖ transit key id (UTF-8)
//!   submission id (16 bytes) ‖ project id (16 bytes)
//!   receive time: Unix time in nanoseconds, i128 BE (16 bytes)
//!   0x00 | 0x01 ‖ u16 BE length ‖ idempotency key (UTF-8)
//!   flags: one byte, bit 0 = replies in batches (`ReplyMode::Batch`), others 0
//!   0x00 | 0x01 ‖ traceparent (55 ASCII bytes)
//! then:
//!   nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)
//! ```
//!
//! The whole prefix is the seal's associated data, so every value in it (ids,
//! time, key, reply mode, trace) is authenticated by the same tag as the body,
//! and one byte changed anywhere fails to open.
//!
//! Why not headers: a headers table costs the broker a quarter of its publish
//! rate on this kind of message (`docs/benchmarks.md`), and a single submission
//! is the message the intake publishes most. Batches and image references
//! keep transit version 1 (ids in headers): their header cost is shared by
//! hundreds of records or dwarfed by the upload.

use super::{Aad, NONCE_LEN, SealedIds, TAG_LEN, TransitKeyring};
use crate::trace::TraceParent;
use crate::wire::{ReplyMode, SubmissionHeadersV2, TRANSIT_V2_CONTENT_TYPE};
use time::OffsetDateTime;
use uuid::Uuid;

/// The first bytes of a version 2 body: names the scheme and its version.
const DOMAIN: &[u8] = b"kyc-ingest/transit/v2\0";
/// Length of a W3C `traceparent` value (version 00).
const TRACEPARENT_LEN: usize = 55;
/// The longest prefix: domain, key id (64), three 16-byte values, an
/// idempotency key of 200 characters, flags and a traceparent.
pub const MAX_PREFIX_LEN: usize =
    DOMAIN.len() + 2 + 64 + 16 * 3 + 1 + 2 + 200 + 1 + 1 + TRACEPARENT_LEN;
const REPLY_BATCH_FLAG: u8 = 0b1;

/// What the prefix of a version 2 message says, read before it is opened.
/// Nothing in it is to be believed until [`TransitKeyring::open_framed`] has
/// opened the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The transit key the message is sealed under.
    pub key_id: &'a str,
    /// Submission id, project, receive time and idempotency key.
    pub ids: SealedIds<'a>,
    /// How the sender takes its result.
    pub reply_mode: ReplyMode,
    /// The publisher's position in the submission's trace.
    pub traceparent: Option<TraceParent>,
}

impl<'a> Frame<'a> {
    /// Reads the prefix of `body`: the frame and the prefix's length (where the
    /// nonce starts). `None` if `body` is not a well-formed version 2 body.
    pub fn read(body: &'a [u8]) -> Option<(Frame<'a>, usize)> {
        let mut r = Reader(body.strip_prefix(DOMAIN)?);
        let key_id = std::str::from_utf8(r.sized()?).ok()?;
        let submission_id = Uuid::from_bytes(r.array()?);
        let project_id = Uuid::from_bytes(r.array()?);
        let nanos = i128::from_be_bytes(r.array()?);
        let received_at = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
        let idempotency_key = match r.byte()? {
            0 => None,
            1 => Some(std::str::from_utf8(r.sized()?).ok()?),
            _ => return None,
        };
        let reply_mode = match r.byte()? {
            0 => ReplyMode::PerMessage,
            REPLY_BATCH_FLAG => ReplyMode::Batch,
            _ => return None,
        };
        let traceparent = match r.byte()? {
            0 => None,
            1 => {
                let text = std::str::from_utf8(r.take(TRACEPARENT_LEN)?).ok()?;
                Some(TraceParent::parse(text)?)
            }
            _ => return None,
        };
        let frame = Frame {
            key_id,
            ids: SealedIds {
                submission_id,
                project_id,
                received_at,
                idempotency_key,
            },
            reply_mode,
            traceparent,
        };
        Some((frame, body.len() - r.0.len()))
    }

    /// The frame of a delivery with this content type and body, if it is a
    /// version 2 message.
    pub fn of_message(content_type: Option<&str>, body: &'a [u8]) -> Option<Frame<'a>> {
        if content_type != Some(TRANSIT_V2_CONTENT_TYPE) {
            return None;
        }
        Frame::read(body).map(|(frame, _)| frame)
    }

    /// The frame's values as the submission headers a version 1 message would
    /// have carried, so the rest of a worker reads both versions alike.
    pub fn headers(&self) -> SubmissionHeadersV2<'a> {
        SubmissionHeadersV2 {
            api_key: None,
            submission_id: Some(self.ids.submission_id),
            project_id: Some(self.ids.project_id),
            transit_key_id: Some(self.key_id),
            received_at: Some(self.ids.received_at),
            idempotency_key: self.ids.idempotency_key,
            reply_mode: self.reply_mode,
            traceparent: self.traceparent,
        }
    }

    fn write_prefix(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(DOMAIN);
        super::put_str(out, self.key_id);
        out.extend_from_slice(self.ids.submission_id.as_bytes());
        out.extend_from_slice(self.ids.project_id.as_bytes());
        out.extend_from_slice(&self.ids.received_at.unix_timestamp_nanos().to_be_bytes());
        match self.ids.idempotency_key {
            None => out.push(0),
            Some(key) => {
                out.push(1);
                super::put_str(out, key);
            }
        }
        out.push(match self.reply_mode {
            ReplyMode::PerMessage => 0,
            ReplyMode::Batch => REPLY_BATCH_FLAG,
        });
        match self.traceparent {
            None => out.push(0),
            Some(trace) => {
                out.push(1);
                out.extend_from_slice(trace.encode().as_str().as_bytes());
            }
        }
    }
}

/// A cursor over the prefix.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn sized(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
    }
}

impl TransitKeyring {
    /// A version 2 body: `ids`, reply mode and trace in the prefix, `plaintext`
    /// sealed under the current key with the prefix as associated data. One
    /// allocation; the plaintext is encrypted where it lies.
    pub fn seal_framed(
        &self,
        ids: &SealedIds<'_>,
        reply_mode: ReplyMode,
        traceparent: Option<TraceParent>,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let frame = Frame {
            key_id: &self.current.id,
            ids: ids.clone(),
            reply_mode,
            traceparent,
        };
        let mut out = Vec::with_capacity(MAX_PREFIX_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
        frame.write_prefix(&mut out);
        self.current.seal_onto(out, Aad::Prefix, plaintext)
    }

    /// The frame and plaintext of a version 2 body that opens under a key of
    /// this keyring (current or older) with its prefix intact; `None` for a
    /// malformed prefix, an unknown key id, any altered byte or a forged tag.
    pub fn open_framed<'a>(&self, body: &'a [u8]) -> Option<(Frame<'a>, Vec<u8>)> {
        let (frame, prefix_len) = Frame::read(body)?;
        let (aad, sealed) = body.split_at(prefix_len);
        let plain = self.key(frame.key_id)?.open_aad(aad, sealed)?;
        Some((frame, plain))
    }
}
