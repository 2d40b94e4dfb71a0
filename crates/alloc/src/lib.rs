//! The global allocator of every kyc-ingest binary, in one place.
//!
//! mimalloc: cheaper than glibc's allocator for the many small, short-lived
//! allocations per message (bodies, headers, futures; `docs/benchmarks.md`).
//! Linking this crate installs it; [`init`] tunes it and must be the first
//! thing `main` does.
//!
//! The tuning is one option, `purge_delay`. mimalloc 3 keeps memory it has
//! freed for 1,000 ms before handing it back to the kernel. A worker frees the
//! megabytes of a bulk transaction (thousands of records) every few hundred
//! milliseconds, so with that delay its resident set carried several
//! transactions' worth at once: 81–110 MiB at peak under a million-record push
//! where its live heap never passed 51 MiB (heaptrack), more or less from run
//! to run as the timing fell. We set 10 ms (mimalloc 2's default): the peak
//! was then 56–58 MiB, and throughput within the noise of 1,000 ms. At 0 the
//! peak was 55–56 MiB, but push and the batch endpoint lost about a fifth of
//! their throughput to purging memory that was about to be used again
//! (`docs/benchmarks.md`, "memory, 2026-12-07").

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option `mi_option_purge_delay`: the 16th of `mi_option_e` in its
/// `mimalloc.h`, in versions 2 and 3 alike (the Rust bindings have no name for
/// it; the test below checks that it is the option the variable sets).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The environment variable that, when set, keeps mimalloc's own reading of
/// it (to compare delays without a rebuild).
pub const PURGE_DELAY_VARIABLE: &str = "MIMALLOC_PURGE_DELAY";

/// What [`init`] sets `purge_delay` to, in milliseconds.
pub const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Return freed memory to the kernel after [`PURGE_DELAY_MS`], unless
/// [`PURGE_DELAY_VARIABLE`] says otherwise. Call it first in `main`, before
/// any thread is started (an async `main` builds its runtime after it).
pub fn init() {
    if std::env::var_os(PURGE_DELAY_VARIABLE).is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores a number in mimalloc's option table and
    // takes no pointer. Called before other threads start, nothing reads the
    // option while it is written (in this crate's test, the harness's main
    // thread only waits).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// mimalloc's `purge_delay` in milliseconds, as it stands.
pub fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: reads a number from mimalloc's option table; no pointer.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_get(PURGE_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the variable, [`init`] sets the delay to [`PURGE_DELAY_MS`].
    /// With it, the option read back is the one mimalloc read the variable
    /// into, so [`PURGE_DELAY`] names the right option: checked in a child
    /// process of this test (the variable is read once, when the option is
    /// first used).
    #[test]
    fn init_sets_mimallocs_purge_delay_unless_the_environment_sets_it() {
        init();
        if let Ok(set) = std::env::var(PURGE_DELAY_VARIABLE) {
            assert_eq!(purge_delay_ms().to_string(), set);
            return;
        }
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
        let me = std::env::current_exe().expect("the test binary");
        let child = std::process::Command::new(me)
            .args([
                "--exact",
                "tests::init_sets_mimallocs_purge_delay_unless_the_environment_sets_it",
            ])
            .env(PURGE_DELAY_VARIABLE, "123")
            .output()
            .expect("run the test binary again");
        let out = String::from_utf8_lossy(&child.stdout);
        assert!(child.status.success(), "child: {out}");
        assert!(out.contains("1 passed"), "the child ran no test: {out}");
    }
}
