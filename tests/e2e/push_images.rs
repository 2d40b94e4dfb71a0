//! `kycctl push` with image columns (`docs/api.md` §16, `docs/operations.md`,
//! "Images in a push"): each accepted record's images go up through the intake's
//! claim-check path; a second push of the same file stores no image twice; every
//! line's results say what became of each image; `--resume` uploads only what is
//! missing.

use crate::images::{PNG, files, jpeg, with_image_dir};
use crate::push::{args, temp_dir, write_file};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kyc_cli::push::{self, ResultLine};
use kyc_testkit::{TestEnv, eventually, record};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

/// Every result line of a results file, the last one of each line winning
/// (a resumed line can have two).
fn last_results(path: &Path) -> BTreeMap<u64, ResultLine> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<ResultLine>(l).unwrap())
        .map(|r| (r.line, r))
        .collect()
}

async fn image_count(env: &TestEnv, project: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM submission_images i JOIN submissions s ON s.id = i.submission_id
         WHERE s.project_id = $1",
    )
    .bind(project)
    .fetch_one(env.store.pool())
    .await
    .unwrap()
}

fn image_status(result: &ResultLine) -> BTreeMap<&str, (&str, Option<&str>)> {
    result
        .images
        .iter()
        .map(|(k, r)| (k.as_str(), (r.status.as_str(), r.error_code.as_deref())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_records_with_two_images_each_pushed_twice_store_two_thousand_images_once() {
    let env = TestEnv::new().await;
    let (settings, store_dir) = with_image_dir(&env);
    let (project, key) = env.project(false).await;
    let intake = env.start_intake_with(&settings).await;
    let _worker = env.start_worker_with(&settings).await;
    let dir = temp_dir(&env);
    std::fs::create_dir_all(dir.join("front")).unwrap();

    const N: usize = 1000;
    let mut lines = Vec::with_capacity(N);
    for i in 0..N {
        std::fs::write(
            dir.join(format!("front/{i}.jpg")),
            jpeg(&format!("front-{i}")),
        )
        .unwrap();
        let mut line = record(&format!("img-push-{i}"));
        line["idType"] = "passport".into();
        line["idImage"] = format!("@front/{i}.jpg").into();
        line["selfieImage"] = BASE64.encode(PNG).into();
        lines.push(line.to_string());
    }
    let file = write_file(&dir, "with-images.jsonl", &lines);
    let mut push_args = args(&file, &key);
    push_args.images.intake_url = Some(format!("http://{}", intake.addr.unwrap()));

    let first = push::run(&settings, push_args.clone()).await.unwrap();
    assert_eq!((first.accepted, first.rejected), (N as u64, 0));
    assert_eq!(
        (first.images_stored, first.images_failed),
        (2 * N as u64, 0)
    );
    let results = last_results(&first.results);
    assert_eq!(results.len(), N);
    for result in results.values() {
        assert_eq!(
            image_status(result),
            BTreeMap::from([
                ("idImage", ("stored", None)),
                ("selfieImage", ("stored", None))
            ]),
            "{result:?}"
        );
    }
    eventually(Duration::from_secs(120), "2,000 image rows", || async {
        (image_count(&env, project).await == 2 * N as i64).then_some(())
    })
    .await;
    assert_eq!(files(&store_dir).len(), 2 * N, "one object per image");

    // The same file again: every line answered, nothing stored twice.
    let second = push::run(&settings, push_args).await.unwrap();
    assert_eq!(
        (second.accepted, second.images_stored),
        (N as u64, 2 * N as u64)
    );
    assert_eq!(image_count(&env, project).await, 2 * N as i64);
    assert_eq!(files(&store_dir).len(), 2 * N, "no object written twice");

    // Byte-identical through the read route.
    let id = results[&7].submission_id;
    let front = reqwest::Client::new()
        .get(format!(
            "http://{}/v3/submission/migration/{id}/images/idImage",
            intake.addr.unwrap()
        ))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(front.status(), 200);
    assert_eq!(front.bytes().await.unwrap().as_ref(), jpeg("front-6"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_failures_are_told_per_line_and_resume_uploads_only_what_is_missing() {
    let env = TestEnv::new().await;
    let (settings, _store_dir) = with_image_dir(&env);
    let (project, key) = env.project(false).await;
    let intake = env.start_intake_with(&settings).await;
    let _worker = env.start_worker_with(&settings).await;
    let dir = temp_dir(&env);
    let png = BASE64.encode(PNG);

    let line = |userid: &str, images: &[(&str, &str)]| {
        let mut line = record(userid);
        line["idType"] = "passport".into();
        for (kind, value) in images {
            line[*kind] = (*value).into();
        }
        line.to_string()
    };
    let mut rejected = record("img-rejected");
    rejected.as_object_mut().unwrap().remove("email");
    rejected["selfieImage"] = png.clone().into();
    let lines = vec![
        // 1: a path out of the input's folder; the other image still goes.
        line(
            "img-1",
            &[("idImage", "@../outside.jpg"), ("selfieImage", &png)],
        ),
        // 2: a file not there yet.
        line("img-2", &[("selfieImage", "@later.png")]),
        // 3: not an image by its bytes: the intake refuses the call with
        // both images, then each alone, so the selfie is stored all the same.
        line(
            "img-3",
            &[
                ("selfieImage", &png),
                ("addressImage", &BASE64.encode(b"plain text")),
            ],
        ),
        // 4: a rejected record's images are not sent.
        rejected.to_string(),
        // 5: no images at all.
        record("img-5").to_string(),
    ];
    let file = write_file(&dir, "failures.jsonl", &lines);

    // Without an intake URL, image columns stop the push before anything goes.
    let refused = push::run(&settings, args(&file, &key)).await.unwrap_err();
    assert!(
        format!("{refused:#}").contains("--intake-url"),
        "{refused:#}"
    );

    let mut push_args = args(&file, &key);
    push_args.images.intake_url = Some(format!("http://{}", intake.addr.unwrap()));
    let report = push::run(&settings, push_args.clone()).await.unwrap();
    assert_eq!((report.accepted, report.rejected), (4, 1));
    assert_eq!((report.images_stored, report.images_failed), (2, 3));
    let results = last_results(&report.results);
    assert_eq!(
        image_status(&results[&1]),
        BTreeMap::from([
            ("idImage", ("failed", Some("invalid_image_path"))),
            ("selfieImage", ("stored", None))
        ])
    );
    assert_eq!(
        image_status(&results[&2]),
        BTreeMap::from([("selfieImage", ("failed", Some("unreadable_image")))])
    );
    assert_eq!(
        image_status(&results[&3]),
        BTreeMap::from([
            ("addressImage", ("failed", Some("invalid_data"))),
            ("selfieImage", ("stored", None))
        ])
    );
    assert_eq!(results[&4].error_code.as_deref(), Some("missing_data"));
    assert!(results[&4].images.is_empty());
    assert!(results[&5].images.is_empty());
    eventually(Duration::from_secs(10), "the two stored images", || async {
        (image_count(&env, project).await == 2).then_some(())
    })
    .await;

    // The missing file appears; a resumed push sends lines 1–3 again (each has
    // a failed image), uploads line 2's image, and only reports line 1's
    // selfie, stored before, without sending it.
    std::fs::write(dir.join("later.png"), PNG).unwrap();
    push_args.resume = true;
    let resumed = push::run(&settings, push_args).await.unwrap();
    assert_eq!((resumed.records, resumed.skipped), (3, 2));
    let results = last_results(&resumed.results);
    assert_eq!(
        image_status(&results[&2]),
        BTreeMap::from([("selfieImage", ("stored", None))])
    );
    assert_eq!(
        image_status(&results[&1])["idImage"],
        ("failed", Some("invalid_image_path"))
    );
    eventually(Duration::from_secs(10), "three stored images", || async {
        (image_count(&env, project).await == 3).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_the_intake_answers_429_are_retried_until_stored() {
    let env = TestEnv::new().await;
    let (mut settings, _store_dir) = with_image_dir(&env);
    // One request per second for the project: most of the 8 concurrent
    // uploads are refused 429 at first and must be retried to be stored.
    settings.http.rate_limit_per_second = 1;
    let (project, key) = env.project(false).await;
    let intake = env.start_intake_with(&settings).await;
    let _worker = env.start_worker_with(&settings).await;
    let dir = temp_dir(&env);
    const N: usize = 6;
    let lines: Vec<String> = (0..N)
        .map(|i| {
            let mut line = record(&format!("img-limited-{i}"));
            line["selfieImage"] = BASE64.encode(PNG).into();
            line.to_string()
        })
        .collect();
    let file = write_file(&dir, "limited.jsonl", &lines);
    let mut push_args = args(&file, &key);
    push_args.images.intake_url = Some(format!("http://{}", intake.addr.unwrap()));
    let report = push::run(&settings, push_args).await.unwrap();
    assert_eq!(
        (report.accepted, report.images_stored, report.images_failed),
        (N as u64, N as u64, 0)
    );
    eventually(Duration::from_secs(20), "every image recorded", || async {
        (image_count(&env, project).await == N as i64).then_some(())
    })
    .await;
}
