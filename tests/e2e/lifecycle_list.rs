//! `GET /v3/submission`: ARGOS's item shape, keyset pagination that holds under
//! concurrent inserts, filters, error codes, encryption and project isolation.

use crate::lifecycle_support::{assert_error, list, outcome, store, store_one};
use kyc_core::envelope::EnvelopeKey;
use kyc_testkit::{Api, TestEnv, full_record, record};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// An item without the two values that differ per run, after checking them:
/// the id and a `created_at` in `YYYY-MM-DD-HH-MM-SS-ZZZ`.
fn without_id_and_time(mut item: Value, id: Uuid) -> Value {
    assert_eq!(item["submission_id"], id.to_string(), "{item}");
    let created = item["created_at"].as_str().unwrap().to_owned();
    time::PrimitiveDateTime::parse(
        &created,
        format_description!("[year]-[month]-[day]-[hour]-[minute]-[second]-[subsecond digits:3]"),
    )
    .unwrap_or_else(|e| panic!("created_at {created}: {e}"));
    let object = item.as_object_mut().unwrap();
    object.remove("submission_id");
    object.remove("created_at");
    item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_have_the_argos_shape_from_request_to_listing() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let full = api.submit(&key, &full_record()).await.submission_id();
    let minimal = api.submit(&key, &record("minimal-1")).await.submission_id();
    for id in [full, minimal] {
        env.await_row(id, Duration::from_secs(10)).await;
    }
    let reply = list(&api, &key, "").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(reply.body.get("nextpageKey").is_none(), "{:?}", reply.body);
    let items = reply.body["Items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{items:?}");
    // Newest first.
    assert_eq!(
        without_id_and_time(items[0].clone(), minimal),
        fixture(include_str!("fixtures/lifecycle_item_minimal.json"))
    );
    assert_eq!(
        without_id_and_time(items[1].clone(), full),
        fixture(include_str!("fixtures/lifecycle_item_full.json"))
    );
    // created_at is the receipt time, UTC, to the millisecond.
    let received: OffsetDateTime =
        sqlx::query_scalar("SELECT received_at FROM submissions WHERE id = $1")
            .bind(full)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    let expected = received.format(format_description!(
        "[year]-[month]-[day]-[hour]-[minute]-[second]-[subsecond digits:3]"
    ));
    assert_eq!(items[1]["created_at"], expected.unwrap());

    // Filters: by id, userid, email, dates.
    let by_id = list(&api, &key, &format!("submission_id={full}")).await;
    assert_eq!(by_id.body["Items"].as_array().unwrap().len(), 1);
    assert_eq!(by_id.body["Items"][0]["submission_id"], full.to_string());
    let by_userid = list(&api, &key, "userid=minimal-1").await;
    assert_eq!(
        by_userid.body["Items"][0]["submission_id"],
        minimal.to_string()
    );
    assert_eq!(by_userid.body["Items"].as_array().unwrap().len(), 1);
    let by_email = list(&api, &key, "email=jane.doe%40example.com").await;
    assert_eq!(by_email.body["Items"].as_array().unwrap().len(), 2);
    let today = OffsetDateTime::now_utc().date();
    let day = |d: time::Date| d.to_string();
    let in_range = list(
        &api,
        &key,
        &format!("start_date={}&end_date={}", day(today), day(today)),
    )
    .await;
    assert_eq!(in_range.body["Items"].as_array().unwrap().len(), 2);
    let yesterday = today.previous_day().unwrap();
    let before = list(&api, &key, &format!("end_date={}", day(yesterday))).await;
    assert_eq!(before.body["Items"], json!([]), "{:?}", before.body);
    let after = list(
        &api,
        &key,
        &format!("start_date={}", day(today.next_day().unwrap())),
    )
    .await;
    assert_eq!(after.body["Items"], json!([]), "{:?}", after.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_over_1200_rows_with_inserts_between_them_repeat_and_skip_nothing() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());

    // 1,200 rows over the last hour, three at a time in the same millisecond,
    // so the id has to break ties.
    let now = OffsetDateTime::now_utc();
    let rows: Vec<_> = (0..1200)
        .map(|i| {
            let at = now - time::Duration::milliseconds(3_000_000 - (i / 3) * 7);
            outcome(project_id, &record(&format!("page-{i}")), at)
        })
        .collect();
    store(&env, &rows).await;
    let originals: HashSet<Uuid> = rows.iter().map(|o| o.id).collect();

    let mut seen: Vec<Uuid> = Vec::new();
    let mut query = "count=100".to_owned();
    let mut pages: i64 = 0;
    let mut previous: Option<(String, String)> = None;
    loop {
        let reply = list(&api, &key, &query).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let items = reply.body["Items"].as_array().unwrap();
        assert!(items.len() <= 100);
        for item in items {
            let key = (
                item["created_at"].as_str().unwrap().to_owned(),
                item["submission_id"].as_str().unwrap().to_owned(),
            );
            if let Some(previous) = &previous {
                assert!(key < *previous, "newest first: {key:?} after {previous:?}");
            }
            previous = Some(key);
            seen.push(item["submission_id"].as_str().unwrap().parse().unwrap());
        }
        pages += 1;
        // Between pages: new rows arrive, newer and older than the cursor.
        let newer = outcome(project_id, &record("new"), OffsetDateTime::now_utc());
        let older = outcome(
            project_id,
            &record("old"),
            now - time::Duration::hours(2) - time::Duration::milliseconds(pages),
        );
        store(&env, &[newer, older]).await;
        let Some(next) = reply.body.get("nextpageKey") else {
            break;
        };
        query = format!(
            "count=100&nextpage_id={}&nextpage_date={}",
            next["id"].as_str().unwrap(),
            next["created_at"].as_str().unwrap()
        );
        assert!(pages < 20, "pagination does not end");
    }
    let distinct: HashSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "a row listed twice");
    let missing = originals.difference(&distinct).count();
    assert_eq!(missing, 0, "{missing} rows skipped");
    // The older rows inserted meanwhile come after the originals, in the pages
    // that follow them.
    assert!(pages >= 12, "{pages} pages");
    let old_seen = seen.len() - originals.len();
    assert!(
        old_seen >= 1,
        "rows older than the cursor are found on later pages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_rejections_isolation_and_encryption() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let (other_project, other_key) = env.project(false).await;
    let (sealed_project, sealed_key) = env.project(true).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());

    let mine = store_one(&env, project_id, &record("mine")).await;
    let theirs = store_one(&env, other_project, &record("theirs")).await;
    // A submission rejected at validation is not listed.
    let rejected = Uuid::now_v7();
    env.store
        .store_batch(
            &[kyc_store::submissions::Outcome {
                id: rejected,
                project_id,
                received_at: OffsetDateTime::now_utc(),
                idempotency_key: None,
                result: Err(kyc_core::Rejection::new(kyc_core::ErrorCode::InvalidAdmin)),
            }],
            &crate::lifecycle_support::data_key(),
        )
        .await
        .unwrap();
    let all = list(&api, &key, "").await;
    let ids: Vec<&str> = all.body["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["submission_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![mine.to_string()], "only our stored submission");

    // Another project's id answers exactly as an unknown one.
    let foreign = list(&api, &key, &format!("submission_id={theirs}")).await;
    let unknown = list(&api, &key, &format!("submission_id={}", Uuid::now_v7())).await;
    let not_an_id = list(&api, &key, "submission_id=nope").await;
    for reply in [&foreign, &unknown, &not_an_id] {
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, json!({"Items": []}));
    }
    let from_other = list(&api, &other_key, "").await;
    assert_eq!(from_other.body["Items"].as_array().unwrap().len(), 1);
    assert_eq!(
        from_other.body["Items"][0]["submission_id"],
        theirs.to_string()
    );

    // Error codes.
    for query in [
        "start_date=2024-13-01",
        "end_date=yesterday",
        "start_date=2024-03-02&end_date=2024-03-01",
    ] {
        assert_error(&list(&api, &key, query).await, 400, "invalid_date");
    }
    let reply = list(&api, &key, "count=0").await;
    assert_error(&reply, 400, "invalid_format");
    assert_eq!(reply.body["message"], "invalid format: count");
    assert_error(&list(&api, &key, "count=ten").await, 400, "invalid_format");
    let reply = list(&api, &key, "colour=blue").await;
    assert_error(&reply, 400, "invalid_parameter");
    assert_eq!(reply.body["message"], "invalid parameter: colour");
    assert_error(
        &list(&api, &key, "nextpage_id=x").await,
        400,
        "missing_data",
    );
    assert_error(
        &list(
            &api,
            &key,
            &format!("nextpage_id={mine}&nextpage_date=today"),
        )
        .await,
        400,
        "invalid_format",
    );
    let anonymous = api.get("/v3/submission", None).await;
    assert_error(&anonymous, 403, "forbidden");
    let wrong_key = api.get("/v3/submission", Some("not-a-key")).await;
    assert_error(&wrong_key, 403, "forbidden");
    // A value PostgreSQL cannot hold finds nothing (and is no server error).
    let nul = list(&api, &key, "userid=a%00b").await;
    assert_eq!(nul.status, 200, "{:?}", nul.body);
    assert_eq!(nul.body, json!({"Items": []}));
    // A count over the maximum is answered with the maximum.
    let many = list(&api, &key, "count=100000").await;
    assert_eq!(many.status, 200, "{:?}", many.body);

    // A project that requires encryption gets its page sealed with its key.
    let sealed_id = store_one(&env, sealed_project, &record("sealed")).await;
    let reply = list(&api, &sealed_key, "").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["isEncrypted"], true, "{:?}", reply.body);
    let plain = EnvelopeKey::from_api_key(&sealed_key)
        .decrypt_base64(reply.body["data"].as_str().unwrap())
        .unwrap();
    let page: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(page["Items"][0]["submission_id"], sealed_id.to_string());
    assert_eq!(page["Items"][0]["userid"], "sealed");
}

