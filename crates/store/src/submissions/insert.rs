//! The batch insert: outcomes gathered into one array per column and stored with
//! one `INSERT … SELECT FROM UNNEST` per batch.

use super::{ColumnKind, Outcome, Verdict};
use crate::{DataKey, Store, StoreError};
use kyc_core::ErrorCode;
use kyc_core::submission::{FIELDS, FieldValue};
use sqlx::Arguments;
use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use std::collections::HashMap;
use std::sync::LazyLock;
use time::OffsetDateTime;
use uuid::Uuid;

/// One field's values, one per row.
enum FieldColumn<'a> {
    Text(Vec<Option<&'a str>>),
    Date(Vec<Option<time::Date>>),
    Inet(Vec<Option<String>>),
    Sealed(Vec<Option<Vec<u8>>>),
}

impl<'a> FieldColumn<'a> {
    fn new(kind: ColumnKind, rows: usize) -> FieldColumn<'a> {
        match kind {
            ColumnKind::Text => FieldColumn::Text(Vec::with_capacity(rows)),
            ColumnKind::Date => FieldColumn::Date(Vec::with_capacity(rows)),
            ColumnKind::Inet => FieldColumn::Inet(Vec::with_capacity(rows)),
            ColumnKind::Sealed => FieldColumn::Sealed(Vec::with_capacity(rows)),
        }
    }

    /// Appends one row's value and returns its size in bytes. The column's kind
    /// follows from the field's rule, and so does the value's kind: a text
    /// column gets a text value.
    fn push(
        &mut self,
        value: Option<FieldValue<'a>>,
        key: &DataKey,
        row: Uuid,
        column: &str,
    ) -> usize {
        match self {
            FieldColumn::Text(v) => {
                let text = value.and_then(|x| x.as_str());
                v.push(text);
                text.map_or(0, str::len)
            }
            FieldColumn::Date(v) => {
                v.push(value.and_then(|x| match x {
                    FieldValue::Date(d) => Some(d.0),
                    _ => None,
                }));
                4
            }
            FieldColumn::Inet(v) => {
                let inet = value.map(|x| x.to_string());
                let len = inet.as_ref().map_or(0, String::len);
                v.push(inet);
                len
            }
            FieldColumn::Sealed(v) => {
                let sealed = value.map(|x| key.seal(row, column, &x.to_text()));
                let len = sealed.as_ref().map_or(0, Vec::len);
                v.push(sealed);
                len
            }
        }
    }

    fn has_value(&self, row: usize) -> bool {
        match self {
            FieldColumn::Text(v) => v[row].is_some(),
            FieldColumn::Date(v) => v[row].is_some(),
            FieldColumn::Inet(v) => v[row].is_some(),
            FieldColumn::Sealed(v) => v[row].is_some(),
        }
    }

    fn add_to(&self, arguments: &mut PgArguments) -> Result<(), BoxDynError> {
        match self {
            FieldColumn::Text(v) => arguments.add(v),
            FieldColumn::Date(v) => arguments.add(v),
            FieldColumn::Inet(v) => arguments.add(v),
            FieldColumn::Sealed(v) => arguments.add(v),
        }
    }
}

/// One array per column, for a single set-based `INSERT … SELECT FROM UNNEST`:
/// the outcome's own columns, then one per field of [`FIELDS`], in table order.
struct Columns<'a> {
    id: Vec<Uuid>,
    project_id: Vec<Uuid>,
    status: Vec<&'static str>,
    error_code: Vec<Option<&'static str>>,
    message: Vec<Option<String>>,
    idempotency_key: Vec<Option<&'a str>>,
    received_at: Vec<OffsetDateTime>,
    /// The data key's id, on rows with a sealed value.
    pii_key_id: Vec<Option<&'a str>>,
    /// The sealed values' format (`crate::pii`): always the current one.
    pii_format: Vec<i16>,
    fields: Vec<FieldColumn<'a>>,
    /// The bytes of the variable-length values pushed so far, to size the
    /// encoded arguments once rather than let them grow by doubling.
    value_bytes: usize,
}

