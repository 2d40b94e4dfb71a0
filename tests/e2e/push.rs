//! `kycctl push` (`docs/api.md` §8): every line of a bulk file gets exactly one result, a
//! rerun changes nothing stored, `--resume` completes an interrupted run.

use kyc_cli::push::{self, PushArgs, ResultLine};
use kyc_testkit::{ADMIN, TestEnv, record};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One line of a test file and the result it must get.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) line: String,
    /// `None`: accepted; `Some(code)`: rejected with that code.
    pub(crate) expect: Option<&'static str>,
}

pub(crate) fn cases() -> Vec<Case> {
    let mut unknown = record("u");
    unknown["favouriteColour"] = json!("blue");
    let mut missing = record("m");
    missing.as_object_mut().unwrap().remove("email");
    let mut bad_date = record("d");
    bad_date["birthDate"] = json!("1990-02-30");
    let mut not_string = record("n");
    not_string["kycStatus"] = json!(true);
    let mut not_admin = record("a");
    not_admin["admin"] = json!("stranger@example.com");
    let mut cases = vec![
        Case {
            name: "not json",
            line: "this is not json".into(),
            expect: Some("invalid_payload"),
        },
        Case {
            name: "array",
            line: "[1, 2]".into(),
            expect: Some("invalid_payload"),
        },
        Case {
            name: "unknown key",
            line: unknown.to_string(),
            expect: Some("invalid_parameter"),
        },
        Case {
            name: "missing email",
            line: missing.to_string(),
            expect: Some("missing_data"),
        },
        Case {
            name: "bad date",
            line: bad_date.to_string(),
            expect: Some("invalid_format"),
        },
        Case {
            name: "non-string",
            line: not_string.to_string(),
            expect: Some("invalid_format"),
        },
        Case {
            name: "not an admin",
            line: not_admin.to_string(),
            expect: Some("invalid_admin"),
        },
    ];
    for i in 0..50 {
        cases.push(Case {
            name: "valid",
            line: record(&format!("ok-{i}")).to_string(),
            expect: None,
        });
    }
    cases
}

pub(crate) fn args(file: &Path, key: &str) -> PushArgs {
    PushArgs {
        file: file.to_owned(),
        api_key: Some(key.to_owned()),
        api_key_file: None,
        results: None,
        resume: false,
        encrypt: false,
        format: None,
        window: 16,
        batch_size: kyc_cli::push::DEFAULT_BATCH_SIZE,
        no_compress: false,
        idle_timeout: 20,
        images: Default::default(),
    }
}

pub(crate) fn write_file(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

pub(crate) fn read_results(path: &Path) -> BTreeMap<u64, ResultLine> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut results = BTreeMap::new();
    for line in text.lines() {
        let result: ResultLine = serde_json::from_str(line).unwrap();
        assert!(
            results.insert(result.line, result).is_none(),
            "one result per line"
        );
    }
    results
}

