//! The encryption envelope: `envelope::open` with arbitrary bytes and keys, and
//! the Base64/AES-GCM layer under it. Must never panic; whatever opens under a
//! key must have been sealed under it (here: re-sealing round-trips).
#![no_main]

use kyc_core::envelope::{self, EncryptionPolicy, EnvelopeKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Layout: [policy] [key length] key… body…
    let Some((&policy, rest)) = data.split_first() else {
        return;
    };
    let Some((&key_len, rest)) = rest.split_first() else {
        return;
    };
    let (key, body) = rest.split_at(usize::from(key_len).min(rest.len()));
    let api_key = String::from_utf8_lossy(key);
    let policy = if policy & 1 == 0 {
        EncryptionPolicy::Optional
    } else {
        EncryptionPolicy::Required
    };

    if let Ok(opened) = envelope::open(body, &api_key, policy) {
        let _ = opened.raw.validate(time::macros::date!(2024 - 06 - 15));
    }
    // The inner layer on its own: any text as Base64 under this key.
    let sealer = EnvelopeKey::from_api_key(&api_key);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = sealer.decrypt_base64(text);
    }
    // And the way back: whatever is sealed opens to itself.
    let request = envelope::encrypt_request(&api_key, body);
    let sealed: serde_json::Value = serde_json::from_slice(&request).expect("the request is JSON");
    let data = sealed["body"].as_str().expect("a body string");
    assert_eq!(sealer.decrypt_base64(data).expect("opens"), body);
});
