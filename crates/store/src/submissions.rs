//! Submissions: the batch insert the workers use, and result lookups (`docs/api.md` §6).

use crate::{DataKey, Store, StoreError};
use kyc_core::submission::{FIELDS, FieldSpec, Rule};
use kyc_core::{ErrorCode, Rejection, Submission};
use sqlx::Row;
use std::sync::LazyLock;
use time::OffsetDateTime;
use uuid::Uuid;

/// What a worker decided about one message, ready to be stored.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The submission id (the row's primary key).
    pub id: Uuid,
    /// The project the submission belongs to.
    pub project_id: Uuid,
    /// When the intake (or push) received it.
    pub received_at: OffsetDateTime,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
    /// The validated submission, or why it was rejected.
    pub result: Result<Submission, Rejection>,
}

/// The stored verdict for a submission: what the event and `GET` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Accepted, or rejected with a code.
    pub accepted: bool,
    /// The rejection's code; `None` when accepted.
    pub error_code: Option<ErrorCode>,
    /// The rejection's message; `None` when accepted.
    pub message: Option<String>,
}

impl Verdict {
    fn of(outcome: &Outcome) -> Verdict {
        match &outcome.result {
            Ok(_) => Verdict {
                accepted: true,
                error_code: None,
                message: None,
            },
            Err(rejection) => Verdict {
                accepted: false,
                error_code: Some(rejection.code),
                message: Some(rejection.message()),
            },
        }
    }

    fn from_row(status: &str, error_code: Option<String>, message: Option<String>) -> Verdict {
        Verdict {
            accepted: status == "accepted",
            // Codes are written by this service from `ErrorCode::as_str`; an unknown
            // one would mean a newer writer, and reads as a processing error.
            error_code: error_code
                .map(|c| ErrorCode::from_wire(&c).unwrap_or(ErrorCode::ProcessingError)),
            message,
        }
    }
}

/// A stored submission's result, as `GET /v3/submission/migration/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    /// The submission id.
    pub id: Uuid,
    /// What was decided.
    pub verdict: Verdict,
    /// When it was received.
    pub received_at: OffsetDateTime,
    /// When its row was written.
    pub processed_at: OffsetDateTime,
    /// When it was erased (`DELETE /v3/submission`, `docs/api.md` §15), if it was.
    pub deleted_at: Option<OffsetDateTime>,
}

/// How a field's column is typed, which follows from the field's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    Text,
    Date,
    /// Bound as text, cast to `inet` in the insert.
    Inet,
    /// Sealed under the data key (`docs/api.md` §7), whatever the rule.
    Sealed,
}

impl ColumnKind {
    pub(crate) fn of(spec: &FieldSpec) -> ColumnKind {
        if spec.sealed {
            return ColumnKind::Sealed;
        }
        match spec.rule {
            Rule::Email
            | Rule::Text { .. }
            | Rule::KycStatus
            | Rule::IdType
            | Rule::Country
            | Rule::Gender => ColumnKind::Text,
            Rule::Date | Rule::PastDate => ColumnKind::Date,
            Rule::Ip => ColumnKind::Inet,
        }
    }

    /// The array type the column is bound as.
    fn array_type(self) -> &'static str {
        match self {
            ColumnKind::Text | ColumnKind::Inet => "text[]",
            ColumnKind::Date => "date[]",
            ColumnKind::Sealed => "bytea[]",
        }
    }

    /// The expression that turns the unnested value into the column's type.
    fn select(self, column: &str) -> String {
        match self {
            ColumnKind::Inet => format!("{column}::inet"),
            ColumnKind::Text | ColumnKind::Date | ColumnKind::Sealed => column.to_owned(),
        }
    }
}

/// Every field's column of one row, as [`Store::read_fields`] decodes them.
static READ_FIELDS: LazyLock<String> = LazyLock::new(|| {
    let columns: Vec<String> = FIELDS
        .iter()
        .map(|spec| match ColumnKind::of(spec) {
            // `host`, not `::text`, which would add the netmask.
            ColumnKind::Inet => format!("host({})", spec.column),
            ColumnKind::Text => format!("{}::text", spec.column),
            ColumnKind::Date | ColumnKind::Sealed => spec.column.to_owned(),
        })
        .collect();
    format!(
        "SELECT {}, pii_key_id, pii_format FROM submissions WHERE id = $1",
        columns.join(", ")
    )
});

mod insert;

impl Store {
    /// Every field of a stored submission in its wire form, in [`FIELDS`] order
    /// (`None`: NULL, an absent field or a rejected row), sealed columns opened
    /// with `key`; `None` if there is no such row. For checks and support tools:
    /// the service itself never reads personal data back.
    pub async fn read_fields(
        &self,
        id: Uuid,
        key: &DataKey,
    ) -> Result<Option<Vec<(&'static FieldSpec, Option<String>)>>, StoreError> {
        let Some(row) = sqlx::query(READ_FIELDS.as_str())
            .bind(id)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let key_id: Option<String> = row.try_get(FIELDS.len())?;
        let format: i16 = row.try_get(FIELDS.len() + 1)?;
        let mut fields = Vec::with_capacity(FIELDS.len());
        for (i, spec) in FIELDS.iter().enumerate() {
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
        Ok(Some(fields))
    }

    /// A project's processed submission, or `None` (also for another project's).
    pub async fn find_result(
        &self,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<Option<StoredResult>, StoreError> {
        type Row = (
            Uuid,
            String,
            Option<String>,
            Option<String>,
            OffsetDateTime,
            OffsetDateTime,
            Option<OffsetDateTime>,
            Uuid,
        );
        // By the primary key alone, the project checked here: with `project_id`
        // in the WHERE clause a plan made on stale statistics (during a bulk
        // load) can walk the project's whole listing index instead.
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, status, error_code, message, received_at, processed_at, deleted_at,
                    project_id
             FROM submissions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.filter(|r| r.7 == project_id).map(
            |(id, status, code, message, received_at, processed_at, deleted_at, _)| StoredResult {
                id,
                verdict: Verdict::from_row(&status, code, message),
                received_at,
                processed_at,
                deleted_at,
            },
        ))
    }
}
