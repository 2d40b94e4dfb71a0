//! Waiting for the dead queue, as `kycctl dlq list` shows it.

use kyc_cli::dlq::{self, DeadLetter};
use kyc_testkit::{TestEnv, eventually};
use std::time::Duration;

/// The dead queue's first letters (up to 10) once it holds any; panics naming
/// `what` if none arrives within `timeout`.
pub async fn await_dead_letters(env: &TestEnv, timeout: Duration, what: &str) -> Vec<DeadLetter> {
    eventually(timeout, what, || async {
        let letters = dlq::list(&env.settings, 10).await.unwrap();
        (!letters.is_empty()).then_some(letters)
    })
    .await
}
