//! Submissions: the batch insert the workers use, and result lookups (spec §6).

use crate::{DataKey, Store, StoreError};
use kyc_core::{ErrorCode, Rejection, Submission};
use std::collections::HashMap;
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
}

/// One array per column, for a single set-based `INSERT … SELECT FROM UNNEST`.
#[derive(Default)]
struct Columns<'a> {
    id: Vec<Uuid>,
    project_id: Vec<Uuid>,
    status: Vec<&'static str>,
    error_code: Vec<Option<&'static str>>,
    message: Vec<Option<String>>,
    idempotency_key: Vec<Option<&'a str>>,
    received_at: Vec<OffsetDateTime>,
    admin: Vec<Option<&'a str>>,
    email: Vec<Option<&'a str>>,
    full_name: Vec<Option<&'a str>>,
    birth_date: Vec<Option<time::Date>>,
    kyc_status: Vec<Option<&'static str>>,
    first_name: Vec<Option<&'a str>>,
    last_name: Vec<Option<&'a str>>,
    id_type: Vec<Option<&'static str>>,
    issuing_country: Vec<Option<&'a str>>,
    nationality: Vec<Option<&'a str>>,
    gender: Vec<Option<&'static str>>,
    issue_date: Vec<Option<time::Date>>,
    expire_date: Vec<Option<time::Date>>,
    ip_address: Vec<Option<String>>,
    identity_number_enc: Vec<Option<Vec<u8>>>,
    document_number_enc: Vec<Option<Vec<u8>>>,
    pii_key_id: Vec<Option<&'a str>>,
    address_city: Vec<Option<&'a str>>,
    address_country: Vec<Option<&'a str>>,
    address_state: Vec<Option<&'a str>>,
    address_street: Vec<Option<&'a str>>,
    address_full: Vec<Option<&'a str>>,
    cf1: Vec<Option<&'a str>>,
    cf2: Vec<Option<&'a str>>,
    cf3: Vec<Option<&'a str>>,
    userid: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, o: &'a Outcome, key: &'a DataKey) {
        self.id.push(o.id);
        self.project_id.push(o.project_id);
        self.idempotency_key.push(o.idempotency_key.as_deref());
        self.received_at.push(o.received_at);
        match &o.result {
            Ok(s) => {
                self.status.push("accepted");
                self.error_code.push(None);
                self.message.push(None);
                self.push_fields(Some(s), key);
            }
            Err(rejection) => {
                self.status.push("rejected");
                self.error_code.push(Some(rejection.code.as_str()));
                self.message.push(Some(rejection.message()));
                self.push_fields(None, key);
            }
        }
    }

    fn push_fields(&mut self, s: Option<&'a Submission>, key: &'a DataKey) {
        let text = |f: fn(&Submission) -> &Option<String>| s.and_then(|s| f(s).as_deref());
        self.admin.push(s.map(|s| s.admin.as_str()));
        self.email.push(s.map(|s| s.email.as_str()));
        self.full_name.push(s.map(|s| s.full_name.as_str()));
        self.birth_date.push(s.map(|s| s.birth_date.0));
        self.kyc_status.push(s.map(|s| s.kyc_status.as_str()));
        self.first_name.push(text(|s| &s.first_name));
        self.last_name.push(text(|s| &s.last_name));
        self.id_type
            .push(s.and_then(|s| s.id_type).map(|t| t.as_str()));
        self.issuing_country.push(
            s.and_then(|s| s.issuing_country.as_ref())
                .map(|c| c.as_str()),
        );
        self.nationality
            .push(s.and_then(|s| s.nationality.as_ref()).map(|c| c.as_str()));
        self.gender
            .push(s.and_then(|s| s.gender).map(|g| g.as_str()));
        self.issue_date
            .push(s.and_then(|s| s.issue_date).map(|d| d.0));
        self.expire_date
            .push(s.and_then(|s| s.expire_date).map(|d| d.0));
        self.ip_address
            .push(s.and_then(|s| s.ip_address).map(|ip| ip.to_string()));
        let identity = s
            .and_then(|s| s.identity_number.as_deref())
            .map(|v| key.seal(v));
        let document = s
            .and_then(|s| s.document_number.as_deref())
            .map(|v| key.seal(v));
        self.pii_key_id
            .push((identity.is_some() || document.is_some()).then(|| key.id()));
        self.identity_number_enc.push(identity);
        self.document_number_enc.push(document);
        self.address_city.push(text(|s| &s.address_city));
        self.address_country.push(text(|s| &s.address_country));
        self.address_state.push(text(|s| &s.address_state));
        self.address_street.push(text(|s| &s.address_street));
        self.address_full.push(text(|s| &s.address_full));
        self.cf1.push(text(|s| &s.cf1));
        self.cf2.push(text(|s| &s.cf2));
        self.cf3.push(text(|s| &s.cf3));
        self.userid.push(text(|s| &s.userid));
    }
}

