//! The record lifecycle (`docs/api.md` §15): listing a project's stored
//! submissions ([`list`]), correcting them ([`correct`]), erasing them
//! ([`erase`]), and the transactional outbox their events go through
//! ([`outbox`]).
//!
//! Every change runs in one transaction of the intake's: the change, its
//! history and its event (an [`outbox`] row) commit together, so a 200 means
//! durable, and an event is never lost between commit and publish.
//!
//! Erasure and the workers' insert meet on a per-project advisory lock
//! ([`lock_project`]): an erasure holds it exclusively, a worker's batch shares
//! it, and the worker's insert skips ids with a tombstone. Whatever order they
//! come in, an id erased under a 200 is never stored again.

pub mod correct;
pub mod erase;
pub mod list;
pub mod outbox;

use crate::submissions::ColumnKind;
use crate::{DataKey, StoreError};
use kyc_core::submission::{FIELDS, FieldSpec};
use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// The first key of the two-key advisory lock space this service uses for
/// "the project's submissions" (the second is a hash of the project id).
const PROJECT_LOCK_SPACE: i32 = 0x4b59_4301;

/// Takes the project's lifecycle lock for the rest of the transaction:
/// exclusively for an erasure, shared for a worker's insert. A hash collision
/// between two projects only makes one wait for the other.
pub(crate) async fn lock_project(
    tx: &mut sqlx::PgConnection,
    project_id: Uuid,
    exclusive: bool,
) -> Result<(), StoreError> {
    let sql = if exclusive {
        "SELECT pg_advisory_xact_lock($1, hashtext($2::text))"
    } else {
        "SELECT pg_advisory_xact_lock_shared($1, hashtext($2::text))"
    };
    sqlx::query(sql)
        .bind(PROJECT_LOCK_SPACE)
        .bind(project_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// The select list of every field's column, decoded as [`decode_fields`] reads
/// them (dates as `date`, IP addresses as text, sealed values as bytes).
pub(crate) fn field_columns() -> String {
    FIELDS
        .iter()
        .map(|spec| match ColumnKind::of(spec) {
            ColumnKind::Inet => format!("host({})", spec.column),
            ColumnKind::Text => format!("{}::text", spec.column),
            ColumnKind::Date | ColumnKind::Sealed => spec.column.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fields of a row selected with [`field_columns`] at `offset`, followed by
/// `pii_key_id` and `pii_format`, in their wire form; sealed values opened.
pub(crate) fn decode_fields(
    row: &PgRow,
    offset: usize,
    id: Uuid,
    key: &DataKey,
) -> Result<Vec<(&'static FieldSpec, Option<String>)>, StoreError> {
    let key_id: Option<String> = row.try_get(offset + FIELDS.len())?;
    let format: i16 = row.try_get(offset + FIELDS.len() + 1)?;
    let mut fields = Vec::with_capacity(FIELDS.len());
    for (i, spec) in FIELDS.iter().enumerate() {
        let i = offset + i;
        let value = match ColumnKind::of(spec) {
            ColumnKind::Text | ColumnKind::Inet => row.try_get::<Option<String>, _>(i)?,
            ColumnKind::Date => row
                .try_get::<Option<time::Date>, _>(i)?
                .map(|d| kyc_core::types::IsoDate(d).to_string()),
            ColumnKind::Sealed => match row.try_get::<Option<Vec<u8>>, _>(i)? {
                None => None,
                Some(sealed) => Some(
                    key_id
                        .as_deref()
                        .and_then(|k| key.open(k, format, id, spec.column, &sealed))
                        .ok_or(StoreError::Unopenable {
                            column: spec.column,
                        })?,
                ),
            },
        };
        fields.push((spec, value));
    }
    Ok(fields)
}

/// What a lifecycle event says (`submission.updated`, `submission.deleted`).
/// Names of fields or groups only, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEvent {
    /// `submission.updated` or `submission.deleted`.
    pub event: String,
    /// The submission changed.
    pub submission_id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// The fields corrected (wire names), or the groups erased.
    pub fields: Vec<String>,
    /// The administrator named in the request, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// The row's version after a correction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    /// For an erasure: whether only some groups were erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<bool>,
    /// When the change committed (its transaction's time), RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl LifecycleEvent {
    /// `submission.updated.<projectId>` / `submission.deleted.<projectId>`.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.event, self.project_id)
    }
}
