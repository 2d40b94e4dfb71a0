//! Batch messages: many submissions in one broker message (`docs/api.md` §8,
//! "Batch messages").
//!
//! A batch message is told apart from a single-record message by its AMQP `type`
//! property, [`SUBMISSION_BATCH_TYPE`]. Its body is a [`SubmissionBatchV1`] as
//! JSON — or, like a single record, that JSON inside the `{"body": …}` envelope
//! of `docs/api.md` §7, sealed under the project's API key as one whole.
//!
//! Ids are per record, never per message: each record carries its own
//! idempotency key ([`BatchRecordV1::key`]), and the worker names it
//! `UUIDv5(project, key)` exactly as it names a single message with that
//! `message_id`. The same record therefore gets the same id whether it is sent
//! alone or in a batch of any size.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The AMQP `type` property of a batch message.
pub const SUBMISSION_BATCH_TYPE: &str = "kyc.submission-batch.v1";

/// Routing key of batch messages on the submissions exchange: they travel on
/// their own queue (the bulk lane), so that a migration never makes a
/// single-record submission wait behind it.
pub const SUBMISSION_BATCH_ROUTING_KEY: &str = "submission-batch.v1";

/// The most records one batch message may carry; a worker refuses a larger one
/// as a whole (`payload_too_large` for each record it can name).
pub const MAX_BATCH_RECORDS: usize = 1_000;

/// The largest batch message body a worker decides about: the HTTP batch
/// endpoint's default limit.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// Record bytes a publisher gathers into one batch message at most: half of
/// [`MAX_BATCH_BYTES`], leaving room for the batch's own JSON and the seal or
/// envelope (Base64 grows by 4/3).
pub const MAX_BATCH_RECORD_BYTES: usize = MAX_BATCH_BYTES / 2;

/// Splits `records` into runs that each fit one batch message: at most
/// `max_records` (itself at most [`MAX_BATCH_RECORDS`]) records and
/// [`MAX_BATCH_RECORD_BYTES`] of their bytes (`bytes` of each). A record larger
/// than that alone is a run of its own.
pub fn batch_runs<T>(records: &[T], max_records: usize, bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let max_records = max_records.clamp(1, MAX_BATCH_RECORDS);
    let mut runs = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (i, record) in records.iter().enumerate() {
        let size = bytes(record);
        let full = i - start == max_records || total + size > MAX_BATCH_RECORD_BYTES;
        if full && i > start {
            runs.push(&records[start..i]);
            (start, total) = (i, 0);
        }
        total += size;
    }
    if start < records.len() {
        runs.push(&records[start..]);
    }
    runs
}

/// The body of a batch message: records, each with its own idempotency key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionBatchV1<'a> {
    /// The records, in any order; each is answered on its own.
    #[serde(borrow)]
    pub records: Vec<BatchRecordV1<'a>>,
}

/// One record of a [`SubmissionBatchV1`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRecordV1<'a> {
    /// The record's idempotency key (1–200 printable ASCII characters, as
    /// `Idempotency-Key`). Without one the key is derived from the record's bytes
    /// ([`crate::id::content_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Echoed as the `correlationId` of this record's result in a batch reply
    /// ([`super::ReplyBatchV1`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The id the intake already answered this record with: believed only in a
    /// batch sealed by an intake (`crate::transit::TransitKeyring::seal_batch`),
    /// ignored on any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission_id: Option<uuid::Uuid>,
    /// The submission: the JSON object of `docs/api.md` §2 (never the §7 envelope:
    /// a batch is encrypted as a whole). Any other JSON value is answered
    /// `invalid_payload`.
    #[serde(borrow)]
    pub submission: &'a RawValue,
}

