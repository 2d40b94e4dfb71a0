//! The outbox relay: publishes the lifecycle events the endpoints of
//! `docs/api.md` §15 wrote to `event_outbox` in their transactions, in order,
//! confirmed by the broker, then marks them sent.
//!
//! A change commits its event with it, so a crash between commit and publish
//! loses nothing: the row stays unsent and this relay (of this or any intake)
//! sends it when it runs next. A crash between the broker's confirm and the
//! mark sends it again: events are delivered at least once.

use crate::state::AppState;
use kyc_bus::{Outgoing, persistent};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the outbox is looked at without a wake-up (events left by a
/// crashed intake, or written by `kycctl`).
const POLL: Duration = Duration::from_secs(1);
/// Events published per round at most.
const BATCH: i64 = 100;

/// Runs the relay until `stop` is cancelled.
pub fn spawn(app: AppState, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let sent = match relay_once(&app).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay: will retry");
                    0
                }
            };
            if sent > 0 {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = app.outbox.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    });
}

/// Publishes one batch of unsent events; how many were confirmed and marked.
async fn relay_once(app: &AppState) -> anyhow::Result<usize> {
    let store = app.directory.store();
    let pending = store.outbox_pending(BATCH).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let exchange = app.topology.events_exchange();
    let messages = pending
        .iter()
        .map(|p| Outgoing {
            exchange: &exchange,
            routing_key: &p.routing_key,
            payload: p.body.as_bytes(),
            properties: persistent().with_type("kyc.lifecycle.v1".into()),
            mandatory: false,
        })
        .collect();
    let outcomes = app.publisher.publish_all(messages).await;
    // Marked in order up to the first unconfirmed one, which is retried (with
    // those after it) on the next round, keeping the order.
    let confirmed: Vec<i64> = pending
        .iter()
        .zip(&outcomes)
        .take_while(|(_, o)| o.is_ok())
        .map(|(p, _)| p.seq)
        .collect();
    if !confirmed.is_empty() {
        store.outbox_mark_sent(&confirmed).await?;
    }
    if let Some(Err(e)) = outcomes.into_iter().find(Result::is_err) {
        anyhow::bail!("publish: {e}");
    }
    Ok(confirmed.len())
}
