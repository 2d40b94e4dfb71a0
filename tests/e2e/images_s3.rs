//! The S3 image store (`docs/api.md` §16, "Storage settings") against a real
//! S3-protocol server on loopback (`s3s-fs`, `kyc_testkit::s3`): the same
//! round trip as the local store — Base64 and file parts byte-identical through
//! GET, an overwrite deleting the replaced object, nothing readable in the
//! bucket — and `kycctl images gc` listing and deleting through S3.

use crate::images::{
    Client, PNG, Part, await_rows, contains, files, jpeg, stored_submission, text,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kyc_testkit::s3::S3Server;
use kyc_testkit::{ADMIN, Api, TestEnv, eventually};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_round_trips_replaces_and_collects_through_a_real_s3_server() {
    let env = TestEnv::new().await;
    let dir = std::env::temp_dir().join(&env.db_name);
    let s3 = S3Server::start(&dir, "kyc-images-test");
    let mut settings = env.settings.clone();
    settings.images = s3.image_settings(&settings.images);
    let (_, key) = env.project(false).await;
    let intake = env.start_intake_with(&settings).await;
    let _worker = env.start_worker_with(&settings).await;
    let api = Api::new(intake.addr.unwrap());
    let client = Client::new(&intake);
    let id = stored_submission(&env, &api, &key, "s3-user").await;

    let front = jpeg("s3-front-one");
    let answer = client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                text("idType", "passport"),
                text("idImage", BASE64.encode(&front)),
                Part::File("selfieImage", "selfie.png", PNG.to_vec()),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    let rows = await_rows(&env, id, "two image rows", |r| r.len() == 2).await;
    for (_, object_key) in &rows {
        assert!(
            s3.bucket_dir().join(object_key).is_file(),
            "{object_key} is an object of the bucket"
        );
    }
    for (kind, expected, content_type) in [
        ("idImage", front.clone(), "image/jpeg"),
        ("selfieImage", PNG.to_vec(), "image/png"),
    ] {
        let got = client
            .get(
                &key,
                &format!("/v3/submission/migration/{id}/images/{kind}"),
            )
            .await;
        assert_eq!(got.status, 200, "{kind}");
        assert_eq!(got.content_type.as_deref(), Some(content_type));
        assert_eq!(got.bytes, expected, "{kind} byte-identical");
    }

    // Overwrite: the new front replaces the old, whose object goes.
    let newer = jpeg("s3-front-two");
    let answer = client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                text("idType", "passport"),
                Part::File("idImage", "front.jpg", newer.clone()),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    let old_front = rows[0].1.clone();
    let rows = await_rows(&env, id, "the replaced front", |r| {
        r.len() == 2 && r[0].1 != old_front
    })
    .await;
    let gone = s3.bucket_dir().join(&old_front);
    eventually(
        Duration::from_secs(10),
        "the replaced object deleted",
        || async { (!gone.exists()).then_some(()) },
    )
    .await;
    let got = client
        .get(
            &key,
            &format!("/v3/submission/migration/{id}/images/idImage"),
        )
        .await;
    assert_eq!(got.bytes, newer);

    // Nothing in the bucket reads as an image or holds its bytes.
    let objects = files(&s3.bucket_dir());
    assert!(objects.len() >= 2);
    for path in &objects {
        let bytes = std::fs::read(path).unwrap();
        for needle in [
            &b"\xFF\xD8\xFF"[..],
            b"\x89PNG",
            b"s3-front-two",
            &PNG[8..24],
        ] {
            assert!(
                !contains(&bytes, needle),
                "{} holds plain image bytes",
                path.display()
            );
        }
    }

    // `kycctl images gc` through S3: an orphan goes, referenced objects stay.
    let store = kyc_images::ImageStore::from_settings(&settings.images).unwrap();
    let orphan = kyc_images::new_object_key();
    store
        .put(&orphan, b"sealed bytes of a lost upload".to_vec())
        .await
        .unwrap();
    let mut command = std::process::Command::new(kyc_testkit::binary("kycctl"));
    command
        .args(["images", "gc", "--older-than", "0s"])
        .env("KYC__DATABASE__URL", &env.db_url)
        .env("RUST_LOG", "warn")
        .envs(s3.env());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), orphan);
    assert!(!s3.bucket_dir().join(&orphan).exists());
    for (_, object_key) in &rows {
        assert!(
            s3.bucket_dir().join(object_key).is_file(),
            "{object_key} stays"
        );
    }
}
