//! API keys: stored under a lookup digest that is not the envelope key, migrated
//! from the old digest, rotated with a grace period by `kycctl`, and a project's
//! encryption requirement switched by `kycctl`.

use crate::kycctl;
use kyc_store::Store;
use kyc_store::projects::key_digest;
use kyc_testkit::scratch::{random_tag, with_database};
use kyc_testkit::{Api, TestEnv, eventually, pg_base_url, record};
use sqlx::Connection;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The migration that introduced `project_keys`, and the one before it.
const PROJECT_KEYS_MIGRATION: i64 = 20261201000004;
const BEFORE_PROJECT_KEYS: i64 = 20261126000003;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_digest_is_the_domain_separated_lookup_digest_not_the_envelope_key() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let (stored, envelope_key, expected): (Vec<u8>, Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT digest, sha256(convert_to($2, 'UTF8')), \
                sha256(convert_to('kyc-ingest/api-key-lookup/v1', 'UTF8') || sha256(convert_to($2, 'UTF8'))) \
         FROM project_keys WHERE project_id = $1",
    )
    .bind(project_id)
    .bind(&key)
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_ne!(stored, envelope_key, "SHA-256(key) is the §7 envelope key");
    assert_eq!(stored, key_digest(&key));
    assert_eq!(
        stored, expected,
        "the SQL of the migration computes the same"
    );
    let columns: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_name = 'projects' AND column_name = 'api_key_sha256'",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(columns.0, 0, "the old digest column is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_converts_an_old_style_key_which_still_authenticates() {
    kyc_testkit::require_services().await;
    let name = format!("kyc_t_{}", random_tag());
    let admin_url = with_database(&pg_base_url(), "postgres");
    let url = with_database(&pg_base_url(), &name);
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap();

    let key = format!("kyc_{}", "ab".repeat(32));
    let project_id = Uuid::now_v7();
    let checked: anyhow::Result<Option<Uuid>> = async {
        let pool = sqlx::PgPool::connect(&url).await?;
        assert!(kyc_store::MIGRATOR.version_exists(PROJECT_KEYS_MIGRATION));
        kyc_store::MIGRATOR
            .run_to(BEFORE_PROJECT_KEYS, &pool)
            .await?;
        // A row as the old code wrote it: SHA-256 of the key.
        sqlx::query(
            "INSERT INTO projects (id, name, api_key_sha256) VALUES ($1, 'old', sha256(convert_to($2, 'UTF8')))",
        )
        .bind(project_id)
        .bind(&key)
        .execute(&pool)
        .await?;
        kyc_store::MIGRATOR.run(&pool).await?;
        pool.close().await;
        let store = Store::connect_lazy(&url, 1)?;
        let found = store.project_by_key_digest(&key_digest(&key)).await?;
        store.pool().close().await;
        Ok(found.map(|p| p.id))
    }
    .await;
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    let _ = admin.close().await;
    assert_eq!(
        checked.unwrap(),
        Some(project_id),
        "the old key authenticates"
    );
    dropped.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_works_during_its_grace_period_and_is_refused_after_it() {
    let env = TestEnv::new().await;
    let (project_id, old_key) = env.project(false).await;
    let mut settings = env.settings.clone();
    settings.directory.ttl_ms = 100;
    let intake = env.start_intake_with(&settings).await;
    let api = Api::new(intake.addr.unwrap());
    assert_eq!(api.submit(&old_key, &record("before")).await.status, 200);

    let grace = Duration::from_secs(4);
    let rotated_at = Instant::now();
    let project = project_id.to_string();
    let output = kycctl::run(
        &env,
        &["key", "rotate", "--project", &project, "--grace", "4s"],
    )
    .await;
    let printed: serde_json::Value =
        serde_json::from_str(kycctl::stdout(&output).trim()).expect("one JSON object");
    assert_eq!(printed["projectId"], project.as_str());
    let new_key = printed["apiKey"].as_str().expect("the new key").to_owned();
    assert_ne!(new_key, old_key);

    // Both keys work during the grace period…
    assert_eq!(api.submit(&new_key, &record("new")).await.status, 200);
    let during = api.submit(&old_key, &record("during-grace")).await.status;
    if rotated_at.elapsed() < grace {
        assert_eq!(during, 200, "the old key works during the grace period");
    }
    // …then the old one is refused, the new one still accepted.
    eventually(
        Duration::from_secs(20),
        "the old key refused after the grace period",
        || async { (api.submit(&old_key, &record("after")).await.status == 403).then_some(()) },
    )
    .await;
    assert!(
        rotated_at.elapsed() >= grace,
        "refused only after the grace"
    );
    assert_eq!(api.submit(&new_key, &record("new-after")).await.status, 200);

    // A rotation without grace ends the previous key at once.
    let output = kycctl::run(&env, &["key", "rotate", "--project", &project]).await;
    let printed: serde_json::Value = serde_json::from_str(kycctl::stdout(&output).trim()).unwrap();
    let newest = printed["apiKey"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(10),
        "the previous key refused",
        || async { (api.submit(&new_key, &record("x")).await.status == 403).then_some(()) },
    )
    .await;
    assert_eq!(api.submit(&newest, &record("newest")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_encryption_switches_whether_plain_bodies_are_refused() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let mut settings = env.settings.clone();
    settings.directory.ttl_ms = 100;
    let intake = env.start_intake_with(&settings).await;
    let api = Api::new(intake.addr.unwrap());
    assert_eq!(api.submit(&key, &record("plain")).await.status, 200);

    let project = project_id.to_string();
    kycctl::run(&env, &["project", "set-encryption", &project, "--required"]).await;
    let refused = eventually(Duration::from_secs(10), "plain bodies refused", || async {
        let reply = api.submit(&key, &record("plain-refused")).await;
        (reply.status == 400).then_some(reply)
    })
    .await;
    assert_eq!(refused.error_code(), Some("invalid_payload"));
    assert!(
        env.store
            .project(project_id)
            .await
            .unwrap()
            .unwrap()
            .encryption_required
    );

    kycctl::run(&env, &["project", "set-encryption", &project, "--optional"]).await;
    eventually(
        Duration::from_secs(10),
        "plain bodies accepted again",
        || async { (api.submit(&key, &record("plain-again")).await.status == 200).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_key_is_refused_at_its_expiry_not_a_ttl_later() {
    let env = TestEnv::new().await;
    let (project_id, old_key) = env.project(false).await;
    let ttl = Duration::from_secs(300);
    let directory = kyc_store::Directory::new(env.store.clone(), ttl);

    let rotated_at = Instant::now();
    let new_key = env
        .store
        .rotate_key_with_grace(project_id, Duration::from_secs(2))
        .await
        .unwrap();
    // Looked up (and cached, with its expiry) during the grace period.
    let found = directory.project_for_key(&old_key).await.unwrap();
    if rotated_at.elapsed() < Duration::from_secs(2) {
        assert_eq!(found.map(|p| p.id), Some(project_id));
    }
    eventually(
        Duration::from_secs(15),
        "the cached old key refused",
        || async {
            directory
                .project_for_key(&old_key)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert!(rotated_at.elapsed() < ttl, "long before the cache TTL");
    assert_eq!(
        directory
            .project_for_key(new_key.expose())
            .await
            .unwrap()
            .map(|p| p.id),
        Some(project_id)
    );
}
