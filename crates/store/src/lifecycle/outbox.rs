//! The transactional outbox: lifecycle events are written in the transaction of
//! the change they announce and published after commit by a relay (the
//! intake's), which marks them sent once the broker confirmed them.
//!
//! At least once: a relay that crashes after the broker's confirm and before
//! marking the row sends it again; consumers tell repeats apart by
//! `submissionId`, `event` and `version`/`at`.

use super::LifecycleEvent;
use crate::{Store, StoreError};

/// One unsent event.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its place in the outbox (publish order).
    pub seq: i64,
    /// The events-exchange routing key.
    pub routing_key: String,
    /// The JSON body.
    pub body: String,
}

/// Writes `event` to the outbox inside the caller's transaction.
pub(crate) async fn write(
    tx: &mut sqlx::PgConnection,
    event: &LifecycleEvent,
) -> Result<(), StoreError> {
    let body = serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("INSERT INTO event_outbox (routing_key, body) VALUES ($1, $2::jsonb)")
        .bind(event.routing_key())
        .bind(body)
        .execute(tx)
        .await?;
    Ok(())
}

impl Store {
    /// The oldest unsent events, at most `limit`, in the order they were written.
    pub async fn outbox_pending(&self, limit: i64) -> Result<Vec<Pending>, StoreError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT seq, routing_key, body::text FROM event_outbox
             WHERE sent_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, routing_key, body)| Pending {
                seq,
                routing_key,
                body,
            })
            .collect())
    }

    /// Marks events sent (after the broker confirmed them), and forgets events
    /// sent more than a day ago.
    pub async fn outbox_mark_sent(&self, seqs: &[i64]) -> Result<(), StoreError> {
        sqlx::query("UPDATE event_outbox SET sent_at = now() WHERE seq = ANY($1)")
            .bind(seqs)
            .execute(self.pool())
            .await?;
        sqlx::query("DELETE FROM event_outbox WHERE sent_at < now() - interval '1 day'")
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
