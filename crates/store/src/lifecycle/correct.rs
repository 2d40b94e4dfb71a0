//! Corrections (`PATCH /v3/submission`): new values for some fields of a stored
//! submission, the previous ones kept in `submission_history`, and a
//! `submission.updated` event in the outbox — one transaction.
//!
//! The row is locked (`FOR UPDATE`) for the transaction, so two corrections of
//! one submission apply one after the other in the order they commit, which is
//! the order they are answered in, and each applies to the state the previous
//! one left: a correction never writes an older state over a newer one.

use super::{LifecycleEvent, decode_fields, field_columns, outbox};
use crate::submissions::ColumnKind;
use crate::{DataKey, Store, StoreError};
use kyc_core::submission::{FIELDS, FieldSpec};
use sqlx::{Postgres, QueryBuilder, Row};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One correction, validated (`kyc_core::submission::validate_fields`).
#[derive(Debug, Clone)]
pub struct Correction<'a> {
    /// The caller's project.
    pub project_id: Uuid,
    /// The submission to correct.
    pub submission_id: Uuid,
    /// The administrator named in the request (checked by the caller).
    pub admin: &'a str,
    /// New values in wire form; `None` clears an optional field.
    pub fields: Vec<(&'static FieldSpec, Option<String>)>,
}

/// What a correction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrected {
    /// The fields whose value changed (wire names); empty when every value sent
    /// was the stored one (nothing is written then).
    pub changed: Vec<&'static str>,
    /// The row's version afterwards.
    pub version: i32,
}