impl<'a> Columns<'a> {
    fn with_capacity(rows: usize) -> Columns<'a> {
        Columns {
            id: Vec::with_capacity(rows),
            project_id: Vec::with_capacity(rows),
            status: Vec::with_capacity(rows),
            error_code: Vec::with_capacity(rows),
            message: Vec::with_capacity(rows),
            idempotency_key: Vec::with_capacity(rows),
            received_at: Vec::with_capacity(rows),
            pii_key_id: Vec::with_capacity(rows),
            pii_format: Vec::with_capacity(rows),
            fields: FIELDS
                .iter()
                .map(|spec| FieldColumn::new(ColumnKind::of(spec), rows))
                .collect(),
            value_bytes: 0,
        }
    }

    fn push(&mut self, o: &'a Outcome, key: &'a DataKey) {
        let row = self.id.len();
        self.id.push(o.id);
        self.project_id.push(o.project_id);
        self.idempotency_key.push(o.idempotency_key.as_deref());
        self.value_bytes += o.idempotency_key.as_ref().map_or(0, String::len);
        self.received_at.push(o.received_at);
        // A rejected submission keeps only its outcome: every field is NULL.
        let values = match &o.result {
            Ok(s) => {
                self.status.push("accepted");
                self.error_code.push(None);
                self.message.push(None);
                s.values()
            }
            Err(rejection) => {
                self.status.push("rejected");
                self.error_code.push(Some(rejection.code.as_str()));
                let message = rejection.message();
                self.value_bytes += message.len();
                self.message.push(Some(message));
                [None; FIELDS.len()]
            }
        };
        for ((column, value), spec) in self.fields.iter_mut().zip(values).zip(&FIELDS) {
            self.value_bytes += column.push(value, key, o.id, spec.column);
        }
        let sealed = FIELDS
            .iter()
            .zip(&self.fields)
            .any(|(spec, column)| spec.sealed && column.has_value(row));
        self.pii_key_id.push(sealed.then(|| key.id()));
        self.pii_format.push(crate::pii::CURRENT_FORMAT);
    }

    /// Every column encoded as one array argument, in the insert's order, into
    /// a buffer sized once: a batch's arguments are megabytes, and growing them
    /// by doubling copied them over and over into freshly faulted pages.
    fn arguments(&self) -> Result<PgArguments, sqlx::Error> {
        let rows = self.id.len();
        let params = OUTCOME_COLUMNS.len() + FIELDS.len();
        // An array: a header of at most 24 bytes, then 4 bytes of length per
        // element before its value. Fixed-size values of a row: two UUIDs, a
        // timestamp, a status, a small integer, key ids and codes.
        const FIXED_ROW_BYTES: usize = 96;
        let mut arguments = PgArguments::default();
        arguments.reserve(
            params,
            params * (24 + 4 * rows) + rows * FIXED_ROW_BYTES + self.value_bytes,
        );
        let mut add = || -> Result<(), BoxDynError> {
            arguments.add(&self.id)?;
            arguments.add(&self.project_id)?;
            arguments.add(&self.status)?;
            arguments.add(&self.error_code)?;
            arguments.add(&self.message)?;
            arguments.add(&self.idempotency_key)?;
            arguments.add(&self.received_at)?;
            arguments.add(&self.pii_key_id)?;
            arguments.add(&self.pii_format)?;
            for column in &self.fields {
                column.add_to(&mut arguments)?;
            }
            Ok(())
        };
        add().map_err(sqlx::Error::Encode)?;
        Ok(arguments)
    }
}

/// The outcome's own columns and their array types, bound before the fields in
/// this order by [`Columns::bind`].
const OUTCOME_COLUMNS: [(&str, &str); 9] = [
    ("id", "uuid[]"),
    ("project_id", "uuid[]"),
    ("status", "text[]"),
    ("error_code", "text[]"),
    ("message", "text[]"),
    ("idempotency_key", "text[]"),
    ("received_at", "timestamptz[]"),
    ("pii_key_id", "text[]"),
    ("pii_format", "smallint[]"),
];

/// The outcome's columns a later outcome may overwrite (the final state wins,
/// `docs/api.md` §6); `id`, `project_id`, `idempotency_key` and `received_at` never change.
const OVERWRITTEN: [&str; 4] = ["status", "error_code", "message", "pii_key_id"];

