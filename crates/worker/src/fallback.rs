//! Storing a batch, and the fallback when the batch insert fails.

use crate::Worker;
use kyc_store::StoreError;
use kyc_store::submissions::{Outcome, Verdict};

impl Worker {
    /// Stores the outcomes in one transaction. If the batch fails for a reason
    /// other than connection trouble, one bad row must not hold back the rest:
    /// each outcome is then stored on its own, and those that still fail are
    /// returned as `None` (poison).
    pub(crate) async fn store(
        &self,
        outcomes: &[Outcome],
    ) -> Result<Vec<Option<Verdict>>, StoreError> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        match self.store.store_batch(outcomes, &self.data_key).await {
            Ok(verdicts) => Ok(verdicts.into_iter().map(Some).collect()),
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
                        Ok(mut v) => verdicts.push(v.pop()),
                        Err(e) if e.is_transient() => return Err(e),
                        Err(e) => {
                            tracing::error!(submission_id = %outcome.id, error = %e, "cannot store submission");
                            verdicts.push(None);
                        }
                    }
                }
                Ok(verdicts)
            }
        }
    }
}