const INSERT: &str = "
INSERT INTO submissions (
    id, project_id, status, error_code, message, idempotency_key, received_at,
    admin, email, full_name, birth_date, kyc_status, first_name, last_name, id_type,
    issuing_country, nationality, gender, issue_date, expire_date, ip_address,
    identity_number_enc, document_number_enc, pii_key_id,
    address_city, address_country, address_state, address_street, address_full,
    cf1, cf2, cf3, userid)
SELECT
    id, project_id, status, error_code, message, idempotency_key, received_at,
    admin, email, full_name, birth_date, kyc_status, first_name, last_name, id_type,
    issuing_country, nationality, gender, issue_date, expire_date, ip_address::inet,
    identity_number_enc, document_number_enc, pii_key_id,
    address_city, address_country, address_state, address_street, address_full,
    cf1, cf2, cf3, userid
FROM UNNEST(
    $1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
    $8::text[], $9::text[], $10::text[], $11::date[], $12::text[], $13::text[], $14::text[], $15::text[],
    $16::text[], $17::text[], $18::text[], $19::date[], $20::date[], $21::text[],
    $22::bytea[], $23::bytea[], $24::text[],
    $25::text[], $26::text[], $27::text[], $28::text[], $29::text[],
    $30::text[], $31::text[], $32::text[], $33::text[]
) AS t(
    id, project_id, status, error_code, message, idempotency_key, received_at,
    admin, email, full_name, birth_date, kyc_status, first_name, last_name, id_type,
    issuing_country, nationality, gender, issue_date, expire_date, ip_address,
    identity_number_enc, document_number_enc, pii_key_id,
    address_city, address_country, address_state, address_street, address_full,
    cf1, cf2, cf3, userid)
ON CONFLICT (id) DO NOTHING
RETURNING id";

impl Store {
    /// Stores a batch in one transaction with one set-based insert, and returns
    /// the stored verdict for each outcome, in order.
    ///
    /// `ON CONFLICT (id) DO NOTHING` makes a redelivered message harmless: its row
    /// is already there, and its verdict is read back from the row (not recomputed),
    /// so a redelivery re-announces exactly what was stored.
    pub async fn store_batch(
        &self,
        outcomes: &[Outcome],
        key: &DataKey,
    ) -> Result<Vec<Verdict>, StoreError> {
        let mut c = Columns::default();
        for o in outcomes {
            c.push(o, key);
        }
        let mut tx = self.pool().begin().await?;
        let inserted: Vec<(Uuid,)> = sqlx::query_as(INSERT)
            .bind(&c.id)
            .bind(&c.project_id)
            .bind(&c.status)
            .bind(&c.error_code)
            .bind(&c.message)
            .bind(&c.idempotency_key)
            .bind(&c.received_at)
            .bind(&c.admin)
            .bind(&c.email)
            .bind(&c.full_name)
            .bind(&c.birth_date)
            .bind(&c.kyc_status)
            .bind(&c.first_name)
            .bind(&c.last_name)
            .bind(&c.id_type)
            .bind(&c.issuing_country)
            .bind(&c.nationality)
            .bind(&c.gender)
            .bind(&c.issue_date)
            .bind(&c.expire_date)
            .bind(&c.ip_address)
            .bind(&c.identity_number_enc)
            .bind(&c.document_number_enc)
            .bind(&c.pii_key_id)
            .bind(&c.address_city)
            .bind(&c.address_country)
            .bind(&c.address_state)
            .bind(&c.address_street)
            .bind(&c.address_full)
            .bind(&c.cf1)
            .bind(&c.cf2)
            .bind(&c.cf3)
            .bind(&c.userid)
            .fetch_all(&mut *tx)
            .await?;

        // The verdict of every id: ours for the rows just inserted (the first
        // outcome of an id wins, as in the insert), the stored one for the rest.
        let mut verdicts: HashMap<Uuid, Verdict> = HashMap::with_capacity(outcomes.len());
        let inserted: std::collections::HashSet<Uuid> =
            inserted.into_iter().map(|(id,)| id).collect();
        for o in outcomes {
            if inserted.contains(&o.id) {
                verdicts.entry(o.id).or_insert_with(|| Verdict::of(o));
            }
        }
        let existing: Vec<Uuid> = outcomes
            .iter()
            .map(|o| o.id)
            .filter(|id| !inserted.contains(id))
            .collect();
        if !existing.is_empty() {
            let rows: Vec<(Uuid, String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT id, status, error_code, message FROM submissions WHERE id = ANY($1)",
            )
            .bind(&existing)
            .fetch_all(&mut *tx)
            .await?;
            for (id, status, code, message) in rows {
                verdicts.insert(id, Verdict::from_row(&status, code, message));
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
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, status, error_code, message, received_at, processed_at
             FROM submissions WHERE id = $1 AND project_id = $2",
        )
        .bind(id)
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(
            |(id, status, code, message, received_at, processed_at)| StoredResult {
                id,
                verdict: Verdict::from_row(&status, code, message),
                received_at,
                processed_at,
            },
        ))
    }
}
