//! `kyc-intake` and `kyc-worker` refuse to start without their keys, each with
//! one line naming the missing variable, unless `KYC__DEV=true`.

use std::process::Command;

/// Runs `binary` with no `KYC…` variables but `vars`; its exit success and
/// standard error.
fn run(binary: &str, vars: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(kyc_testkit::binary(binary));
    for (name, _) in std::env::vars() {
        if name.starts_with("KYC") {
            command.env_remove(name);
        }
    }
    let output = command.envs(vars.iter().copied()).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn without_keys_the_services_exit_naming_the_missing_variable() {
    for binary in ["kyc-intake", "kyc-worker"] {
        let (ok, stderr) = run(binary, &[]);
        assert!(!ok, "{binary} started without keys");
        assert!(
            stderr.contains("KYC__CRYPTO__DATA_KEY is not set"),
            "{binary}: {stderr}"
        );
        let (ok, stderr) = run(
            binary,
            &[(
                "KYC__CRYPTO__DATA_KEY",
                "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=",
            )],
        );
        assert!(!ok, "{binary} started without a transit key");
        assert!(
            stderr.contains("KYC__CRYPTO__TRANSIT_KEY is not set"),
            "{binary}: {stderr}"
        );
        assert_eq!(
            stderr.lines().filter(|l| l.contains("is not set")).count(),
            1,
            "{binary}, one line: {stderr}"
        );
    }
}
