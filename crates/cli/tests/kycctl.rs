//! `kycctl` as an operator runs it: the built binary, configured only through
//! `KYC__…` environment variables pointing at the test's own database and
//! broker prefix; checked by exit status, stdout and stderr.

#![allow(clippy::unwrap_used)]

use kyc_bus::lapin::BasicProperties;
use kyc_bus::lapin::options::BasicPublishOptions;
use kyc_testkit::{TestEnv, amqp_url, pg_base_url, record};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Connection as _;
use std::process::Output;
use uuid::Uuid;

/// Runs `kycctl` with `args` and only the given `KYC__…` settings (and `PATH`).
async fn kycctl_with(vars: &[(&str, &str)], args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kycctl"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .args(args)
        .output()
        .await
        .expect("run kycctl")
}

/// Runs `kycctl` against the test's database and broker prefix.
async fn kycctl(env: &TestEnv, args: &[&str]) -> Output {
    kycctl_with(
        &[
            ("KYC__DATABASE__URL", &env.db_url),
            ("KYC__AMQP__URL", &amqp_url()),
            ("KYC__AMQP__PREFIX", env.topology.prefix()),
            ("KYC__CRYPTO__DATA_KEY", kyc_testkit::TEST_DATA_KEY),
            ("KYC__CRYPTO__DATA_KEY_ID", "test"),
        ],
        args,
    )
    .await
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts exit 0, showing the output otherwise.
fn succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// Asserts a non-zero exit whose stderr contains `needle`.
fn failed_with(output: &Output, needle: &str, what: &str) {
    assert!(
        !output.status.success(),
        "{what}: exited 0\nstdout: {}",
        stdout(output)
    );
    assert!(
        stderr(output).contains(needle),
        "{what}: stderr does not mention {needle:?}: {}",
        stderr(output)
    );
}

/// The one JSON object a command printed on stdout.
fn json_line(output: &Output) -> Value {
    let text = stdout(output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stdout: {text:?}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

async fn key_digest(env: &TestEnv, project: Uuid) -> Vec<u8> {
    // The digest of the project's newest key (a rotation adds one).
    sqlx::query_scalar(
        "SELECT digest FROM project_keys WHERE project_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(project)
    .fetch_one(env.store.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_migrate_creates_and_migrates_a_scratch_database() {
    kyc_testkit::require_services().await;
    let name = format!("kyc_t_{}_cli", kyc_testkit::scratch::random_tag());
    let url = kyc_testkit::scratch::with_database(&pg_base_url(), &name);
    let vars = [("KYC__DATABASE__URL", url.as_str())];

    let first = kycctl_with(&vars, &["db", "migrate"]).await;
    let second = kycctl_with(&vars, &["db", "migrate"]).await;
    // Read the outcome, then drop the database this test had kycctl create.
    let tables: Result<Vec<String>, sqlx::Error> = async {
        let mut conn = sqlx::PgConnection::connect(&url).await?;
        let tables = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY table_name",
        )
        .fetch_all(&mut conn)
        .await;
        let _ = conn.close().await;
        tables
    }
    .await;
    let admin = kyc_testkit::scratch::with_database(&pg_base_url(), "postgres");
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();

    succeeded(&first, "db migrate on a missing database");
    assert!(
        stderr(&first).contains("database migrated"),
        "{}",
        stderr(&first)
    );
    succeeded(&second, "db migrate again (nothing to do)");
    let tables = tables.expect("the migrated database answers");
    for table in ["project_admins", "projects", "submissions"] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_admin_and_key_commands_print_json_and_change_the_database() {
    let env = TestEnv::new().await;

    // project create: exactly {"projectId", "apiKey"} on one stdout line.
    let created = kycctl(&env, &["project", "create", "--name", "cli test"]).await;
    succeeded(&created, "project create");
    let json = json_line(&created);
    let object = json.as_object().unwrap();
    assert_eq!(
        object.keys().map(String::as_str).collect::<Vec<_>>(),
        ["apiKey", "projectId"],
        "{json}"
    );
    let project: Uuid = json["projectId"].as_str().unwrap().parse().unwrap();
    let key = json["apiKey"].as_str().unwrap().to_owned();
    assert!(!key.is_empty());
    assert!(
        stderr(&created).contains("not shown again"),
        "{}",
        stderr(&created)
    );
    // Only the key's lookup digest is stored, and it is not SHA-256(key), the
    // key of the project's encryption envelope.
    let stored = key_digest(&env, project).await;
    assert_eq!(stored, kyc_store::projects::key_digest(&key).to_vec());
    assert_ne!(stored, Sha256::digest(key.as_bytes()).to_vec());
    let (name, encrypted): (String, bool) =
        sqlx::query_as("SELECT name, encryption_required FROM projects WHERE id = $1")
            .bind(project)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!((name.as_str(), encrypted), ("cli test", false));

    let encrypted = kycctl(
        &env,
        &[
            "project",
            "create",
            "--name",
            "e",
            "--encryption",
            "aes-256-gcm",
        ],
    )
    .await;
    succeeded(&encrypted, "project create --encryption");
    let id: Uuid = json_line(&encrypted)["projectId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let required: bool =
        sqlx::query_scalar("SELECT encryption_required FROM projects WHERE id = $1")
            .bind(id)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert!(required, "--encryption aes-256-gcm requires encryption");

    // admin add / list.
    let project_arg = project.to_string();
    let added = kycctl(
        &env,
        &[
            "admin",
            "add",
            "--project",
            &project_arg,
            "--email",
            "Ops@Example.com",
        ],
    )
    .await;
    succeeded(&added, "admin add");
    let listed = kycctl(&env, &["admin", "list", "--project", &project_arg]).await;
    succeeded(&listed, "admin list");
    assert_eq!(
        stdout(&listed).trim(),
        "ops@example.com",
        "stored lower-case"
    );
    let bad = kycctl(
        &env,
        &[
            "admin",
            "add",
            "--project",
            &project_arg,
            "--email",
            "not-an-address",
        ],
    )
    .await;
    failed_with(
        &bad,
        "not an e-mail address",
        "admin add with a bad address",
    );
    let bad = kycctl(
        &env,
        &["admin", "add", "--project", "nope", "--email", "a@b.co"],
    )
    .await;
    failed_with(&bad, "not a project id", "admin add with a bad project id");

    // key rotate: a new key for the same project, the digest replaced.
    let rotated = kycctl(&env, &["key", "rotate", "--project", &project_arg]).await;
    succeeded(&rotated, "key rotate");
    let json = json_line(&rotated);
    assert_eq!(json["projectId"], project_arg.as_str(), "{json}");
    let new_key = json["apiKey"].as_str().unwrap();
    assert_ne!(new_key, key, "a new key");
    assert_eq!(
        key_digest(&env, project).await,
        kyc_store::projects::key_digest(new_key).to_vec()
    );

    // Usage errors: non-zero, with clap's message.
    let missing = kycctl(&env, &["project", "create"]).await;
    failed_with(&missing, "--name", "project create without --name");
    let unknown = kycctl(&env, &["project", "frobnicate"]).await;
    failed_with(&unknown, "frobnicate", "an unknown subcommand");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_shows_an_empty_and_a_non_empty_dead_letter_queue() {
    let env = TestEnv::new().await;

    let empty = kycctl(&env, &["dlq", "list", "--json"]).await;
    succeeded(&empty, "dlq list --json, empty");
    assert_eq!(stdout(&empty), "", "nothing listed");
    let table = kycctl(&env, &["dlq", "list"]).await;
    succeeded(&table, "dlq list, empty");
    assert_eq!(stdout(&table).lines().count(), 1, "only the header");
    assert!(stdout(&table).starts_with("ID"), "{}", stdout(&table));
    assert!(
        stderr(&table).contains("0 dead message(s) shown"),
        "{}",
        stderr(&table)
    );

    // A message in the dead queue, through its exchange (as the broker puts it).
    let (connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    for id in ["dead-1", "dead-2"] {
        let confirm = channel
            .basic_publish(
                env.topology.dead_exchange().into(),
                "submission.v1".into(),
                BasicPublishOptions::default(),
                b"{}",
                BasicProperties::default()
                    .with_message_id(id.into())
                    .with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }
    let _ = connection.close(200, "bye".into()).await;

    let listed = kycctl(&env, &["dlq", "list", "--json"]).await;
    succeeded(&listed, "dlq list --json");
    let ids: Vec<String> = stdout(&listed)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["dead-1", "dead-2"], "oldest first");
    let limited = kycctl(&env, &["dlq", "list", "--json", "--limit", "1"]).await;
    succeeded(&limited, "dlq list --limit 1");
    assert_eq!(stdout(&limited).lines().count(), 1);
    let table = kycctl(&env, &["dlq", "list"]).await;
    succeeded(&table, "dlq list");
    assert_eq!(stdout(&table).lines().count(), 3, "{}", stdout(&table));
    assert!(stdout(&table).contains("dead-1"), "{}", stdout(&table));
    // Listing leaves them there.
    assert_eq!(
        kyc_cli::dlq::list(&env.settings, 10).await.unwrap().len(),
        2
    );

    let bad = kycctl(&env, &["dlq", "replay"]).await;
    failed_with(&bad, "required", "dlq replay without ids or --all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_exits_zero_on_success_and_non_zero_with_a_message_otherwise() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let _worker = env.start_worker().await;
    let dir = std::env::temp_dir().join(format!("{}-cli", env.db_name));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("records.jsonl");
    let lines: Vec<String> = (0..3)
        .map(|i| record(&format!("cli-{i}")).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let file_arg = file.to_str().unwrap();

    let pushed = kycctl(&env, &["push", file_arg, "--api-key", &key]).await;
    succeeded(&pushed, "push");
    let out = stdout(&pushed);
    assert!(out.starts_with("pushed 3 records"), "{out}");
    assert!(out.contains("3 accepted, 0 rejected"), "{out}");
    let results = std::fs::read_to_string(kyc_cli::push::default_results_path(&file)).unwrap();
    assert_eq!(results.lines().count(), 3, "one result per line: {results}");
    assert_eq!(env.count_rows().await, 3);

    // --resume: every line already has its result.
    let resumed = kycctl(&env, &["push", file_arg, "--api-key", &key, "--resume"]).await;
    succeeded(&resumed, "push --resume");
    assert!(
        stdout(&resumed).contains("3 lines already had results"),
        "{}",
        stdout(&resumed)
    );

    let missing = dir.join("absent.jsonl");
    let absent = kycctl(
        &env,
        &["push", missing.to_str().unwrap(), "--api-key", &key],
    )
    .await;
    failed_with(&absent, "absent.jsonl", "push of a missing file");

    let bad_flag = kycctl(&env, &["push", file_arg, "--no-such-flag"]).await;
    failed_with(&bad_flag, "--no-such-flag", "push with an unknown flag");
    assert_eq!(bad_flag.status.code(), Some(2), "clap's usage exit status");

    let window = kycctl(
        &env,
        &["push", file_arg, "--api-key", &key, "--window", "0"],
    )
    .await;
    failed_with(&window, "--window", "push --window 0");

    let no_key = kycctl(&env, &["push", file_arg]).await;
    failed_with(
        &no_key,
        "an API key is required: KYC_API_KEY, --api-key-file or --api-key",
        "push without a key",
    );

    let no_file = kycctl(&env, &["push"]).await;
    failed_with(&no_file, "FILE", "push without a file");

    let _ = std::fs::remove_dir_all(&dir);
}
