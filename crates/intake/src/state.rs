//! What every handler shares.

use crate::error::ApiError;
use axum::http::HeaderMap;
use kyc_bus::{Publisher, Topology};
use kyc_core::ErrorCode;
use kyc_core::wire::HEADER_API_KEY;
use kyc_store::{Directory, Project};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The handlers' state: a cheap handle on [`Shared`].
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Shared>);

/// What every request of one intake uses.
#[derive(Debug)]
pub struct Shared {
    /// Projects and admins, cached (authentication and the admin check).
    pub directory: Directory,
    /// Publishes sealed submissions and waits for the broker's confirm.
    pub publisher: Publisher,
    /// Exchange and queue names.
    pub topology: Topology,
    /// The largest request body (413 `payload_too_large`).
    pub body_limit: usize,
    /// The batch endpoint's limits (413 `payload_too_large` beyond).
    pub batch: crate::routes::batch::BatchLimits,
    /// How long a request body may take to arrive (408 `request_timeout`).
    pub body_timeout: std::time::Duration,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Cancelled when the process starts draining (`/readyz` then says no).
    pub draining: CancellationToken,
    /// Requests waiting for their result (`?wait`).
    pub waiters: crate::wait::Waiters,
    /// Per-project request budget (429 `rate_limited`).
    pub rate_limit: crate::rate_limit::ProjectRateLimit,
    /// Seals published messages so that only workers can read them and trust the
    /// ids and project authenticated here.
    pub transit: kyc_core::transit::TransitKeyring,
    /// Opens and seals the sensitive columns (the lifecycle endpoints).
    pub data_key: kyc_store::DataKey,
    /// Wakes the outbox relay after a lifecycle change committed (`relay`).
    pub outbox: Arc<tokio::sync::Notify>,
    /// The image store, the keys sealing into it and the upload limits.
    pub images: crate::routes::images::Images,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The caller's project, from `x-api-key` (`docs/api.md` §1). A missing or unknown key is
    /// `forbidden`; a lookup that cannot reach the database (and has nothing
    /// cached) is `unavailable`, never `forbidden`: a valid client must not be told
    /// its key is wrong because we are having trouble.
    pub async fn authenticate<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> Result<(Project, &'h str), ApiError> {
        let key = headers
            .get(HEADER_API_KEY)
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.is_empty())
            .ok_or(ApiError::code(ErrorCode::Forbidden))?;
        match self.directory.project_for_key(key).await {
            Ok(Some(project)) => Ok((project, key)),
            Ok(None) => Err(ApiError::code(ErrorCode::Forbidden)),
            Err(e) => Err(ApiError::lookup("project", e)),
        }
    }
}
