//! The submission parser: any bytes → `RawSubmission::from_slice` → `validate`.
//! Must never panic; an accepted record must serialise and parse back to itself.
#![no_main]

use kyc_core::{RawSubmission, Submission};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let today = time::macros::date!(2024 - 06 - 15);
    let Ok(raw) = RawSubmission::from_slice(data) else {
        return;
    };
    assert!(raw.entries().len() <= kyc_core::submission::MAX_KEYS);
    if let Ok(submission) = raw.validate(today) {
        // What is stored is valid again, unchanged.
        let json = serde_json::to_vec(&submission).expect("a submission serialises");
        let again: Submission = RawSubmission::from_slice(&json)
            .and_then(|raw| raw.validate(today))
            .expect("a stored submission is valid again");
        assert_eq!(
            serde_json::to_vec(&again).expect("serialises"),
            json,
            "validation is idempotent"
        );
    }
});
