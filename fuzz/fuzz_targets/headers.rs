//! The message-header decoder: `SubmissionHeadersV2::decode` over arbitrary
//! name/value pairs (one `name=value` per line). Must never panic, and what it
//! decodes must encode and decode back to the same headers.
#![no_main]

use kyc_core::wire::SubmissionHeadersV2;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pairs: Vec<(&str, &str)> = text
        .split('\n')
        .filter_map(|line| line.split_once('='))
        .collect();
    // The broker's table has one value per name; the first one wins here.
    let lookup = |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let headers = SubmissionHeadersV2::decode(lookup);
    let _ = format!("{headers:?}");

    let encoded = headers.encode();
    let again = SubmissionHeadersV2::decode(|name| {
        encoded
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    });
    assert_eq!(again.api_key, headers.api_key);
    assert_eq!(again.submission_id, headers.submission_id);
    assert_eq!(again.project_id, headers.project_id);
    assert_eq!(again.transit_key_id, headers.transit_key_id);
    assert_eq!(again.idempotency_key, headers.idempotency_key);
    assert_eq!(again.reply_mode, headers.reply_mode);
    assert_eq!(again.received_at, headers.received_at);
});