/// The batch insert, built once from [`OUTCOME_COLUMNS`] and [`FIELDS`]: every
/// column is one `UNNEST`ed array parameter, and no row of an erased id
/// (`submission_tombstones`) is written.
///
/// `insert_new` is that statement alone: it stores every row of the batch, or
/// fails at the first id already there. `insert` adds what a batch with such
/// ids needs: a row already there is left alone, with one exception — a
/// `processing_error` rejection (written when a message could not be stored
/// within its delivery limit, before it was dead-lettered) is replaced by an
/// accepted outcome, which is what a successful replay of that message brings —
/// and every row the statement wrote, inserted or replaced, is returned.
/// Those clauses cost PostgreSQL about a fifth of the insert per row
/// (`docs/benchmarks.md`), and a migration's batches are nearly all new ids, so
/// [`Store::store_batch`] tries `insert_new` first.
struct Statements {
    insert_new: String,
    insert: String,
}

static STATEMENTS: LazyLock<Statements> = LazyLock::new(|| {
    let columns: Vec<(&str, &str, String)> = OUTCOME_COLUMNS
        .iter()
        .map(|&(name, array)| (name, array, name.to_owned()))
        .chain(FIELDS.iter().map(|spec| {
            let kind = ColumnKind::of(spec);
            (spec.column, kind.array_type(), kind.select(spec.column))
        }))
        .collect();
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let names = names.join(", ");
    let selects: Vec<&str> = columns.iter().map(|c| c.2.as_str()).collect();
    let params: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 1, c.1))
        .collect();
    let updates: Vec<String> = OVERWRITTEN
        .iter()
        .copied()
        .chain(FIELDS.iter().map(|spec| spec.column))
        .map(|column| format!("{column} = EXCLUDED.{column}"))
        .chain(["processed_at = now()".to_owned()])
        .collect();
    let insert_new = format!(
        "INSERT INTO submissions ({names})\nSELECT {}\nFROM UNNEST({}) AS t({names})\n\
         WHERE NOT EXISTS (SELECT 1 FROM submission_tombstones z\n\
                           WHERE z.id = t.id AND z.project_id = t.project_id)",
        selects.join(", "),
        params.join(", "),
    );
    let insert = format!(
        "{insert_new}\n\
         ON CONFLICT (id) DO UPDATE SET {}\n\
         WHERE submissions.status = 'rejected' AND submissions.error_code = '{}'\n\
         AND EXCLUDED.status = 'accepted' AND submissions.project_id = EXCLUDED.project_id\n\
         AND submissions.deleted_at IS NULL\n\
         RETURNING id",
        updates.join(", "),
        ErrorCode::ProcessingError.as_str(),
    );
    Statements { insert_new, insert }
});