/// `/openapi.json` documents the lifecycle endpoints with the item shape the
/// listing answers and the codes each can give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_lifecycle_endpoints() {
    let env = TestEnv::new().await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let doc = api.get("/openapi.json", None).await.body;

    let paths = &doc["paths"];
    for (path, method) in [
        ("/v3/submission", "get"),
        ("/v3/submission", "patch"),
        ("/v3/submission", "delete"),
        ("/v3/submission/partial", "delete"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} documented"
        );
    }
    let codes = |path: &str, method: &str| -> Vec<String> {
        paths[path][method]["responses"]["400"]["content"]["application/json"]["schema"]
            ["properties"]["errorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(codes("/v3/submission", "get").contains(&"invalid_date".to_owned()));
    assert!(codes("/v3/submission", "patch").contains(&"invalid_submission".to_owned()));
    assert!(codes("/v3/submission", "delete").contains(&"invalid_submission".to_owned()));

    // The item's data members are exactly the fixture's.
    let schemas = &doc["components"]["schemas"];
    let documented: HashSet<&str> = schemas["ItemData"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let fixture = fixture(include_str!("fixtures/lifecycle_item_full.json"));
    let answered: HashSet<&str> = fixture["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(documented, answered);
    let item = schemas["ListItem"]["properties"].as_object().unwrap();
    for member in [
        "submission_id",
        "email",
        "userid",
        "created_at",
        "kyc",
        "data",
        "deleted_at",
        "erased",
    ] {
        assert!(item.contains_key(member), "ListItem.{member}");
    }
    let required: HashSet<&str> = schemas["ListItem"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        HashSet::from(["submission_id", "created_at", "kyc", "data"])
    );
    let correctable: HashSet<&str> =
        schemas["CorrectionRequest"]["properties"]["data"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
    assert_eq!(
        correctable,
        HashSet::from(kyc_core::submission::CORRECTABLE)
    );
}

/// The lifecycle endpoints draw on the project's rate limit like submissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_endpoints_share_the_projects_rate_limit() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let mut settings = env.settings.clone();
    settings.http.rate_limit_per_second = 20;
    let intake = env.start_intake_with(&settings).await;
    let api = Api::new(intake.addr.unwrap());

    let burst = (0..100).map(|i| {
        let (api, key) = (api.clone(), key.clone());
        async move {
            match i % 3 {
                0 => list(&api, &key, "").await,
                1 => crate::lifecycle_support::delete(&api, &key, &format!("submission_id={}", Uuid::now_v7())).await,
                _ => crate::lifecycle_support::patch(&api, &key, &json!({"submissionId": Uuid::now_v7(), "admin": kyc_testkit::ADMIN, "data": {"fullName": "A"}})).await,
            }
        }
    });
    let replies = futures_util::future::join_all(burst).await;
    let limited: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert!(!limited.is_empty(), "100 at once exceed 20/s");
    for reply in &limited {
        assert_eq!(reply.error_code(), Some("rate_limited"));
        assert_eq!(reply.retry_after.as_deref(), Some("1"));
    }
    assert!(
        replies
            .iter()
            .all(|r| [200, 400, 429].contains(&r.status.as_u16())),
        "only documented answers"
    );
}
