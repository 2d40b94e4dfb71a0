//! `kycctl push` as a person watches it and as a script logs it: under a
//! pseudo-terminal (`script`) the bar shows records, records per second,
//! accepted, rejected, in flight and the time left, and stays on screen when the
//! push is done; with standard output and error not a terminal, no bar is drawn
//! and standard output holds the one summary line.

use kyc_testkit::{TestEnv, record};
use secrecy::ExposeSecret;
use std::process::{Command, Output};

/// The text of a terminal transcript without its escape sequences (CSI and
/// carriage returns), so it can be searched for what a person saw.
fn plain(transcript: &[u8]) -> String {
    let text = String::from_utf8_lossy(transcript);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // Parameters and intermediates up to the final byte.
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' => out.push('\n'),
            c => out.push(c),
        }
    }
    out
}

fn command(env: &TestEnv, program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("KYC__DATABASE__URL", &env.db_url)
        .env("KYC__AMQP__URL", env.settings.amqp.url.expose_secret())
        .env("KYC__AMQP__PREFIX", &env.settings.amqp.prefix)
        .env("RUST_LOG", "warn");
    command
}

async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the blocking task")
        .expect("the command runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_shows_its_progress_in_a_terminal_and_a_summary_line_otherwise() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let _worker = env.start_worker().await;

    let dir = std::env::temp_dir().join(&env.db_name);
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("api-key");
    std::fs::write(&key_file, &key).unwrap();
    let file = dir.join("records.jsonl");
    let mut lines = String::new();
    for i in 0..300 {
        let mut r = record(&format!("progress-{i}"));
        if i % 3 == 0 {
            r["birthDate"] = "not a date".into();
        }
        lines.push_str(&serde_json::to_string(&r).unwrap());
        lines.push('\n');
    }
    std::fs::write(&file, lines).unwrap();
    let kycctl = crate::kycctl::binary();

    // Under a pseudo-terminal: `script` runs the command on a pty and copies
    // everything it draws to its own standard output (-e: its exit status).
    let shell_line = format!(
        "{} push {} --api-key-file {} --results {}",
        kycctl.display(),
        file.display(),
        key_file.display(),
        dir.join("tty.results.jsonl").display()
    );
    let mut script = command(&env, "script");
    script.args(["-qfec", &shell_line, "/dev/null"]);
    let seen = output(script).await;
    let screen = plain(&seen.stdout);
    assert!(seen.status.success(), "{screen}");
    assert!(
        screen.contains("300/300 records"),
        "the bar's final state: {screen}"
    );
    assert!(
        screen.contains("200 accepted, 100 rejected, 0 in flight"),
        "{screen}"
    );
    assert!(screen.contains("/s") && screen.contains("ETA"), "{screen}");
    assert!(
        screen.contains("pushed 300 records"),
        "the summary: {screen}"
    );

    // Not a terminal: no bar, one summary line on standard output.
    let mut piped = command(&env, kycctl.to_str().unwrap());
    piped.args([
        "push",
        file.to_str().unwrap(),
        "--api-key-file",
        key_file.to_str().unwrap(),
        "--results",
        dir.join("piped.results.jsonl").to_str().unwrap(),
    ]);
    let logged = output(piped).await;
    let stdout = String::from_utf8_lossy(&logged.stdout);
    let stderr = String::from_utf8_lossy(&logged.stderr);
    assert!(logged.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
    assert!(
        stdout.starts_with("pushed 300 records") && stdout.contains("200 accepted, 100 rejected"),
        "{stdout}"
    );
    assert!(
        !stderr.contains("ETA"),
        "no bar without a terminal: {stderr}"
    );
}
