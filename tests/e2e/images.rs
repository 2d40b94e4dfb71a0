//! `PUT /v3/submission/image` and the image reads (`docs/api.md` §16), with the
//! local-directory image store: every error code, Base64 and file parts
//! round-tripping byte-identical, overwrite deleting the replaced object, the
//! same image twice stored once, the order rule (a queued submission is
//! `invalid_submission`), isolation between projects, nothing readable at rest
//! (object store, `pg_dump`), erasure, and `kycctl images gc`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kyc_config::Settings;
use kyc_testkit::{ADMIN, Api, TestEnv, eventually, record};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

/// A real 1×1 PNG.
pub(crate) const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\nIDATx\x9cc\0\x01\0\0\x05\0\x01\r\n-\xb4\0\0\0\0IEND\xaeB`\x82";

/// A JPEG by its signature, with a marker of its own so a test can look for it.
pub(crate) fn jpeg(marker: &str) -> Vec<u8> {
    let mut bytes = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0".to_vec();
    bytes.extend_from_slice(marker.as_bytes());
    bytes.extend_from_slice(b"\xFF\xD9");
    bytes
}

/// One part of a multipart body.
pub(crate) enum Part<'a> {
    Text(&'a str, String),
    File(&'a str, &'a str, Vec<u8>),
}

const BOUNDARY: &str = "kyc-test-boundary-7f3a";

fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part {
            Part::Text(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                );
                body.extend_from_slice(value.as_bytes());
            }
            Part::File(name, file, bytes) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
            }
        }
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub(crate) struct Client {
    base: String,
    http: reqwest::Client,
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    retry_after: Option<String>,
    pub(crate) bytes: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    fn assert_error(&self, status: u16, code: &str) {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert_eq!(body["errorCode"], code, "{body}");
    }
}

impl Client {
    pub(crate) fn new(api: &kyc_testkit::Running) -> Client {
        let _ = Api::new(api.addr.unwrap()); // installs the TLS provider
        Client {
            base: format!("http://{}", api.addr.unwrap()),
            http: reqwest::Client::new(),
        }
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (status, content_type, retry_after) = (
            response.status().as_u16(),
            header("content-type"),
            header("retry-after"),
        );
        Answer {
            status,
            content_type,
            retry_after,
            bytes: response.bytes().await.unwrap().to_vec(),
        }
    }

    async fn put_raw(&self, key: Option<&str>, content_type: &str, body: Vec<u8>) -> Answer {
        let mut request = self
            .http
            .put(format!("{}/v3/submission/image", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        Client::answer(request.send().await.unwrap()).await
    }

    pub(crate) async fn put(&self, key: &str, parts: &[Part<'_>]) -> Answer {
        self.put_raw(
            Some(key),
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            multipart(parts),
        )
        .await
    }

    pub(crate) async fn get(&self, key: &str, path: &str) -> Answer {
        let request = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-api-key", key);
        Client::answer(request.send().await.unwrap()).await
    }
}

pub(crate) fn text(name: &str, value: impl Into<String>) -> Part<'_> {
    Part::Text(name, value.into())
}

/// The env's settings with the image store in a directory of its own.
pub(crate) fn with_image_dir(env: &TestEnv) -> (Settings, PathBuf) {
    let dir = std::env::temp_dir().join(&env.db_name).join("images");
    let mut settings = env.settings.clone();
    settings.images.local_dir = dir.clone();
    (settings, dir)
}

/// Every file under `dir`, recursively.
pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A submission stored for the key's project.
pub(crate) async fn stored_submission(env: &TestEnv, api: &Api, key: &str, userid: &str) -> Uuid {
    let reply = api.submit(key, &record(userid)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.submission_id();
    assert_eq!(env.await_row(id, Duration::from_secs(10)).await, "accepted");
    id
}

/// The (kind, object key) rows of a submission, once `expected` of them exist
/// with the digest count settled.
async fn image_rows(env: &TestEnv, id: Uuid) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT kind, object_key FROM submission_images WHERE submission_id = $1 ORDER BY kind",
    )
    .bind(id)
    .fetch_all(env.store.pool())
    .await
    .unwrap()
}

pub(crate) async fn await_rows(
    env: &TestEnv,
    id: Uuid,
    what: &str,
    check: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    eventually(Duration::from_secs(10), what, || async {
        let rows = image_rows(env, id).await;
        check(&rows).then_some(rows)
    })
    .await
}

fn pg_dump(url: &str) -> Vec<u8> {
    let output = std::process::Command::new("pg_dump")
        .arg("--no-owner")
        .arg(url)
        .output()
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_round_trip_replace_dedupe_stay_sealed_and_go_with_erasure() {
    let env = TestEnv::new().await;
    let (settings, dir) = with_image_dir(&env);
    let (_, key) = env.project(false).await;
    let (_, other_key) = env.project(false).await;
    let intake = env.start_intake_with(&settings).await;
    let _worker = env.start_worker_with(&settings).await;
    let api = Api::new(intake.addr.unwrap());
    let client = Client::new(&intake);
    let id = stored_submission(&env, &api, &key, "img-user-1").await;

    // A Base64 text part and a file part.
    let front = jpeg("front-one");
    let answer = client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                text("idType", "drvlic"),
                text("idImage", BASE64.encode(&front)),
                Part::File("selfieImage", "selfie.png", PNG.to_vec()),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    assert_eq!(
        answer.json(),
        json!({"message": "complete to update image."})
    );
    let rows = await_rows(&env, id, "two image rows", |r| r.len() == 2).await;
    assert_eq!(rows[0].0, "idImage");
    assert_eq!(rows[1].0, "selfieImage");
    for (_, object_key) in &rows {
        assert!(object_key.starts_with("images/"), "{object_key}");
        assert!(!object_key.contains(&id.to_string()));
    }

    let got = client
        .get(
            &key,
            &format!("/v3/submission/migration/{id}/images/idImage"),
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(got.bytes, front);
    let got = client
        .get(
            &key,
            &format!("/v3/submission/migration/{id}/images/selfieImage"),
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.content_type.as_deref(), Some("image/png"));
    assert_eq!(got.bytes, PNG);
    let status = api.result(&key, id).await;
    assert_eq!(status.body["images"], json!(["idImage", "selfieImage"]));

    // Another project, an unknown kind, an image not stored: 404.
    for (k, path) in [
        (
            &other_key,
            format!("/v3/submission/migration/{id}/images/idImage"),
        ),
        (
            &key,
            format!("/v3/submission/migration/{id}/images/passport"),
        ),
        (
            &key,
            format!("/v3/submission/migration/{id}/images/addressImage"),
        ),
        (
            &key,
            format!("/v3/submission/migration/{}/images/idImage", Uuid::now_v7()),
        ),
    ] {
        client.get(k, &path).await.assert_error(404, "not_found");
    }

    // Nothing readable at rest: neither the images nor their signatures.
    assert_eq!(files(&dir).len(), 2);
    for file in files(&dir) {
        let bytes = std::fs::read(&file).unwrap();
        for needle in [&front[..], PNG, b"\x89PNG", b"\xFF\xD8\xFF", b"front-one"] {
            assert!(
                !contains(&bytes, needle),
                "{} holds image bytes",
                file.display()
            );
        }
    }
    let dump = pg_dump(&env.db_url);
    let lower = String::from_utf8_lossy(&dump).to_lowercase();
    for needle in [
        "ffd8ff",
        "89504e47",
        "front-one",
        &BASE64.encode(&front),
        &BASE64.encode(PNG),
    ] {
        assert!(
            !lower.contains(&needle.to_lowercase()),
            "pg_dump holds {needle}"
        );
    }
    assert!(!contains(&dump, b"\x89PNG") && !contains(&dump, b"\xFF\xD8\xFF"));

    // The same images again: 200, and nothing written (the answer comes only
    // after any object is written).
    let again = client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                text("idType", "drvlic"),
                Part::File("idImage", "front.jpg", front.clone()),
                text("selfieImage", BASE64.encode(PNG)),
            ],
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.json());
    assert_eq!(files(&dir).len(), 2);
    assert_eq!(image_rows(&env, id).await, rows);

    // Overwrite: the new image replaces the old one, whose object goes.
    let old_front = rows[0].1.clone();
    let new_front = jpeg("front-two");
    let answer = client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                text("idType", "passport"),
                Part::File("idImage", "front.jpg", new_front.clone()),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    let replaced = await_rows(&env, id, "the replaced front", |r| {
        r.len() == 2 && r[0].1 != old_front
    })
    .await;
    assert_eq!(replaced[1], rows[1], "the selfie is untouched");
    let got = client
        .get(
            &key,
            &format!("/v3/submission/migration/{id}/images/idImage"),
        )
        .await;
    assert_eq!(got.bytes, new_front);
    eventually(
        Duration::from_secs(10),
        "the replaced object deleted",
        || async { (files(&dir).len() == 2).then_some(()) },
    )
    .await;
    assert!(!dir.join(&old_front).exists());

    // Erasure takes the images with it.
    let reply = api
        .send(
            reqwest::Method::DELETE,
            &format!("/v3/submission?submission_id={id}&admin_name={ADMIN}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(image_rows(&env, id).await.is_empty());
    client
        .get(
            &key,
            &format!("/v3/submission/migration/{id}/images/selfieImage"),
        )
        .await
        .assert_error(404, "not_found");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_of_an_upload_is_its_documented_error() {
    let env = TestEnv::new().await;
    let (mut settings, dir) = with_image_dir(&env);
    settings.images.max_image_bytes = 2_000;
    settings.images.max_request_bytes = 8_000;
    let (_, key) = env.project(false).await;
    let (_, other_key) = env.project(false).await;
    let intake = env.start_intake_with(&settings).await;
    let api = Api::new(intake.addr.unwrap());
    let client = Client::new(&intake);

    // Order: no worker yet, so the submission is still queued.
    let reply = api.submit(&key, &record("img-queued")).await;
    assert_eq!(reply.status, 200);
    let queued = reply.submission_id();
    let upload = |id: Uuid| {
        vec![
            text("submissionId", id.to_string()),
            text("admin", ADMIN),
            text("selfieImage", BASE64.encode(PNG)),
        ]
    };
    client
        .put(&key, &upload(queued))
        .await
        .assert_error(400, "invalid_submission");
    let _worker = env.start_worker_with(&settings).await;
    assert_eq!(
        env.await_row(queued, Duration::from_secs(10)).await,
        "accepted"
    );
    let id = queued;
    let answer = client.put(&key, &upload(id)).await;
    assert_eq!(answer.status, 200, "{}", answer.json());

    // Unknown, another project's, not a UUID: the same answer.
    let theirs = stored_submission(&env, &api, &other_key, "img-theirs").await;
    client
        .put(&key, &upload(Uuid::now_v7()))
        .await
        .assert_error(400, "invalid_submission");
    client
        .put(&key, &upload(theirs))
        .await
        .assert_error(400, "invalid_submission");
    client
        .put(
            &key,
            &[
                text("submissionId", "nope"),
                text("admin", ADMIN),
                text("selfieImage", BASE64.encode(PNG)),
            ],
        )
        .await
        .assert_error(400, "invalid_submission");

    // forbidden.
    let answer = client
        .put_raw(
            None,
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            multipart(&upload(id)),
        )
        .await;
    answer.assert_error(403, "forbidden");
    client
        .put(&"x".repeat(40), &upload(id))
        .await
        .assert_error(403, "forbidden");

    // invalid_payload: not multipart, a broken body, a part twice, bad Base64.
    client
        .put_raw(Some(&key), "application/json", b"{}".to_vec())
        .await
        .assert_error(400, "invalid_payload");
    client
        .put_raw(
            Some(&key),
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            b"--nothing".to_vec(),
        )
        .await
        .assert_error(400, "invalid_payload");
    let mut twice = upload(id);
    twice.push(text("admin", ADMIN));
    client
        .put(&key, &twice)
        .await
        .assert_error(400, "invalid_payload");
    client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                text("selfieImage", "%%%not base64%%%"),
            ],
        )
        .await
        .assert_error(400, "invalid_payload");

    // missing_data, naming the parts.
    let answer = client
        .put(&key, &[text("selfieImage", BASE64.encode(PNG))])
        .await;
    answer.assert_error(400, "missing_data");
    assert_eq!(
        answer.json()["parameters"],
        json!(["submissionId", "admin"])
    );
    let answer = client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                text("idImage", BASE64.encode(jpeg("x"))),
            ],
        )
        .await;
    answer.assert_error(400, "missing_data");
    assert_eq!(answer.json()["parameters"], json!(["idType"]));

    // invalid_data: no image, or not JPEG/PNG by its bytes whatever its name.
    client
        .put(
            &key,
            &[text("submissionId", id.to_string()), text("admin", ADMIN)],
        )
        .await
        .assert_error(400, "invalid_data");
    let answer = client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                Part::File("selfieImage", "selfie.png", b"GIF89a not a png".to_vec()),
            ],
        )
        .await;
    answer.assert_error(400, "invalid_data");
    assert_eq!(answer.json()["parameters"], json!(["selfieImage"]));

    // invalid_idType, invalid_admin.
    client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                text("idType", "library-card"),
                text("idImage", BASE64.encode(jpeg("x"))),
            ],
        )
        .await
        .assert_error(400, "invalid_idType");
    client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", "nobody@example.org"),
                text("selfieImage", BASE64.encode(PNG)),
            ],
        )
        .await
        .assert_error(400, "invalid_admin");

    // payload_too_large: one image over its limit, as Base64 or file; a request
    // over its limit.
    let big = {
        let mut b = jpeg("big");
        b.resize(2_500, b'a');
        b
    };
    client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                text("selfieImage", BASE64.encode(&big)),
            ],
        )
        .await
        .assert_error(413, "payload_too_large");
    client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                Part::File("selfieImage", "a.jpg", big.clone()),
            ],
        )
        .await
        .assert_error(413, "payload_too_large");
    let near = {
        let mut b = jpeg("near");
        b.resize(1_900, b'b');
        b
    };
    client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                text("idType", "passport"),
                Part::File("idImage", "a.jpg", near.clone()),
                Part::File("idBackImage", "b.jpg", near.clone()),
                Part::File("selfieImage", "c.jpg", near.clone()),
                Part::File("addressImage", "d.jpg", near.clone()),
                Part::File("ignored", "e.jpg", near.clone()),
            ],
        )
        .await
        .assert_error(413, "payload_too_large");

    // Only the one accepted upload left an object.
    assert_eq!(files(&dir).len(), 1);

    // rate_limited: an intake allowing one request per second.
    let mut limited = settings.clone();
    limited.http.rate_limit_per_second = 1;
    let slow = env.start_intake_with(&limited).await;
    let slow = Client::new(&slow);
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(slow.put(&key, &upload(id)).await);
    }
    let refused = codes
        .iter()
        .find(|a| a.status == 429)
        .expect("a 429 among three at once");
    refused.assert_error(429, "rate_limited");
    assert!(refused.retry_after.is_some());

    // unavailable: an intake whose broker is away; the written object is
    // deleted at once.
    let mut away = settings.clone();
    away.amqp.url = secrecy::SecretString::from("amqp://guest:guest@127.0.0.1:1/%2f");
    let away = env.start_intake_with(&away).await;
    let away = Client::new(&away);
    let answer = away
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                Part::File("addressImage", "bill.png", PNG.to_vec()),
            ],
        )
        .await;
    answer.assert_error(503, "unavailable");
    assert!(answer.retry_after.is_some());
    assert_eq!(
        files(&dir).len(),
        1,
        "the object of a refused upload is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_gc_removes_only_unreferenced_objects_past_the_grace() {
    let env = TestEnv::new().await;
    let (settings, dir) = with_image_dir(&env);
    let (_, key) = env.project(false).await;
    let intake = env.start_intake_with(&settings).await;
    let _worker = env.start_worker_with(&settings).await;
    let api = Api::new(intake.addr.unwrap());
    let client = Client::new(&intake);
    let id = stored_submission(&env, &api, &key, "img-gc").await;
    let answer = client
        .put(
            &key,
            &[
                text("submissionId", id.to_string()),
                text("admin", ADMIN),
                text("selfieImage", BASE64.encode(PNG)),
            ],
        )
        .await;
    assert_eq!(answer.status, 200);
    let rows = await_rows(&env, id, "the selfie row", |r| r.len() == 1).await;

    // An upload killed between the object write and the publish: an object
    // that no reference will ever name.
    let store = kyc_images::ImageStore::from_settings(&settings.images).unwrap();
    let orphan = kyc_images::new_object_key();
    store
        .put(&orphan, b"sealed bytes of a lost upload".to_vec())
        .await
        .unwrap();

    let gc = |args: &'static [&'static str]| {
        let mut command = std::process::Command::new(kyc_testkit::binary("kycctl"));
        command
            .args(args)
            .env("KYC__DATABASE__URL", &env.db_url)
            .env("KYC__IMAGES__LOCAL_DIR", &dir)
            .env("RUST_LOG", "warn");
        async move {
            let output = tokio::task::spawn_blocking(move || command.output())
                .await
                .unwrap()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        }
    };
    // Within the default grace (1 h): nothing goes.
    assert_eq!(gc(&["images", "gc"]).await, "");
    assert_eq!(files(&dir).len(), 2);
    let printed = gc(&["images", "gc", "--older-than", "0s"]).await;
    assert_eq!(printed.trim(), orphan);
    assert_eq!(files(&dir).len(), 1);
    assert!(dir.join(&rows[0].1).exists(), "the referenced object stays");
    let got = client
        .get(
            &key,
            &format!("/v3/submission/migration/{id}/images/selfieImage"),
        )
        .await;
    assert_eq!(got.bytes, PNG);
}