impl Store {
    /// Stores a batch in one transaction with one set-based insert, and returns
    /// the stored verdict for each outcome, in order.
    ///
    /// The batch is first written with the short statement (`insert_new`); if
    /// any of its ids is already stored or erased, that transaction is rolled
    /// back, so nothing of it stays, and the batch is written again with the
    /// full one in a new transaction.
    ///
    /// `ON CONFLICT (id)` makes a redelivered message harmless: its row is already
    /// there, and its verdict is read back from the row (not recomputed), so a
    /// redelivery re-announces exactly what was stored. The one exception is a
    /// stored `processing_error`, which an accepted outcome replaces (see [`Statements`]).
    pub async fn store_batch(
        &self,
        outcomes: &[Outcome],
        key: &DataKey,
    ) -> Result<Vec<Verdict>, StoreError> {
        let mut c = Columns::with_capacity(outcomes.len());
        // The first outcome of an id only: `ON CONFLICT DO UPDATE` refuses to touch
        // a row twice in one statement (and `insert_new` would fail on the
        // second), and the first one wins anyway.
        let mut seen = std::collections::HashSet::with_capacity(outcomes.len());
        for o in outcomes {
            if seen.insert(o.id) {
                c.push(o, key);
            }
        }
        let mut projects: Vec<Uuid> = c.project_id.clone();
        projects.sort_unstable();
        projects.dedup();

        // New ids only, the common case: the short statement stores them all.
        // Otherwise (an id already stored, or erased) nothing of it stays and
        // the batch takes the full statement in a new transaction.
        let mut tx = self.begin_locked(&projects).await?;
        let new_rows = sqlx::query_with(STATEMENTS.insert_new.as_str(), c.arguments()?)
            .execute(&mut *tx)
            .await;
        let all_new = match new_rows {
            Ok(done) => done.rows_affected() == c.id.len() as u64,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => false,
            Err(e) => return Err(e.into()),
        };
        let inserted = if all_new {
            if c.id.len() == outcomes.len() {
                // Every outcome its own new row: its verdict is ours.
                tx.commit().await?;
                return Ok(outcomes.iter().map(Verdict::of).collect());
            }
            c.id.clone()
        } else {
            tracing::debug!(
                rows = c.id.len(),
                "a batch with ids already stored or erased: written again with the full insert"
            );
            tx.rollback().await?;
            tx = self.begin_locked(&projects).await?;
            self.insert_full(&mut tx, &c).await?
        };

        // The verdict of every id: ours for the rows just inserted (the first
        // outcome of an id wins, as in the insert), the stored one for the rest.
        let mut verdicts: HashMap<Uuid, Verdict> = HashMap::with_capacity(outcomes.len());
        let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
        for o in outcomes {
            if inserted.contains(&o.id) {
                verdicts.entry(o.id).or_insert_with(|| Verdict::of(o));
            }
        }
        // Read back by id *and* project: a row of another project under the same
        // id is never this outcome's verdict (the outcome then has none, and its
        // message is not acknowledged).
        let (existing, existing_projects): (Vec<Uuid>, Vec<Uuid>) = outcomes
            .iter()
            .filter(|o| !inserted.contains(&o.id))
            .map(|o| (o.id, o.project_id))
            .unzip();
        if !existing.is_empty() {
            // Erased ids: never stored again, announced as `invalid_submission`.
            let erased: Vec<(Uuid,)> = sqlx::query_as(
                "SELECT z.id FROM submission_tombstones z
                 JOIN UNNEST($1::uuid[], $2::uuid[]) AS t(id, project_id)
                   ON z.id = t.id AND z.project_id = t.project_id",
            )
            .bind(&existing)
            .bind(&existing_projects)
            .fetch_all(&mut *tx)
            .await?;
            for (id,) in erased {
                verdicts.insert(
                    id,
                    Verdict {
                        accepted: false,
                        error_code: Some(ErrorCode::InvalidSubmission),
                        message: Some(ErrorCode::InvalidSubmission.base_message().to_owned()),
                    },
                );
            }
            let rows: Vec<(Uuid, String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT s.id, s.status, s.error_code, s.message
                 FROM submissions s
                 JOIN UNNEST($1::uuid[], $2::uuid[]) AS t(id, project_id)
                   ON s.id = t.id AND s.project_id = t.project_id",
            )
            .bind(&existing)
            .bind(&existing_projects)
            .fetch_all(&mut *tx)
            .await?;
            for (id, status, code, message) in rows {
                verdicts
                    .entry(id)
                    .or_insert_with(|| Verdict::from_row(&status, code, message));
            }
        }
        tx.commit().await?;

        outcomes
            .iter()
            .map(|o| {
                verdicts.get(&o.id).cloned().ok_or(StoreError::NotFound(
                    "a submission of the batch after its insert",
                ))
            })
            .collect()
    }
}

impl Store {
    /// A transaction holding the shared lock of each of `projects` (sorted):
    /// erasures of these projects wait for it, and it for them, so the insert
    /// sees every tombstone committed before it (`crate::lifecycle`).
    async fn begin_locked(
        &self,
        projects: &[Uuid],
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = self.pool().begin().await?;
        for &project in projects {
            crate::lifecycle::lock_project(&mut tx, project, false).await?;
        }
        Ok(tx)
    }

    /// The full statement ([`Statements::insert`]): the ids it wrote.
    async fn insert_full(
        &self,
        tx: &mut sqlx::PgConnection,
        c: &Columns<'_>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let written: Vec<(Uuid,)> = sqlx::query_as_with(STATEMENTS.insert.as_str(), c.arguments()?)
            .fetch_all(tx)
            .await?;
        Ok(written.into_iter().map(|(id,)| id).collect())
    }
}
