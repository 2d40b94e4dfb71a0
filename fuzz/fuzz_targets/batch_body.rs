//! A batch message's body as a worker reads it (`docs/api.md` §8): undoing its
//! `content_encoding` (zstd, bounded), then the batch JSON and every record in
//! it. Must never panic nor return more than the largest batch; whatever is
//! compressed decompresses to itself.
#![no_main]

use kyc_core::RawSubmission;
use kyc_core::wire::{
    BATCH_ZSTD, MAX_BATCH_BYTES, SubmissionBatchV1, compress_batch, decode_batch_encoding,
};
use libfuzzer_sys::fuzz_target;
use std::borrow::Cow;

fuzz_target!(|data: &[u8]| {
    // Layout: [encoding] body…
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let encoding = match mode % 4 {
        0 => None,
        1 | 2 => Some(BATCH_ZSTD),
        _ => Some("gzip"),
    };
    if let Ok(json) = decode_batch_encoding(encoding, Cow::Borrowed(body)) {
        assert!(encoding.is_none() || json.len() <= MAX_BATCH_BYTES);
        if let Ok(batch) = SubmissionBatchV1::from_slice(&json) {
            for record in batch.records {
                let _ = RawSubmission::from_slice(record.submission.get().as_bytes())
                    .and_then(|raw| raw.validate(time::macros::date!(2024 - 06 - 15)));
            }
        }
    }
    let packed = compress_batch(body).expect("zstd compresses any bytes");
    let back = decode_batch_encoding(Some(BATCH_ZSTD), Cow::Borrowed(&packed)).expect("opens");
    assert_eq!(back, body);
});
