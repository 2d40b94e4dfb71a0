use super::*;

fn ids(project_id: Uuid) -> SealedIds<'static> {
    SealedIds {
        submission_id: Uuid::from_u128(1),
        project_id,
        received_at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap(),
        idempotency_key: Some("idem-1"),
    }
}

fn ring(current: (&str, u8), older: &[(&str, u8)]) -> TransitKeyring {
    TransitKeyring::new(
        TransitKey::new(current.0, [current.1; 32]).unwrap(),
        older
            .iter()
            .map(|(id, b)| TransitKey::new(*id, [*b; 32]).unwrap())
            .collect(),
    )
    .unwrap()
}

#[test]
fn a_sealed_message_opens_only_with_its_ids_key_and_bytes() {
    let ring = ring(("k2", 2), &[("k1", 1)]);
    let project = Uuid::from_u128(7);
    let sealed = ring.seal(&ids(project), b"{\"a\":1}");
    assert_eq!(sealed.key_id, "k2");
    assert_eq!(
        ring.open("k2", &ids(project), &sealed.body).as_deref(),
        Some(&b"{\"a\":1}"[..])
    );
    assert!(
        ring.open("k2", &ids(Uuid::from_u128(8)), &sealed.body)
            .is_none()
    );
    assert!(ring.open("k1", &ids(project), &sealed.body).is_none());
    assert!(ring.open("k9", &ids(project), &sealed.body).is_none());
    let mut other = ids(project);
    other.idempotency_key = None;
    assert!(ring.open("k2", &other, &sealed.body).is_none());
    let mut other = ids(project);
    other.received_at += time::Duration::nanoseconds(1);
    assert!(ring.open("k2", &other, &sealed.body).is_none());
    let mut flipped = sealed.body.clone();
    flipped[NONCE_LEN] ^= 1;
    assert!(ring.open("k2", &ids(project), &flipped).is_none());
    assert!(ring.open("k2", &ids(project), &sealed.body[..20]).is_none());
}

#[test]
fn a_seal_opens_with_the_ids_read_back_from_its_headers() {
    use crate::wire::SubmissionHeadersV2;
    let ring = ring(("k1", 1), &[]);
    let ids = SealedIds {
        submission_id: Uuid::now_v7(),
        project_id: Uuid::now_v7(),
        // The current time, nanoseconds included, survives RFC 3339.
        received_at: OffsetDateTime::now_utc(),
        idempotency_key: Some("k"),
    };
    let sealed = ring.seal(&ids, b"{}");
    let sent = SubmissionHeadersV2 {
        submission_id: Some(ids.submission_id),
        project_id: Some(ids.project_id),
        received_at: Some(ids.received_at),
        idempotency_key: ids.idempotency_key,
        transit_key_id: Some(&sealed.key_id),
        ..SubmissionHeadersV2::default()
    }
    .encode();
    let got = SubmissionHeadersV2::decode(|name| {
        sent.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    });
    let read = SealedIds {
        submission_id: got.submission_id.unwrap(),
        project_id: got.project_id.unwrap(),
        received_at: got.received_at.unwrap(),
        idempotency_key: got.idempotency_key,
    };
    assert!(
        ring.open(got.transit_key_id.unwrap(), &read, &sealed.body)
            .is_some()
    );
}

#[test]
fn older_keys_open_what_they_sealed() {
    let old = ring(("k1", 1), &[]);
    let sealed = old.seal(&ids(Uuid::from_u128(7)), b"x");
    let rotated = ring(("k2", 2), &[("k1", 1)]);
    assert!(
        rotated
            .open("k1", &ids(Uuid::from_u128(7)), &sealed.body)
            .is_some()
    );
    // The same id with other bytes is another key.
    let impostor = ring(("k1", 3), &[]);
    assert!(
        impostor
            .open("k1", &ids(Uuid::from_u128(7)), &sealed.body)
            .is_none()
    );
}

#[test]
fn the_keyring_setting_parses_and_refuses_bad_entries() {
    let b64 = BASE64.encode([5u8; 32]);
    let keys = TransitKeyring::parse_older(&format!(" a:{b64} , b.2:{b64},")).unwrap();
    assert_eq!(
        keys.iter().map(TransitKey::id).collect::<Vec<_>>(),
        ["a", "b.2"]
    );
    assert_eq!(
        TransitKeyring::parse_older("nocolon").unwrap_err(),
        BadTransitKey::BadEntry
    );
    assert!(matches!(
        TransitKeyring::parse_older("a:!!!"),
        Err(BadTransitKey::NotBase64(_))
    ));
    assert!(matches!(
        TransitKeyring::parse_older("a:AAAA"),
        Err(BadTransitKey::WrongLength(_, 3))
    ));
    assert!(matches!(
        TransitKey::new("a b", [0; 32]),
        Err(BadTransitKey::BadId(_))
    ));
    let k = || TransitKey::new("same", [0; 32]).unwrap();
    assert!(matches!(
        TransitKeyring::new(k(), vec![k()]),
        Err(BadTransitKey::Duplicate(_))
    ));
}

#[test]
fn associated_data_is_unambiguous() {
    let a = ids(Uuid::from_u128(7));
    let mut b = a.clone();
    b.idempotency_key = Some("");
    let mut c = a.clone();
    c.idempotency_key = None;
    let all = [
        a.associated_data("k"),
        b.associated_data("k"),
        c.associated_data("k"),
        a.associated_data("k2"),
    ];
    for (i, x) in all.iter().enumerate() {
        for y in &all[i + 1..] {
            assert_ne!(x, y);
        }
    }
}

