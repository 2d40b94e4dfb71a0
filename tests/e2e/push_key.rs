//! Where `kycctl push` takes the API key from: `KYC_API_KEY`, `--api-key-file`
//! or `--api-key` (which shows in the process list).

use clap::Parser;
use kyc_cli::push::{self, PushArgs};
use kyc_testkit::{TestEnv, record};
use std::path::PathBuf;

/// `kycctl push`'s arguments alone, parsed as the binary parses them.
#[derive(Debug, Parser)]
struct Push {
    #[command(flatten)]
    args: PushArgs,
}

fn parse(argv: &[&str]) -> Result<PushArgs, clap::Error> {
    Push::try_parse_from(std::iter::once("push").chain(argv.iter().copied())).map(|p| p.args)
}

/// Set in the child process of [`the_key_comes_from_kyc_api_key`].
const CHILD: &str = "KYC_TEST_PUSH_KEY_CHILD";

fn temp_dir(env: &TestEnv) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{}-key", env.db_name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_with_api_key_file_stores_its_records() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let _worker = env.start_worker().await;
    let dir = temp_dir(&env);
    let file = dir.join("records.jsonl");
    let lines: Vec<String> = (0..5)
        .map(|i| record(&format!("kf-{i}")).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let key_file = dir.join("api-key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();

    let args = parse(&[
        file.to_str().unwrap(),
        "--api-key-file",
        key_file.to_str().unwrap(),
        "--idle-timeout",
        "20",
    ])
    .unwrap();
    assert_eq!(
        args.api_key().unwrap(),
        key,
        "the file's key, newline trimmed"
    );
    let report = push::run(&env.settings, args).await.unwrap();
    assert_eq!((report.records, report.accepted), (5, 5), "{report:?}");

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn key_options_and_their_errors() {
    // Both at once is refused.
    let err = parse(&["f.jsonl", "--api-key", "k", "--api-key-file", "k.txt"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    // An unreadable or empty file is an error naming the file, never the key.
    let missing = parse(&["f.jsonl", "--api-key-file", "/nonexistent/kyc-key"]).unwrap();
    let message = format!("{:#}", missing.api_key().unwrap_err());
    assert!(message.contains("/nonexistent/kyc-key"), "{message}");
    let empty_file = std::env::temp_dir().join(format!("kyc-empty-key-{}", std::process::id()));
    std::fs::write(&empty_file, " \n").unwrap();
    let empty = parse(&["f.jsonl", "--api-key-file", empty_file.to_str().unwrap()]).unwrap();
    assert!(empty.api_key().is_err(), "an empty key file is refused");
    let _ = std::fs::remove_file(&empty_file);
    // The help says why --api-key is the last resort.
    let help = <Push as clap::CommandFactory>::command()
        .render_long_help()
        .to_string();
    assert!(help.contains("process list"), "{help}");
}

/// Runs this test binary again with only `KYC_API_KEY` set (no option): the key
/// is read from the environment, as clap does for the real binary.
#[test]
fn the_key_comes_from_kyc_api_key() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "push_key::child_prints_the_resolved_key",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("KYC_API_KEY", "kyc_from_the_environment")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("resolved=kyc_from_the_environment"),
        "{stdout}"
    );
}

/// The child half of [`the_key_comes_from_kyc_api_key`]; does nothing on its own.
#[test]
fn child_prints_the_resolved_key() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let args = parse(&["f.jsonl"]).unwrap();
    println!("resolved={}", args.api_key().unwrap());
}
