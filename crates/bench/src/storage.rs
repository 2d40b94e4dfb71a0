//! The storage ceiling: bare code writing the `submissions` table's typed rows
//! (every column, both sensitive numbers sealed under the data key, values
//! prepared in memory before the clock starts) as fast as PostgreSQL takes them.
//!
//! - UNNEST: one `INSERT … SELECT FROM UNNEST($1::uuid[], …)` per batch of
//!   [`BATCH`] rows, two connections in parallel, each its own transaction per
//!   batch — no `ON CONFLICT`, no `RETURNING`, no verdict read back;
//! - COPY: `COPY submissions (…) FROM STDIN` in text format, the rows split over
//!   two connections.
//!
//! What our pipeline stores per record is the same row, so the ceiling is what
//! `kycctl push` with batch messages could at best reach.

use crate::cpu::CpuTimes;
use crate::env::{BenchEnv, Table};
use crate::record;
use crate::report::{Phase, Role};
use kyc_core::RawSubmission;
use kyc_core::submission::{FIELDS, Rule};
use kyc_store::DataKey;
use std::fmt::Write as _;
use std::time::Instant;
use time::OffsetDateTime;
use uuid::Uuid;

/// Rows per UNNEST statement.
pub const BATCH: usize = 1_000;
/// Connections writing in parallel.
const CONNECTIONS: usize = 2;

/// How a field's column is bound.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Date,
    Inet,
    Sealed,
}

fn kind(spec: &kyc_core::submission::FieldSpec) -> Kind {
    if spec.sealed {
        return Kind::Sealed;
    }
    match spec.rule {
        Rule::Date | Rule::PastDate => Kind::Date,
        Rule::Ip => Kind::Inet,
        _ => Kind::Text,
    }
}

/// One prepared row: ids, the project, and every field's value as text (dates
/// and addresses in their wire form) or sealed bytes.
struct Row {
    id: Uuid,
    fields: Vec<Option<Value>>,
}

enum Value {
    Text(String),
    Date(time::Date),
    Sealed(Vec<u8>),
}

fn prepare(n: u64, key: &DataKey) -> anyhow::Result<Vec<Row>> {
    let today = kyc_core::submission::today_utc();
    let mut rows = Vec::with_capacity(n as usize);
    for i in 0..n {
        // The records push sends (`record::varied`), each parsed as ours are.
        let body = record::varied(&format!("storage-{i}"), i).to_string();
        let submission = RawSubmission::from_slice(body.as_bytes())
            .and_then(|raw| raw.validate(today))
            .map_err(|r| anyhow::anyhow!("a bench record is invalid: {}", r.message()))?;
        let id = Uuid::now_v7();
        let fields = FIELDS
            .iter()
            .zip(submission.values())
            .map(|(spec, value)| {
                let value = value?;
                Some(match (kind(spec), value) {
                    (Kind::Sealed, v) => Value::Sealed(key.seal(id, spec.column, &v.to_text())),
                    (Kind::Date, kyc_core::submission::FieldValue::Date(d)) => Value::Date(d.0),
                    (_, v) => Value::Text(v.to_text().into_owned()),
                })
            })
            .collect();
        rows.push(Row { id, fields });
    }
    Ok(rows)
}

fn column_names() -> Vec<&'static str> {
    [
        "id",
        "project_id",
        "status",
        "received_at",
        "pii_key_id",
        "pii_format",
    ]
    .into_iter()
    .chain(FIELDS.iter().map(|s| s.column))
    .collect()
}

fn unnest_sql() -> String {
    let names = column_names();
    let mut types = vec![
        "uuid[]",
        "uuid[]",
        "text[]",
        "timestamptz[]",
        "text[]",
        "smallint[]",
    ];
    let mut selects: Vec<String> = names[..6].iter().map(|n| (*n).to_owned()).collect();
    for spec in &FIELDS {
        let k = kind(spec);
        types.push(match k {
            Kind::Text | Kind::Inet => "text[]",
            Kind::Date => "date[]",
            Kind::Sealed => "bytea[]",
        });
        selects.push(if k == Kind::Inet {
            format!("{}::inet", spec.column)
        } else {
            spec.column.to_owned()
        });
    }
    let params: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}", i + 1))
        .collect();
    format!(
        "INSERT INTO submissions ({names}) SELECT {} FROM UNNEST({}) AS t({names})",
        selects.join(", "),
        params.join(", "),
        names = names.join(", "),
    )
}