pub(crate) fn temp_dir(env: &TestEnv) -> PathBuf {
    let dir = std::env::temp_dir().join(&env.db_name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_push_gives_each_line_its_outcome_and_a_rerun_changes_nothing() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let _worker = env.start_worker().await;
    let dir = temp_dir(&env);
    let cases = cases();
    let lines: Vec<String> = cases.iter().map(|c| c.line.clone()).collect();
    let file = write_file(&dir, "mix.jsonl", &lines);

    let report = push::run(&env.settings, args(&file, &key)).await.unwrap();
    let valid = cases.iter().filter(|c| c.expect.is_none()).count() as u64;
    assert_eq!(
        (report.records, report.accepted, report.rejected),
        (cases.len() as u64, valid, cases.len() as u64 - valid)
    );

    let results = read_results(&push::default_results_path(&file));
    assert_eq!(results.len(), cases.len(), "one result per input line");
    for (i, case) in cases.iter().enumerate() {
        let result = &results[&(i as u64 + 1)];
        match case.expect {
            None => assert_eq!(result.status, "accepted", "{}: {result:?}", case.name),
            Some(code) => {
                assert_eq!(result.status, "rejected", "{}", case.name);
                assert_eq!(result.error_code.as_deref(), Some(code), "{}", case.name);
            }
        }
    }
    let rows = env.count_rows().await;
    assert_eq!(
        rows,
        cases.len() as i64,
        "every line with a valid key is stored once"
    );

    // The same file again: the same ids, nothing stored twice.
    push::run(&env.settings, args(&file, &key)).await.unwrap();
    let again = read_results(&push::default_results_path(&file));
    let ids = |r: &BTreeMap<u64, ResultLine>| {
        r.values()
            .map(|l| (l.line, l.submission_id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&results),
        ids(&again),
        "a rerun names the same submissions"
    );
    assert_eq!(env.count_rows().await, rows, "a rerun stores nothing new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_push_maps_columns_to_fields_and_rejects_malformed_rows() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let _worker = env.start_worker().await;
    let dir = temp_dir(&env);
    let lines = vec![
        "admin,email,fullName,birthDate,kycStatus,issuingCountry,userid".to_owned(),
        format!("{ADMIN},a@example.com,Ann Example,1990-01-01,approved,deu,c1"),
        format!("{ADMIN},b@example.com,\"Doe, John\",1980-12-31,rejected,,c2"),
        format!("{ADMIN},c@example.com,Bad Date,1980-13-01,approved,,c3"),
        format!("{ADMIN},,No Email,1980-01-01,approved,,c4"),
        format!("{ADMIN},too,few"),
    ];
    let file = write_file(&dir, "mix.csv", &lines);

    let report = push::run(&env.settings, args(&file, &key)).await.unwrap();
    assert_eq!(
        (report.records, report.accepted, report.rejected),
        (5, 2, 3)
    );
    let results = read_results(&push::default_results_path(&file));
    let outcome = |line: u64| {
        (
            results[&line].status.as_str(),
            results[&line].error_code.as_deref(),
        )
    };
    assert_eq!(outcome(2), ("accepted", None), "plain row");
    assert_eq!(
        outcome(3),
        ("accepted", None),
        "quoted comma, empty optional cell"
    );
    assert_eq!(outcome(4), ("rejected", Some("invalid_format")), "bad date");
    assert_eq!(
        outcome(5),
        ("rejected", Some("missing_data")),
        "empty required cell"
    );
    assert_eq!(
        outcome(6),
        ("rejected", Some("invalid_payload")),
        "too few cells"
    );

    let (country,): (String,) =
        sqlx::query_as("SELECT issuing_country FROM submissions WHERE userid = 'c1'")
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(country, "DEU");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_completes_a_run_that_stopped_without_results() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let dir = temp_dir(&env);
    let lines: Vec<String> = (0..200)
        .map(|i| record(&format!("r{i}")).to_string())
        .collect();
    let file = write_file(&dir, "resume.jsonl", &lines);

    // No worker: every record is queued, no result comes, the run gives up.
    let mut first = args(&file, &key);
    first.idle_timeout = 1;
    let error = push::run(&env.settings, first)
        .await
        .expect_err("no results without a worker");
    assert!(
        error.to_string().contains("--resume"),
        "the error says how to continue: {error}"
    );

    let _worker = env.start_worker().await;
    let mut resume = args(&file, &key);
    resume.resume = true;
    let report = push::run(&env.settings, resume).await.unwrap();
    assert_eq!(report.accepted, 200);
    let results = read_results(&push::default_results_path(&file));
    assert_eq!(results.len(), 200);
    // Both runs' messages were processed; each record is stored once.
    kyc_testkit::eventually(std::time::Duration::from_secs(10), "200 rows", || async {
        (env.count_rows().await == 200).then_some(())
    })
    .await;

    // Losing half the results file and resuming re-sends only those lines and
    // gets the same ids back.
    let path = push::default_results_path(&file);
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text.lines().take(100).collect();
    std::fs::write(&path, kept.join("\n")).unwrap();
    let mut resume = args(&file, &key);
    resume.resume = true;
    let report = push::run(&env.settings, resume).await.unwrap();
    assert_eq!((report.records, report.skipped), (100, 100));
    let after = read_results(&path);
    assert_eq!(after.len(), 200);
    for (line, result) in &after {
        assert_eq!(
            result.submission_id, results[line].submission_id,
            "line {line} keeps its id"
        );
    }
    assert_eq!(env.count_rows().await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_push_is_accepted_by_a_project_that_requires_encryption() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(true).await;
    let _worker = env.start_worker().await;
    let dir = temp_dir(&env);
    let lines: Vec<String> = (0..20)
        .map(|i| record(&format!("e{i}")).to_string())
        .collect();
    let file = write_file(&dir, "enc.jsonl", &lines);

    let plain = push::run(&env.settings, args(&file, &key)).await.unwrap();
    assert_eq!(
        (plain.accepted, plain.rejected),
        (0, 20),
        "plain bodies are refused"
    );
    let results = read_results(&push::default_results_path(&file));
    assert!(
        results
            .values()
            .all(|r| r.error_code.as_deref() == Some("invalid_payload"))
    );

    // Different bytes on the wire, but the same records: encrypted lines keep the
    // ids of the plain ones (which are stored as rejected), so use fresh records.
    let lines: Vec<String> = (0..20)
        .map(|i| record(&format!("e2-{i}")).to_string())
        .collect();
    let file = write_file(&dir, "enc2.jsonl", &lines);
    let mut encrypted = args(&file, &key);
    encrypted.encrypt = true;
    let report = push::run(&env.settings, encrypted).await.unwrap();
    assert_eq!((report.accepted, report.rejected), (20, 0));
}
