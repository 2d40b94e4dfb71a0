//! Stamps the commit the binaries are built from into `KYC_BUILD_COMMIT`
//! (`kyc_build_info{commit}`): the variable itself when the build sets it (a
//! container build without `.git`), else `git rev-parse`, else `unknown`. Never
//! the network.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=KYC_BUILD_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    let commit = std::env::var("KYC_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            // A release build follows HEAD (a commit, a checkout): what runs in
            // production names exactly what it was built from. A debug build
            // does not: every commit would recompile every crate that uses this
            // one, so its commit is the one of its first build.
            if std::env::var("PROFILE").as_deref() == Ok("release")
                && let Some(dir) = git(&["rev-parse", "--absolute-git-dir"])
            {
                println!("cargo:rerun-if-changed={dir}/HEAD");
                println!("cargo:rerun-if-changed={dir}/logs/HEAD");
            }
            git(&["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KYC_BUILD_COMMIT={commit}");
}