#[test]
fn batch_seals_and_single_seals_do_not_open_as_each_other() {
    let ring = TransitKeyring::new(TransitKey::new("k1", [7; 32]).unwrap(), Vec::new()).unwrap();
    let ids = SealedIds {
        submission_id: Uuid::now_v7(),
        project_id: Uuid::now_v7(),
        received_at: OffsetDateTime::now_utc(),
        idempotency_key: None,
    };
    let batch = ring.seal_batch(&ids, b"{\"records\":[]}");
    assert_eq!(
        ring.open_batch("k1", &ids, &batch.body).as_deref(),
        Some(&b"{\"records\":[]}"[..])
    );
    assert_eq!(ring.open("k1", &ids, &batch.body), None);
    let single = ring.seal(&ids, b"{}");
    assert_eq!(ring.open_batch("k1", &ids, &single.body), None);
}

mod framed {
    use super::*;
    use crate::trace::TraceParent;
    use crate::wire::{ReplyMode, TRANSIT_V2_CONTENT_TYPE};

    fn sealed(ring: &TransitKeyring, project: Uuid) -> (Vec<u8>, TraceParent) {
        let trace = TraceParent::new_root();
        let body = ring.seal_framed(&ids(project), ReplyMode::Batch, Some(trace), b"{\"a\":1}");
        (body, trace)
    }

    #[test]
    fn a_framed_message_opens_with_every_value_it_was_sealed_with() {
        let ring = ring(("k2", 2), &[]);
        let project = Uuid::from_u128(7);
        let (body, trace) = sealed(&ring, project);
        let (frame, plain) = ring.open_framed(&body).unwrap();
        assert_eq!(plain, b"{\"a\":1}");
        assert_eq!(frame.key_id, "k2");
        assert_eq!(frame.ids, ids(project));
        assert_eq!(frame.reply_mode, ReplyMode::Batch);
        assert_eq!(frame.traceparent, Some(trace));
        let headers = frame.headers();
        assert_eq!(headers.submission_id, Some(ids(project).submission_id));
        assert_eq!(headers.transit_key_id, Some("k2"));
        assert_eq!(headers.api_key, None);
        // No reply mode, no trace, no idempotency key: still a frame.
        let mut bare = ids(project);
        bare.idempotency_key = None;
        let body = ring.seal_framed(&bare, ReplyMode::PerMessage, None, b"{}");
        let (frame, _) = ring.open_framed(&body).unwrap();
        assert_eq!(
            (frame.ids, frame.reply_mode, frame.traceparent),
            (bare, ReplyMode::PerMessage, None)
        );
    }

    #[test]
    fn one_changed_byte_anywhere_fails_to_open() {
        let ring = ring(("k2", 2), &[]);
        let (body, _) = sealed(&ring, Uuid::from_u128(7));
        for i in 0..body.len() {
            let mut changed = body.clone();
            changed[i] ^= 0x01;
            assert!(ring.open_framed(&changed).is_none(), "byte {i}");
        }
        for len in 0..body.len() {
            assert!(ring.open_framed(&body[..len]).is_none(), "cut at {len}");
        }
    }

    #[test]
    fn a_framed_message_opens_under_an_older_key_and_never_under_an_unknown_one() {
        let old = ring(("k1", 1), &[]);
        let (body, _) = sealed(&old, Uuid::from_u128(7));
        assert!(ring(("k2", 2), &[("k1", 1)]).open_framed(&body).is_some());
        assert!(ring(("k2", 2), &[]).open_framed(&body).is_none());
        // The same id with other key bytes: the tag does not verify.
        assert!(ring(("k1", 9), &[]).open_framed(&body).is_none());
    }

    #[test]
    fn version_1_seals_and_version_2_frames_never_open_as_each_other() {
        let ring = ring(("k1", 1), &[]);
        let project = Uuid::from_u128(7);
        let v1 = ring.seal(&ids(project), b"{}");
        assert!(ring.open_framed(&v1.body).is_none());
        let (v2, _) = sealed(&ring, project);
        assert!(ring.open("k1", &ids(project), &v2).is_none());
        assert!(ring.open_batch("k1", &ids(project), &v2).is_none());
    }

    #[test]
    fn a_frame_is_read_only_under_its_content_type() {
        let ring = ring(("k1", 1), &[]);
        let (body, _) = sealed(&ring, Uuid::from_u128(7));
        assert!(Frame::of_message(Some(TRANSIT_V2_CONTENT_TYPE), &body).is_some());
        assert!(Frame::of_message(Some("application/json"), &body).is_none());
        assert!(Frame::of_message(None, &body).is_none());
        assert!(Frame::of_message(Some(TRANSIT_V2_CONTENT_TYPE), b"{\"a\":1}").is_none());
    }

    #[test]
    fn the_longest_prefix_fits_the_seal_overhead() {
        let ring = ring((&"k".repeat(64), 1), &[]);
        let key = "i".repeat(200);
        let mut long = ids(Uuid::from_u128(7));
        long.idempotency_key = Some(&key);
        let body = ring.seal_framed(&long, ReplyMode::Batch, Some(TraceParent::new_root()), b"x");
        assert_eq!(body.len(), 1 + SEAL_OVERHEAD);
        // `docs/api.md` §8 ("Bounds") and §10 name these figures.
        assert_eq!((MAX_PREFIX_LEN, SEAL_OVERHEAD), (396, 424));
    }
}
