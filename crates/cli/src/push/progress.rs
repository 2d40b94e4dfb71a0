//! What `kycctl push` shows while it runs: a bar over the file's records, with
//! results per second, accepted, rejected, in flight (published, no result
//! yet) and the time left. The counters are atomics read only when the bar is
//! drawn (at most 20 times a second), so a million results cost a million
//! increments, not a million formatted strings.
//!
//! indicatif draws on standard error and only when it is a terminal; piped or
//! redirected, nothing is drawn and the summary line `main` prints on standard
//! output is what a log or a script sees.

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
}

/// The bar and its counters; cheap to clone (the publisher and the collector
/// each hold one).
#[derive(Debug, Clone)]
pub(super) struct Progress {
    bar: ProgressBar,
    counters: Arc<Counters>,
}

impl Progress {
    /// A bar over `total` records of which `done` already have results (`--resume`).
    pub(super) fn new(total: u64, done: u64) -> Progress {
        let counters = Arc::new(Counters::default());
        let shown = counters.clone();
        let counts = move |_: &ProgressState, w: &mut dyn Write| {
            let accepted = shown.accepted.load(Ordering::Relaxed);
            let rejected = shown.rejected.load(Ordering::Relaxed);
            let published = shown.published.load(Ordering::Relaxed);
            let in_flight = published.saturating_sub(accepted + rejected);
            let _ = write!(
                w,
                "{accepted} accepted, {rejected} rejected, {in_flight} in flight"
            );
        };
        let style = ProgressStyle::with_template(
            "{bar:30} {pos}/{len} records  {per_sec:.1}  {counts}  ETA {eta}",
        )
        .expect("the progress template is valid")
        .with_key("counts", counts);
        let bar = ProgressBar::new(total)
            .with_position(done)
            .with_style(style);
        Progress { bar, counters }
    }

    /// One more record published (its result not yet in).
    pub(super) fn published(&self) {
        self.counters.published.fetch_add(1, Ordering::Relaxed);
    }

    /// One more result.
    pub(super) fn result(&self, accepted: bool) {
        let counter = if accepted {
            &self.counters.accepted
        } else {
            &self.counters.rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.bar.inc(1);
    }

    /// Draws the final state and leaves it on the terminal.
    pub(super) fn finish(&self) {
        self.bar.finish();
    }

    /// Removes the bar (the push failed; the error says why).
    pub(super) fn abandon(&self) {
        self.bar.finish_and_clear();
    }
}