/// Runs the UNNEST and the COPY ceilings over `n` rows each; the table is
/// emptied after each.
pub async fn ceilings(env: &BenchEnv, n: u64) -> anyhow::Result<(Phase, Phase)> {
    let secret = env
        .settings
        .crypto
        .data_key
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the bench sets a data key"))?;
    let key = DataKey::from_base64(env.settings.crypto.data_key_id.clone(), &secret)?;
    let (project_id,): (Uuid,) = sqlx::query_as("SELECT id FROM projects LIMIT 1")
        .fetch_one(env.store.pool())
        .await?;
    let rows = prepare(n, &key)?;
    let key_id = key.id().to_owned();
    // Empty already; this is for the checkpoint, as before every other phase.
    env.truncate(Table::Submissions).await?;

    eprintln!("bench pipeline: storage ceiling, UNNEST …");
    let sql = unnest_sql();
    let received_at = OffsetDateTime::now_utc();
    let halves: Vec<&[Row]> = rows
        .chunks(rows.len().div_ceil(CONNECTIONS).max(1))
        .collect();
    let cpu = CpuTimes::now();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for half in &halves {
        let pool = env.store.pool().clone();
        let sql = sql.clone();
        let key_id = key_id.clone();
        // The arrays are built before the clock starts (values in memory).
        let batches: Vec<Columns> = half
            .chunks(BATCH)
            .map(|b| Columns::of(b, project_id, received_at, &key_id))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut connection = pool.acquire().await?;
            for c in &batches {
                c.bind(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())))
                    .execute(&mut *connection)
                    .await?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let mut unnest = Phase::new(
        format!("storage ceiling: UNNEST, {BATCH}/statement, {CONNECTIONS} connections"),
        Role::Ceiling,
        n,
        started.elapsed().as_secs_f64(),
    );
    cpu.record_until(&CpuTimes::now(), &mut unnest, n);
    env.truncate(Table::Submissions).await?;

    eprintln!("bench pipeline: storage ceiling, COPY …");
    let copy_sql = format!(
        "COPY submissions ({}) FROM STDIN",
        column_names().join(", ")
    );
    let payloads: Vec<Vec<u8>> = halves
        .iter()
        .map(|half| copy_text(half, project_id, received_at, &key_id))
        .collect();
    let cpu = CpuTimes::now();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for payload in payloads {
        let pool = env.store.pool().clone();
        let copy_sql = copy_sql.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = pool.acquire().await?;
            let mut copy = connection.copy_in_raw(&copy_sql).await?;
            copy.send(payload).await?;
            copy.finish().await?;
            Ok::<(), anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let mut copy = Phase::new(
        format!("storage ceiling: COPY, {CONNECTIONS} connections"),
        Role::Ceiling,
        n,
        started.elapsed().as_secs_f64(),
    );
    cpu.record_until(&CpuTimes::now(), &mut copy, n);
    env.truncate(Table::Submissions).await?;
    Ok((unnest, copy))
}

/// One batch's arrays.
struct Columns {
    id: Vec<Uuid>,
    project_id: Vec<Uuid>,
    status: Vec<&'static str>,
    received_at: Vec<OffsetDateTime>,
    pii_key_id: Vec<String>,
    pii_format: Vec<i16>,
    fields: Vec<FieldArray>,
}

enum FieldArray {
    Text(Vec<Option<String>>),
    Date(Vec<Option<time::Date>>),
    Sealed(Vec<Option<Vec<u8>>>),
}

impl Columns {
    fn of(rows: &[Row], project_id: Uuid, received_at: OffsetDateTime, key_id: &str) -> Columns {
        let fields = FIELDS
            .iter()
            .enumerate()
            .map(|(i, spec)| match kind(spec) {
                Kind::Text | Kind::Inet => FieldArray::Text(
                    rows.iter()
                        .map(|r| match &r.fields[i] {
                            Some(Value::Text(s)) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                ),
                Kind::Date => FieldArray::Date(
                    rows.iter()
                        .map(|r| match &r.fields[i] {
                            Some(Value::Date(d)) => Some(*d),
                            _ => None,
                        })
                        .collect(),
                ),
                Kind::Sealed => FieldArray::Sealed(
                    rows.iter()
                        .map(|r| match &r.fields[i] {
                            Some(Value::Sealed(b)) => Some(b.clone()),
                            _ => None,
                        })
                        .collect(),
                ),
            })
            .collect();
        Columns {
            id: rows.iter().map(|r| r.id).collect(),
            project_id: vec![project_id; rows.len()],
            status: vec!["accepted"; rows.len()],
            received_at: vec![received_at; rows.len()],
            pii_key_id: vec![key_id.to_owned(); rows.len()],
            pii_format: vec![kyc_store::pii::CURRENT_FORMAT; rows.len()],
            fields,
        }
    }

    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let query = query
            .bind(&self.id)
            .bind(&self.project_id)
            .bind(&self.status)
            .bind(&self.received_at)
            .bind(&self.pii_key_id)
            .bind(&self.pii_format);
        self.fields.iter().fold(query, |q, f| match f {
            FieldArray::Text(v) => q.bind(v),
            FieldArray::Date(v) => q.bind(v),
            FieldArray::Sealed(v) => q.bind(v),
        })
    }
}

/// The rows as COPY text: tab-separated, `\N` for NULL, bytea as `\\x…`.
fn copy_text(rows: &[Row], project_id: Uuid, received_at: OffsetDateTime, key_id: &str) -> Vec<u8> {
    let at = received_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut out = String::with_capacity(rows.len() * 900);
    for row in rows {
        let _ = write!(out, "{}\t{project_id}\taccepted\t{at}\t", row.id);
        escape(&mut out, key_id);
        let _ = write!(out, "\t{}", kyc_store::pii::CURRENT_FORMAT);
        for value in &row.fields {
            out.push('\t');
            match value {
                None => out.push_str("\\N"),
                Some(Value::Text(s)) => escape(&mut out, s),
                Some(Value::Date(d)) => {
                    let _ = write!(out, "{}", kyc_core::types::IsoDate(*d));
                }
                Some(Value::Sealed(bytes)) => {
                    out.push_str("\\\\x");
                    for b in bytes {
                        let _ = write!(out, "{b:02x}");
                    }
                }
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}
