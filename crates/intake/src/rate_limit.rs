//! Per-project rate limits (`docs/api.md` §3 `rate_limited`): a token bucket per project,
//! refilled at `rate` per second with a burst of one second's worth. In memory,
//! per intake process: with several intakes behind a balancer, each enforces its
//! share.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use uuid::Uuid;

/// The per-project token buckets; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ProjectRateLimit {
    limiter: Option<Arc<DefaultKeyedRateLimiter<Uuid>>>,
}

impl ProjectRateLimit {
    /// `per_second` requests per project and second; 0 disables the limit.
    pub fn new(per_second: u32) -> ProjectRateLimit {
        ProjectRateLimit {
            limiter: NonZeroU32::new(per_second)
                .map(|rate| Arc::new(RateLimiter::dashmap(Quota::per_second(rate)))),
        }
    }

    /// Takes `n` tokens for the project (the batch endpoint counts records);
    /// `false` when its bucket has fewer, or `n` exceeds its burst.
    pub fn allow_n(&self, project_id: Uuid, n: u32) -> bool {
        match (&self.limiter, NonZeroU32::new(n)) {
            (Some(limiter), Some(n)) => matches!(limiter.check_key_n(&project_id, n), Ok(Ok(()))),
            _ => true,
        }
    }

    /// Takes one token for the project; `false` when its bucket is empty.
    pub fn allow(&self, project_id: Uuid) -> bool {
        match &self.limiter {
            Some(limiter) => limiter.check_key(&project_id).is_ok(),
            None => true,
        }
    }
}
