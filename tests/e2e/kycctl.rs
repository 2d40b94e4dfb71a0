//! Running the `kycctl` binary against a test's database and broker.

use kyc_testkit::TestEnv;
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::process::Output;

/// `target/<profile>/kycctl`.
pub fn binary() -> PathBuf {
    kyc_testkit::binary("kycctl")
}

/// Runs `kycctl args…` with the env's database and broker, off the async
/// runtime; fails the test if it does not exit 0.
pub async fn run(env: &TestEnv, args: &[&str]) -> Output {
    let output = run_unchecked(env, args).await;
    assert!(
        output.status.success(),
        "kycctl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `kycctl args…` as [`run`] does, whatever its exit status.
pub async fn run_unchecked(env: &TestEnv, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(binary());
    command
        .args(args)
        .env("KYC__DATABASE__URL", &env.db_url)
        .env("KYC__AMQP__URL", env.settings.amqp.url.expose_secret())
        .env("KYC__AMQP__PREFIX", &env.settings.amqp.prefix)
        .env("RUST_LOG", "warn");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the blocking task")
        .expect("running kycctl")
}

/// The stdout of a run, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
