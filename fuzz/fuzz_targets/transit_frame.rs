//! The transit version 2 prefix reader: `Frame::read` and
//! `TransitKeyring::open_framed` over arbitrary bytes (what a broker reader or
//! direct publisher could put on the submissions queue). Must never panic; a
//! prefix that reads is sealed again under its own values and opens to the
//! same frame.
#![no_main]

use kyc_core::transit::{Frame, TransitKey, TransitKeyring};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ring = TransitKeyring::new(TransitKey::new("fuzz", [7; 32]).unwrap(), Vec::new()).unwrap();
    // Arbitrary bytes never open: the tag would have to be forged.
    assert!(ring.open_framed(data).is_none());
    let Some((frame, prefix_len)) = Frame::read(data) else {
        return;
    };
    assert!(prefix_len <= data.len());
    let _ = format!("{frame:?}");
    let Ok(key) = TransitKey::new(frame.key_id, [9; 32]) else {
        return;
    };
    let ring = TransitKeyring::new(key, Vec::new()).unwrap();
    let sealed = ring.seal_framed(
        &frame.ids,
        frame.reply_mode,
        frame.traceparent,
        &data[prefix_len..],
    );
    let (again, plain) = ring.open_framed(&sealed).expect("a fresh seal opens");
    assert_eq!(again, frame);
    assert_eq!(plain, &data[prefix_len..]);
});
