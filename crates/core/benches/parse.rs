//! Parsing and validating one full 25-field record, plain and encrypted, plus
//! the steps they are made of, so a regression can be located.
//!
//! Run: `cargo bench -p kyc-core --bench parse`

#[path = "../tests/common/mod.rs"]
mod common;

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use kyc_core::RawSubmission;
use kyc_core::envelope::{self, EncryptionPolicy, EnvelopeKey};

const API_KEY: &str = "kyc_live_3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e";

fn main() {
    divan::main();
}

fn plain() -> Vec<u8> {
    common::to_json(&common::full_record())
}

/// Bytes → typed `Submission`: what the intake does for every plain request.
#[divan::bench]
fn parse_and_validate(bencher: Bencher) {
    let bytes = plain();
    bencher.counter(BytesCount::of_slice(&bytes)).bench(|| {
        RawSubmission::from_slice(black_box(&bytes))
            .and_then(|raw| raw.validate(common::TODAY))
            .expect("the full record is valid")
    });
}

/// About 60 KB of distinct unknown keys (refused as `invalid_payload` past
/// `MAX_KEYS`): the answer must cost about as much as any other body, not grow
/// with the square of the number of keys.
#[divan::bench]
fn many_unknown_keys(bencher: Bencher) {
    let bytes = common::many_unknown_keys(4_500);
    bencher.counter(BytesCount::of_slice(&bytes)).bench(|| {
        RawSubmission::from_slice(black_box(&bytes))
            .and_then(|raw| raw.validate(common::TODAY))
            .expect_err("too many keys")
    });
}

/// `envelope::open` of the `{"body": …}` form: key derivation, Base64,
/// AES-256-GCM and parsing the inner object.
#[divan::bench]
fn envelope_open(bencher: Bencher) {
    let request = envelope::encrypt_request(API_KEY, &plain());
    bencher.counter(BytesCount::of_slice(&request)).bench(|| {
        envelope::open(
            black_box(&request),
            black_box(API_KEY),
            EncryptionPolicy::Required,
        )
        .expect("the request decrypts")
    });
}

/// The whole encrypted path: open, then validate.
#[divan::bench]
fn envelope_open_and_validate(bencher: Bencher) {
    let request = envelope::encrypt_request(API_KEY, &plain());
    bencher.bench(|| {
        envelope::open(
            black_box(&request),
            black_box(API_KEY),
            EncryptionPolicy::Required,
        )
        .and_then(|opened| opened.raw.validate(common::TODAY))
        .expect("the request is valid")
    });
}

/// The parts, to see what dominates.
mod steps {
    use super::*;

    #[divan::bench]
    fn json_to_raw(bencher: Bencher) {
        let bytes = plain();
        bencher.bench(|| RawSubmission::from_slice(black_box(&bytes)).expect("an object"));
    }

    #[divan::bench]
    fn validate_raw(bencher: Bencher) {
        let raw = RawSubmission::from_slice(&plain()).expect("an object");
        bencher
            .with_inputs(|| raw.clone())
            .bench_values(|raw| raw.validate(common::TODAY).expect("valid"));
    }

    #[divan::bench]
    fn derive_key(bencher: Bencher) {
        bencher.bench(|| EnvelopeKey::from_api_key(black_box(API_KEY)));
    }

    #[divan::bench]
    fn decrypt_base64(bencher: Bencher) {
        let key = EnvelopeKey::from_api_key(API_KEY);
        let sealed = key.encrypt_to_base64(&plain());
        bencher.bench(|| key.decrypt_base64(black_box(&sealed)).expect("decrypts"));
    }
}
