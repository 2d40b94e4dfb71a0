//! Shared fixtures for the kyc-core integration tests (and the benchmark, which
//! includes this file by path): the contract's example record
//! (`kyc_core::example`) as ordered entries, a fixed "today", and helpers that
//! build JSON with keys in a chosen document order.
//!
//! Records are kept as `Vec<(String, Value)>` rather than a `serde_json::Map`,
//! because the map's key order depends on a Cargo feature and these tests are
//! about document order.

#![allow(dead_code)]

use serde_json::Value;
use time::macros::date;

/// The reference date for "not in the future" in every test.
pub const TODAY: time::Date = date!(2024 - 06 - 15);

/// The five required fields, in `docs/api.md` §2 table order.
pub const REQUIRED: [&str; 5] = kyc_core::example::REQUIRED;

/// A record as ordered JSON entries.
pub type Entries = Vec<(String, Value)>;

/// The contract's example ([`kyc_core::example`]): a complete, valid record with
/// all 25 fields, in `docs/api.md` §2 table order.
pub fn full_record() -> Entries {
    kyc_core::example::FIELDS
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect()
}

/// Only the required fields of [`full_record`].
pub fn minimal_record() -> Entries {
    full_record()
        .into_iter()
        .filter(|(k, _)| REQUIRED.contains(&k.as_str()))
        .collect()
}

/// `entries` with `key` set to `value`: replaced in place if present (keeping
/// its document position), appended otherwise.
pub fn with(mut entries: Entries, key: &str, value: impl Into<Value>) -> Entries {
    let value = value.into();
    match entries.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => entries.push((key.to_owned(), value)),
    }
    entries
}

/// `entries` without `key`.
pub fn without(entries: Entries, key: &str) -> Entries {
    entries.into_iter().filter(|(k, _)| k != key).collect()
}

/// Serialises entries as one JSON object, keys in the given order (duplicates
/// are kept, which is what the duplicate-key tests need).
pub fn to_json(entries: &[(String, Value)]) -> Vec<u8> {
    let mut out = String::from("{");
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key).expect("a string always serialises"));
        out.push(':');
        out.push_str(&serde_json::to_string(value).expect("a Value always serialises"));
    }
    out.push('}');
    out.into_bytes()
}

/// A string of `n` copies of `c`.
pub fn repeat(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

/// A body of about 60 KB made of `n` distinct unknown keys with short values
/// (`{"key0000":"v","key0001":"v",…}`): the shape that made the duplicate check quadratic.
pub fn many_unknown_keys(n: usize) -> Vec<u8> {
    let mut out = String::from("{");
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"key{i:04}\":\"v\""));
    }
    out.push('}');
    out.into_bytes()
}
