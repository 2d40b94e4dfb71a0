//! `kyc-intake` refuses to start without its keys, naming the missing variable,
//! unless `KYC__DEV=true`.
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// Runs the binary with no `KYC_…` variables but `vars`; its exit success and
/// standard error.
fn run(vars: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kyc-intake"));
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
fn without_keys_it_exits_naming_the_missing_variable() {
    let (ok, stderr) = run(&[]);
    assert!(!ok);
    assert!(
        stderr.contains("KYC__CRYPTO__DATA_KEY is not set"),
        "{stderr}"
    );
    let (ok, stderr) = run(&[(
        "KYC__CRYPTO__DATA_KEY",
        "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=",
    )]);
    assert!(!ok);
    assert!(
        stderr.contains("KYC__CRYPTO__TRANSIT_KEY is not set"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains("is not set")).count(),
        1,
        "one line: {stderr}"
    );
}
