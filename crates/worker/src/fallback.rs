//! Storing a batch, and the fallback when the batch insert fails.

use crate::Worker;
use kyc_store::StoreError;
use kyc_store::submissions::{Outcome, Verdict};

/// An outcome's stored verdict, or why the database refused its row (a
/// detail for the dead letter, `records::refusal_detail`).
pub(crate) type Stored = Result<Verdict, String>;

impl Worker {
    /// Stores the outcomes in one transaction. If the batch fails for a reason
    /// other than connection trouble, one bad row must not hold back the rest:
    /// each outcome is then stored on its own, and those that still fail are
    /// returned as `Err` with the reason (poison).
    pub(crate) async fn store(&self, outcomes: &[Outcome]) -> Result<Vec<Stored>, StoreError> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        match self.store.store_batch(outcomes, &self.data_key).await {
            Ok(verdicts) => Ok(verdicts.into_iter().map(Ok).collect()),
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "batch insert failed; storing one by one");
                let mut verdicts = Vec::with_capacity(outcomes.len());
                for outcome in outcomes {
                    match self
                        .store
                        .store_batch(std::slice::from_ref(outcome), &self.data_key)
                        .await
                    {
                        Ok(mut v) => verdicts.push(v.pop().ok_or_else(|| "no verdict".to_owned())),
                        Err(e) if e.is_transient() => return Err(e),
                        Err(e) => {
                            tracing::error!(submission_id = %outcome.id, error = %e, "cannot store submission");
                            verdicts.push(Err(crate::records::refusal_detail(&e)));
                        }
                    }
                }
                Ok(verdicts)
            }
        }
    }
}
