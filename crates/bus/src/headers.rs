//! Message headers: the submission headers of the wire schema
//! ([`SubmissionHeadersV2`], whose names live in `kyc_core::wire`) to and from
//! the broker's header table, and the names of the headers the broker itself
//! sets.

use kyc_core::wire::SubmissionHeadersV2;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};

/// Set by the broker on a quorum queue's redelivery: how many times the message
/// was delivered before (absent on the first delivery).
pub const DELIVERY_COUNT: &str = "x-delivery-count";
/// Set by the broker when it dead-letters a message: an array of tables, one per
/// queue and reason, the most recent first.
pub const DEATH: &str = "x-death";
/// Prefix of the broker's `x-first-death-*` headers (queue, reason, exchange).
pub const FIRST_DEATH_PREFIX: &str = "x-first-death-";
/// Prefix of the broker's `x-last-death-*` headers (queue, reason, exchange).
pub const LAST_DEATH_PREFIX: &str = "x-last-death-";

/// Set by a worker on a message it dead-letters itself (rather than the broker
/// after the delivery limit): why, e.g. `forbidden` for a direct message whose
/// API key is unknown or expired. `kycctl dlq list` shows it as the reason.
pub const DEAD_REASON: &str = "x-kyc-dead-reason";
/// Set by a worker next to [`DEAD_REASON`] when the reason needs a detail: for
/// `unstorable`, the SQLSTATE (and constraint) the database refused the record
/// with. Never the database's message, which may quote values.
pub const DEAD_DETAIL: &str = "x-kyc-dead-detail";

/// Whether a header is the broker's delivery or dead-letter bookkeeping (which a
/// message replayed from the dead-letter queue must not carry along).
pub fn is_broker_bookkeeping(name: &str) -> bool {
    name == DEATH
        || name == DELIVERY_COUNT
        || name.starts_with(FIRST_DEATH_PREFIX)
        || name.starts_with(LAST_DEATH_PREFIX)
}

/// The header table of a submission message.
pub fn encode(headers: &SubmissionHeadersV2<'_>) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in headers.encode() {
        table.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
    }
    table
}

/// Reads a delivery's submission headers (string values, long or short).
pub fn decode(properties: &BasicProperties) -> SubmissionHeadersV2<'_> {
    SubmissionHeadersV2::decode(|name| get(properties, name))
}

/// A delivery's submission headers, whichever transit version carries them: for
/// a version 2 body (`kyc_core::transit::Frame`) the values of its prefix (and
/// `x-api-key` from the headers, which the intake never sends); otherwise the
/// header table. Nothing here is authenticated: ids are believed only once the
/// body opens under a transit key.
pub fn decode_message<'a>(
    properties: &'a BasicProperties,
    body: &'a [u8],
) -> SubmissionHeadersV2<'a> {
    let headers = decode(properties);
    let content_type = properties.content_type().as_ref().map(|c| c.as_str());
    match kyc_core::transit::Frame::of_message(content_type, body) {
        Some(frame) => SubmissionHeadersV2 {
            api_key: headers.api_key,
            ..frame.headers()
        },
        None => headers,
    }
}

/// A string header of a message, if present and textual.
pub fn get<'a>(properties: &'a BasicProperties, name: &str) -> Option<&'a str> {
    let value = properties.headers().as_ref()?.inner().get(name)?;
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Builds a header table from string pairs.
///
/// To be removed: submission messages build their headers with [`encode`] from a
/// [`SubmissionHeadersV2`]; this remains for callers not yet switched over.
pub fn table<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in pairs {
        table.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
    }
    table
}

/// How many times the broker has delivered this message before (quorum queues
/// count it in [`DELIVERY_COUNT`]; absent on the first delivery).
pub fn delivery_count(properties: &BasicProperties) -> i64 {
    let Some(value) = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(DELIVERY_COUNT))
    else {
        return 0;
    };
    match value {
        AMQPValue::LongLongInt(n) => *n,
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyc_core::wire::{HEADER_API_KEY, ReplyMode};
    use lapin::types::ShortString;

    #[test]
    fn submission_headers_survive_the_header_table() {
        let headers = SubmissionHeadersV2 {
            api_key: Some("k"),
            submission_id: "0190f1a2-3b4c-7d5e-8f60-000000000001".parse().ok(),
            project_id: "0190f1a2-3b4c-7d5e-8f60-000000000002".parse().ok(),
            transit_key_id: Some("k1"),
            received_at: None,
            idempotency_key: Some("idem"),
            reply_mode: ReplyMode::Batch,
            traceparent: kyc_core::trace::TraceParent::parse(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        };
        assert!(headers.submission_id.is_some() && headers.project_id.is_some());
        let properties = BasicProperties::default().with_headers(encode(&headers));
        assert_eq!(decode(&properties), headers);
    }

    #[test]
    fn short_string_values_are_read_too() {
        let mut table = FieldTable::default();
        table.insert(
            HEADER_API_KEY.into(),
            AMQPValue::ShortString(ShortString::from("k")),
        );
        let properties = BasicProperties::default().with_headers(table);
        assert_eq!(decode(&properties).api_key, Some("k"));
    }

    #[test]
    fn broker_bookkeeping_is_recognised() {
        for name in [
            DEATH,
            DELIVERY_COUNT,
            "x-first-death-queue",
            "x-last-death-reason",
        ] {
            assert!(is_broker_bookkeeping(name), "{name}");
        }
        assert!(!is_broker_bookkeeping(HEADER_API_KEY));
    }
}
