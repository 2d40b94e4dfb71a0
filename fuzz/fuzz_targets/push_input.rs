//! `kycctl push`'s input reader over arbitrary bytes, as JSON Lines and as CSV.
//! Must never panic or fail on content (only I/O fails, and memory has none);
//! JSON Lines records are the non-blank lines, in order (a line's image members
//! taken out of it); every CSV record is a JSON object or the marker of a
//! malformed row.
#![no_main]

// The reader itself, compiled here without the rest of kyc-cli (broker and
// database clients), so the fuzz build stays small.
#[path = "../../crates/cli/src/push/input.rs"]
#[allow(dead_code)]
mod input;

use input::{Format, Record, read_from};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut records: Vec<Record> = Vec::new();
    read_from(data, Format::Jsonl, |r| {
        records.push(r);
        true
    })
    .expect("reading memory does not fail");
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(records.len(), lines.len());
    for (record, line) in records.iter().zip(&lines) {
        match &record.images {
            // Kept byte for byte.
            None => assert_eq!(record.body, *line),
            // A JSON object with image members: the body is that object
            // without them, members in order.
            Some(images) => {
                assert!(!images.images.is_empty());
                let object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&record.body).expect("the body is an object");
                for (kind, _) in &images.images {
                    assert!(!object.contains_key(kind.as_str()), "{kind} left the body");
                }
            }
        }
    }
    assert!(records.windows(2).all(|w| w[0].line < w[1].line));

    let mut rows = 0usize;
    let result = read_from(data, Format::Csv, |r| {
        rows += 1;
        // Read as a map, not a `Value`: with serde_json's `raw_value` feature
        // (which kyc-core turns on), a `Value` whose first key is serde_json's
        // private raw-value token is read as that raw value, so a CSV column
        // of that name made a good object look like a bad one.
        assert!(
            r.body == b"not a CSV row"
                || serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&r.body)
                    .is_ok(),
            "a CSV record is an object"
        );
        let _ = kyc_core::RawSubmission::from_slice(&r.body);
        true
    });
    // A CSV header that is not UTF-8 is the one content error the reader reports.
    let _ = result;
});