/// Why a correction was refused.
#[derive(Debug, thiserror::Error)]
pub enum CorrectError {
    /// No stored, undeleted submission of the project has that id.
    #[error("no such submission")]
    Unknown,
    /// The corrected row would break a rule between fields (expireDate before
    /// issueDate): `invalid_format` naming the field.
    #[error("invalid format: {0}")]
    InvalidFormat(&'static str),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CorrectError {
    fn from(e: sqlx::Error) -> CorrectError {
        CorrectError::Store(e.into())
    }
}

impl Store {
    /// Applies a correction durably (see the module's documentation).
    pub async fn correct(
        &self,
        correction: &Correction<'_>,
        key: &DataKey,
    ) -> Result<Corrected, CorrectError> {
        let id = correction.submission_id;
        let mut tx = self.pool().begin().await?;
        let select = format!(
            "SELECT version, {}, pii_key_id, pii_format FROM submissions \
             WHERE id = $1 AND project_id = $2 AND status = 'accepted' AND deleted_at IS NULL \
             FOR UPDATE",
            field_columns()
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(select))
            .bind(id)
            .bind(correction.project_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(CorrectError::Unknown);
        };
        let version: i32 = row.try_get(0)?;
        let previous = decode_fields(&row, 1, id, key)?;

        // The state after the correction, field by field.
        let mut next: Vec<Option<String>> = previous.iter().map(|(_, v)| v.clone()).collect();
        let mut changed = Vec::new();
        for (spec, value) in &correction.fields {
            let i = FIELDS
                .iter()
                .position(|f| f.name == spec.name)
                .ok_or(CorrectError::Unknown)?;
            if next[i] != *value {
                next[i] = value.clone();
                changed.push(spec.name);
            }
        }
        let position = |name: &str| FIELDS.iter().position(|f| f.name == name);
        if let (Some(issue), Some(expire)) = (position("issueDate"), position("expireDate"))
            && let (Some(issue), Some(expire)) = (&next[issue], &next[expire])
            && expire < issue
        {
            // ISO dates compare as text.
            return Err(CorrectError::InvalidFormat("expireDate"));
        }
        if changed.is_empty() {
            tx.commit().await?;
            return Ok(Corrected { changed, version });
        }
        let version = version + 1;

        // The update. A changed sealed field reseals every sealed field of the row
        // under the current key, so the row's one key id stays true.
        let reseal = changed
            .iter()
            .any(|name| FIELDS.iter().any(|f| f.name == *name && f.sealed));
        let mut update: QueryBuilder<Postgres> =
            QueryBuilder::new("UPDATE submissions SET updated_at = now(), version = ");
        update.push_bind(version);
        for (i, spec) in FIELDS.iter().enumerate() {
            let touched = changed.contains(&spec.name) || (reseal && spec.sealed);
            if !touched {
                continue;
            }
            update.push(format!(", {} = ", spec.column));
            match ColumnKind::of(spec) {
                ColumnKind::Sealed => {
                    update.push_bind(next[i].as_deref().map(|v| key.seal(id, spec.column, v)));
                }
                ColumnKind::Text => {
                    update.push_bind(next[i].clone());
                }
                ColumnKind::Date => {
                    update.push_bind(next[i].clone()).push("::date");
                }
                ColumnKind::Inet => {
                    update.push_bind(next[i].clone()).push("::inet");
                }
            }
        }
        if reseal {
            let any_sealed = FIELDS
                .iter()
                .zip(&next)
                .any(|(f, v)| f.sealed && v.is_some());
            update
                .push(", pii_key_id = ")
                .push_bind(any_sealed.then(|| key.id().to_owned()))
                .push(", pii_format = ")
                .push_bind(crate::pii::CURRENT_FORMAT);
        }
        update.push(" WHERE id = ").push_bind(id);
        update.build().execute(&mut *tx).await?;

        // The history: previous values of the changed fields, sealed ones sealed.
        let mut plain = serde_json::Map::new();
        let mut sealed = BTreeMap::new();
        for (spec, value) in &previous {
            if !changed.contains(&spec.name) {
                continue;
            }
            let value = value.clone().map_or(serde_json::Value::Null, Into::into);
            if spec.sealed {
                sealed.insert(spec.name, value);
            } else {
                plain.insert(spec.name.to_owned(), value);
            }
        }
        let sealed_previous = (!sealed.is_empty()).then(|| {
            let json = serde_json::to_string(&sealed).unwrap_or_default();
            key.seal(id, &history_column(version), &json)
        });
        sqlx::query(
            "INSERT INTO submission_history
               (submission_id, project_id, version, admin, fields, previous, previous_sealed, pii_key_id)
             VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)",
        )
        .bind(id)
        .bind(correction.project_id)
        .bind(version)
        .bind(correction.admin)
        .bind(changed.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .bind(serde_json::Value::Object(plain).to_string())
        .bind(&sealed_previous)
        .bind(sealed_previous.as_ref().map(|_| key.id().to_owned()))
        .execute(&mut *tx)
        .await?;

        let at: time::OffsetDateTime = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await?;
        outbox::write(
            &mut tx,
            &LifecycleEvent {
                event: "submission.updated".to_owned(),
                submission_id: id,
                project_id: correction.project_id,
                fields: changed.iter().map(|s| s.to_string()).collect(),
                admin: Some(correction.admin.to_owned()),
                version: Some(version),
                partial: None,
                at,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Corrected { changed, version })
    }

    /// The corrections of a submission, oldest first: (version, admin, fields,
    /// previous values with sealed ones opened). For checks and support tools.
    pub async fn correction_history(
        &self,
        submission_id: Uuid,
        key: &DataKey,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows: Vec<HistoryRow> = sqlx::query_as(
            "SELECT version, admin, fields, previous::text, previous_sealed, pii_key_id
                 FROM submission_history WHERE submission_id = $1 ORDER BY version",
        )
        .bind(submission_id)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (version, admin, fields, previous, sealed, key_id) in rows {
            let mut previous: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&previous).unwrap_or_default();
            if let Some(sealed) = sealed {
                let column = history_column(version);
                let opened = key_id
                    .as_deref()
                    .and_then(|k| {
                        key.open(
                            k,
                            crate::pii::CURRENT_FORMAT,
                            submission_id,
                            &column,
                            &sealed,
                        )
                    })
                    .ok_or(StoreError::Unopenable {
                        column: "submission_history.previous_sealed",
                    })?;
                let opened: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&opened).unwrap_or_default();
                previous.extend(opened);
            }
            out.push(HistoryEntry {
                version,
                admin,
                fields,
                previous,
            });
        }
        Ok(out)
    }
}

/// A `submission_history` row as read: version, admin, fields, previous
/// (JSON text), previous sealed values, their key.
type HistoryRow = (
    i32,
    String,
    Vec<String>,
    String,
    Option<Vec<u8>>,
    Option<String>,
);

/// One correction as the history holds it.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The row's version the correction produced.
    pub version: i32,
    /// Who made it.
    pub admin: String,
    /// The fields it changed.
    pub fields: Vec<String>,
    /// Their previous values (`null`: absent), sealed ones opened.
    pub previous: serde_json::Map<String, serde_json::Value>,
}

/// The place a history row's sealed values are bound to: the submission id and
/// this name (which carries the version).
fn history_column(version: i32) -> String {
    format!("submission_history.previous_sealed.v{version}")
}
