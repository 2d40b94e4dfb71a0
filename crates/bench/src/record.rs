//! The record every bench sends: the contract's example (`kyc_core::example`),
//! valid, with all 25 fields, so our code does its full work (every rule
//! checked, every column written, both sensitive numbers sealed).

use std::io::Write;
use std::path::Path;

/// The administrator every bench project registers: the one the example names.
pub const ADMIN: &str = kyc_core::example::ADMIN;

/// The example with `userid` set: `userid` tells records apart.
pub fn full(userid: &str) -> serde_json::Value {
    let mut record = kyc_core::example::full_record();
    record["userid"] = userid.into();
    record
}

/// The bytes of [`full`] with a fixed `userid`: what the HTTP load and the
/// broker benches send.
pub fn body() -> bytes::Bytes {
    bytes::Bytes::from(full("user-42").to_string())
}

/// Writes `n` records (distinct `userid`s) as JSON Lines.
pub fn write_jsonl(path: &Path, n: u64) -> std::io::Result<()> {
    write_jsonl_tagged(path, "user", n)
}

/// Writes `n` records as JSON Lines, `userid`s `<tag>-<i>`: files with
/// different tags name different submissions.
pub fn write_jsonl_tagged(path: &Path, tag: &str, n: u64) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        serde_json::to_writer(&mut out, &full(&format!("{tag}-{i}")))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_record_is_valid_and_has_25_fields() {
        let body = super::body();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(value.as_object().map(|o| o.len()), Some(25));
        let valid = kyc_core::RawSubmission::from_slice(&body)
            .and_then(|raw| raw.validate(kyc_core::submission::today_utc()));
        assert!(valid.is_ok(), "{valid:?}");
    }
}