impl<'a> SubmissionBatchV1<'a> {
    /// Parses a batch body (already out of its envelope).
    pub fn from_slice(body: &'a [u8]) -> Result<SubmissionBatchV1<'a>, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// Writes a batch body from records given as `(key, correlation id, submission
/// JSON)` without parsing the submissions: each must be one JSON value.
/// [`submission_value`] makes one out of bytes that may not be JSON.
pub fn encode_batch<'a>(
    records: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>, &'a [u8])>,
) -> Vec<u8> {
    // Sized once from the parts (plus the member names and quotes), so that a
    // batch of hundreds of kilobytes is not copied again at every doubling.
    let records: Vec<_> = records.into_iter().collect();
    let size = records
        .iter()
        .map(|(key, id, submission)| {
            key.map_or(0, str::len) + id.map_or(0, str::len) + submission.len() + 48
        })
        .sum::<usize>();
    let mut out = Vec::with_capacity(size + 16);
    out.extend_from_slice(br#"{"records":["#);
    for (i, (key, correlation_id, submission)) in records.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        // Writing a &str as JSON into a Vec cannot fail.
        if let Some(key) = key {
            out.extend_from_slice(br#""key":"#);
            let _ = serde_json::to_writer(&mut out, key);
            out.push(b',');
        }
        if let Some(id) = correlation_id {
            out.extend_from_slice(br#""correlationId":"#);
            let _ = serde_json::to_writer(&mut out, id);
            out.push(b',');
        }
        out.extend_from_slice(br#""submission":"#);
        out.extend_from_slice(submission);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// `bytes` as one JSON value for [`encode_batch`]: itself when it is one JSON
/// value, else a JSON string of its text (which a worker answers
/// `invalid_payload`, as it would the bytes sent alone).
pub fn submission_value(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    // UTF-8 checked once for the whole value (valid JSON is UTF-8 throughout),
    // rather than string by string as `serde_json::from_slice` does.
    let json = std::str::from_utf8(bytes)
        .is_ok_and(|text| serde_json::from_str::<&RawValue>(text).is_ok());
    if json {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        let text = String::from_utf8_lossy(bytes);
        std::borrow::Cow::Owned(serde_json::to_vec(&text).unwrap_or_default())
    }
}

/// The AMQP `content_encoding` of a batch message whose batch JSON is
/// compressed with zstd — before the §7 envelope or the transit seal, if any,
/// so what travels is compressed, then encrypted.
pub const BATCH_ZSTD: &str = "zstd";

/// zstd's fastest ordinary level: a batch of 200 varied records shrinks about
/// five-fold (`docs/benchmarks.md`, "pipeline, 2026-12-07 (night): compressed
/// batch messages"), and compressing costs less than the broker's work on the
/// bytes it saves.
const ZSTD_LEVEL: i32 = 1;

/// The largest zstd window a worker decodes with (8 MiB, above the largest
/// batch): bounds the decoder's memory whatever a frame's header asks for.
const MAX_WINDOW_LOG: u32 = 23;

/// `json` (an encoded batch) compressed for [`BATCH_ZSTD`]; `None` if zstd
/// fails, and then the batch is sent as it is, without the encoding.
pub fn compress_batch(json: &[u8]) -> Option<Vec<u8>> {
    zstd::bulk::compress(json, ZSTD_LEVEL).ok()
}

/// Why a batch body's `content_encoding` could not be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchEncodingError {
    /// An encoding other than none, `identity` or [`BATCH_ZSTD`].
    #[error("unsupported content encoding")]
    Unsupported,
    /// Not a zstd frame, or a damaged one.
    #[error("unreadable compressed body")]
    Unreadable,
    /// It decompresses to more than [`MAX_BATCH_BYTES`].
    #[error("decompressed body too large")]
    TooLarge,
}

/// The batch JSON of a body (already out of its envelope or seal) sent with
/// `content_encoding`: itself without one, else decompressed — to at most
/// [`MAX_BATCH_BYTES`], however small the compressed body, so a
/// decompression bomb costs the worker no more than the largest plain batch.
pub fn decode_batch_encoding<'b>(
    content_encoding: Option<&str>,
    body: std::borrow::Cow<'b, [u8]>,
) -> Result<std::borrow::Cow<'b, [u8]>, BatchEncodingError> {
    use std::io::Read;
    match content_encoding {
        None | Some("" | "identity") => Ok(body),
        Some(BATCH_ZSTD) => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(&body[..])
                .map_err(|_| BatchEncodingError::Unreadable)?;
            decoder
                .window_log_max(MAX_WINDOW_LOG)
                .map_err(|_| BatchEncodingError::Unreadable)?;
            // The frame's declared size is only a hint for the first allocation.
            let hint = zstd::zstd_safe::get_frame_content_size(&body)
                .ok()
                .flatten()
                .map_or(body.len() * 4, |n| usize::try_from(n).unwrap_or(usize::MAX));
            let mut out = Vec::with_capacity(hint.min(MAX_BATCH_BYTES + 1));
            decoder
                .take(MAX_BATCH_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|_| BatchEncodingError::Unreadable)?;
            if out.len() > MAX_BATCH_BYTES {
                return Err(BatchEncodingError::TooLarge);
            }
            Ok(std::borrow::Cow::Owned(out))
        }
        Some(_) => Err(BatchEncodingError::Unsupported),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn batch_runs_keep_order_and_both_limits() {
        let lengths = |runs: &[&[usize]]| runs.iter().map(|r| r.len()).collect::<Vec<_>>();
        // By count: 2,500 small records → 1,000 + 1,000 + 500.
        let small = vec![10; 2_500];
        let runs = batch_runs(&small, 5_000, |n| *n);
        assert_eq!(lengths(&runs), [1_000, 1_000, 500]);
        let runs = batch_runs(&small, 200, |n| *n);
        assert_eq!(runs.len(), 13);
        assert_eq!(runs[12].len(), 100);
        // By bytes: records of a third of the budget go three to a run, and a
        // record larger than the budget is a run of its own.
        let third = MAX_BATCH_RECORD_BYTES / 3;
        let sized = [third, third, third, third, MAX_BATCH_RECORD_BYTES + 1, 1];
        let runs = batch_runs(&sized, 1_000, |n| *n);
        assert_eq!(lengths(&runs), [3, 1, 1, 1]);
        assert_eq!(runs.concat(), sized, "every record once, in order");
        assert!(batch_runs(&[] as &[usize], 1_000, |n| *n).is_empty());
    }

    #[test]
    fn encoded_batches_parse_back_with_their_keys_and_bodies() {
        let a = br#"{"userid":"a"}"#;
        let not_json = submission_value(b"not json {");
        let body = encode_batch([
            (Some("1:ab"), Some("1"), &a[..]),
            (None, None, &not_json[..]),
        ]);
        let batch = SubmissionBatchV1::from_slice(&body).unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.records[0].key.as_deref(), Some("1:ab"));
        assert_eq!(batch.records[0].correlation_id.as_deref(), Some("1"));
        assert_eq!(batch.records[0].submission.get().as_bytes(), a);
        assert_eq!(batch.records[1].key, None);
        assert_eq!(batch.records[1].submission.get(), r#""not json {""#);
    }

    #[test]
    fn json_is_kept_as_it_is_and_anything_else_becomes_a_string() {
        let kept = br#" {"fullName": "Zo\u00eb", "n": [1, 2.5e3, null]} "#;
        assert!(matches!(submission_value(kept), std::borrow::Cow::Borrowed(b) if b == kept));
        // Not UTF-8 inside a string, or at all: a string of the text, lossily.
        for bytes in [
            &b"{\"fullName\":\"\xff\"}"[..],
            b"\xff\xfe",
            b"{\"a\":1} {}",
        ] {
            let value = submission_value(bytes);
            let text: String = serde_json::from_slice(&value).unwrap();
            assert_eq!(text, String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn a_compressed_batch_decodes_to_its_json_and_nothing_else_is_taken() {
        use std::borrow::Cow;
        let json = encode_batch((0..200).map(|_| (None, None, &br#"{"userid":"u"}"#[..])));
        let packed = compress_batch(&json).unwrap();
        assert!(
            packed.len() * 10 < json.len(),
            "{} → {}",
            json.len(),
            packed.len()
        );
        let back = decode_batch_encoding(Some(BATCH_ZSTD), Cow::Borrowed(&packed)).unwrap();
        assert_eq!(back, json);
        // No encoding (or identity): the body as it is, not copied.
        for plain in [None, Some("identity"), Some("")] {
            let same = decode_batch_encoding(plain, Cow::Borrowed(&json[..])).unwrap();
            assert!(matches!(same, Cow::Borrowed(b) if b == json));
        }
        assert_eq!(
            decode_batch_encoding(Some("gzip"), Cow::Borrowed(&packed)),
            Err(BatchEncodingError::Unsupported)
        );
        assert_eq!(
            decode_batch_encoding(Some(BATCH_ZSTD), Cow::Borrowed(&json)),
            Err(BatchEncodingError::Unreadable)
        );
        let mut damaged = packed.clone();
        damaged.truncate(packed.len() / 2);
        assert_eq!(
            decode_batch_encoding(Some(BATCH_ZSTD), Cow::Borrowed(&damaged)),
            Err(BatchEncodingError::Unreadable)
        );
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_largest_batch() {
        use std::borrow::Cow;
        // 64 MiB of zeros: a few kilobytes compressed, sixteen batches' worth plain.
        let zeros = vec![0u8; 64 << 20];
        let bomb = zstd::bulk::compress(&zeros, 3).unwrap();
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        assert_eq!(
            decode_batch_encoding(Some(BATCH_ZSTD), Cow::Borrowed(&bomb)),
            Err(BatchEncodingError::TooLarge)
        );
        // Exactly the limit still decodes.
        let full = zstd::bulk::compress(&zeros[..MAX_BATCH_BYTES], 3).unwrap();
        let back = decode_batch_encoding(Some(BATCH_ZSTD), Cow::Borrowed(&full)).unwrap();
        assert_eq!(back.len(), MAX_BATCH_BYTES);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(SubmissionBatchV1::from_slice(br#"{"records":[],"x":1}"#).is_err());
        assert!(
            SubmissionBatchV1::from_slice(br#"{"records":[{"submission":{},"id":"x"}]}"#).is_err()
        );
    }
}
