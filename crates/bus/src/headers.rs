//! Reading and writing the string headers of the wire schema (`x-api-key`, …).

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};

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
pub fn table<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in pairs {
        table.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
    }
    table
}

/// How many times the broker has delivered this message before (quorum queues
/// count it in `x-delivery-count`; absent on the first delivery).
pub fn delivery_count(properties: &BasicProperties) -> i64 {
    let Some(value) = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count"))
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
