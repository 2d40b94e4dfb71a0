//! `kycctl data-key reseal`: rows whose sealed values are under an older data key
//! (or in the format before values were bound to their place) are opened with
//! the keyring and sealed again under the current key, a batch per transaction,
//! until none is left. Safe to stop and rerun: each batch commits on its own and
//! the scan only finds rows still to do.

use crate::pii::CURRENT_FORMAT;
use crate::{DataKey, Store, StoreError};
use kyc_core::submission::FIELDS;
use sqlx::Row;
use std::sync::LazyLock;
use uuid::Uuid;

/// The sealed columns, in table order.
fn sealed_columns() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().filter(|f| f.sealed).map(|f| f.column)
}

/// A batch of rows still to reseal, locked, skipping rows another reseal holds.
static SELECT: LazyLock<String> = LazyLock::new(|| {
    let columns: Vec<&str> = sealed_columns().collect();
    format!(
        "SELECT id, pii_key_id, pii_format, {} FROM submissions \
         WHERE pii_key_id IS NOT NULL AND (pii_key_id <> $1 OR pii_format <> $2) \
         ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
        columns.join(", ")
    )
});

static UPDATE: LazyLock<String> = LazyLock::new(|| {
    let sets: Vec<String> = sealed_columns()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 4))
        .collect();
    format!(
        "UPDATE submissions SET pii_key_id = $2, pii_format = $3, {} WHERE id = $1",
        sets.join(", ")
    )
});

impl Store {
    /// How many rows have sealed values under another key than `key`'s current
    /// one, or in an older format.
    pub async fn rows_to_reseal(&self, key: &DataKey) -> Result<i64, StoreError> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM submissions \
             WHERE pii_key_id IS NOT NULL AND (pii_key_id <> $1 OR pii_format <> $2)",
        )
        .bind(key.id())
        .bind(CURRENT_FORMAT)
        .fetch_one(self.pool())
        .await?;
        Ok(count)
    }

    /// Reseals at most `batch` rows in one transaction; how many it did (0: done).
    /// A row whose key is not in the ring fails the batch with
    /// [`StoreError::Unopenable`]: nothing is changed for it.
    pub async fn reseal_batch(&self, key: &DataKey, batch: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let rows = sqlx::query(SELECT.as_str())
            .bind(key.id())
            .bind(CURRENT_FORMAT)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let id: Uuid = row.try_get(0)?;
            let key_id: String = row.try_get(1)?;
            let format: i16 = row.try_get(2)?;
            let mut update = sqlx::query(UPDATE.as_str())
                .bind(id)
                .bind(key.id())
                .bind(CURRENT_FORMAT);
            for (i, column) in sealed_columns().enumerate() {
                let sealed: Option<Vec<u8>> = row.try_get(3 + i)?;
                let resealed = match sealed {
                    None => None,
                    Some(sealed) => {
                        let plain = key
                            .open(&key_id, format, id, column, &sealed)
                            .ok_or(StoreError::Unopenable { column })?;
                        Some(key.seal(id, column, &plain))
                    }
                };
                update = update.bind(resealed);
            }
            update.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}
