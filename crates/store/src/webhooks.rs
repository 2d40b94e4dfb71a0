//! Webhook endpoints, the events and deliveries the dispatcher (`kyc-webhooks`)
//! works from, and every attempt (`migrations/20261202000005_webhooks.sql`).
//!
//! A delivery is one (event, endpoint) pair. The dispatcher records an event and
//! its deliveries in one transaction before it acknowledges the AMQP message
//! ([`Store::record_webhook_events`], or [`Store::record_webhook_events_claimed`],
//! which also hands it the new deliveries under a lease for their first
//! attempt); it then claims due deliveries with
//! `FOR UPDATE SKIP LOCKED` and a lease ([`Store::claim_webhook_deliveries`]), so
//! several dispatchers share the work, and a crashed one's claims are taken again
//! when their lease runs out. Signing secrets are sealed with the data key, bound
//! to their row and column, like the personal numbers ([`crate::pii`]).

use crate::pii::CURRENT_FORMAT;
use crate::{DataKey, Store, StoreError};
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// The deliveries of fresh events (`$1`): one per enabled endpoint of the
/// event's project subscribed to its type, as `(id, event_id, endpoint_id,
/// project_id)`. A macro so that it joins the statements as a literal.
macro_rules! new_deliveries {
    () => {
        "SELECT gen_random_uuid(), e.id, w.id, e.project_id
         FROM webhook_events e
         JOIN webhook_endpoints w ON w.project_id = e.project_id AND w.enabled
             AND (cardinality(w.event_types) = 0 OR e.type = ANY (w.event_types))
         WHERE e.id = ANY ($1)"
    };
}

/// The column the current signing secret is sealed for.
const SECRET_COLUMN: &str = "secret_enc";
/// The column the previous signing secret is sealed for.
const PREVIOUS_COLUMN: &str = "previous_secret_enc";

/// An endpoint as `kycctl webhook list` shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// The endpoint's id.
    pub id: Uuid,
    /// The project whose events it receives.
    pub project_id: Uuid,
    /// Where the events are POSTed.
    pub url: String,
    /// The event types it receives; empty: every type.
    pub event_types: Vec<String>,
    /// A disabled endpoint gets no new deliveries and no attempts.
    pub enabled: bool,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Until when the previous secret still signs (after a rotation).
    pub previous_expires_at: Option<OffsetDateTime>,
    /// When it was added.
    pub created_at: OffsetDateTime,
}

/// An event to deliver to every enabled endpoint of its project subscribed to
/// its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEvent {
    /// Stable for the event (the webhook-id is derived from it).
    pub id: Uuid,
    /// The project whose endpoints receive it.
    pub project_id: Uuid,
    /// `submission.accepted`, …
    pub event_type: String,
    /// The JSON body every endpoint receives.
    pub body: String,
}

/// A delivery claimed by a dispatcher, with everything an attempt needs.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub id: Uuid,
    /// The event (the webhook-id is derived from it).
    pub event_id: Uuid,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// The endpoint's URL.
    pub url: String,
    /// The body to POST.
    pub body: String,
    /// Attempts already made in this round of the schedule.
    pub attempts: i32,
    /// The signing secrets (`whsec_…`): the current one, then the previous one
    /// while its overlap lasts.
    pub secrets: Vec<String>,
    /// This claim's token; [`Store::finish_webhook_attempts`] needs it.
    pub lease_token: Uuid,
}

/// What became of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The HTTP status, if a response came.
    pub status_code: Option<u16>,
    /// How long the attempt took.
    pub latency: Duration,
    /// Why it failed (timeout, connection error, refused target, status).
    pub error: Option<String>,
    /// The first bytes of the response body.
    pub response_body: Option<String>,
}

/// An attempt of a claimed delivery, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedAttempt {
    /// The delivery.
    pub delivery_id: Uuid,
    /// Its endpoint (disabled on [`NextStep::Gone`]).
    pub endpoint_id: Uuid,
    /// The claim's token ([`ClaimedDelivery::lease_token`]).
    pub lease_token: Uuid,
    /// What happened.
    pub attempt: AttemptRecord,
    /// Where the delivery goes now.
    pub next: NextStep,
}

/// Where the delivery goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered: a 2xx answer.
    Delivered,
    /// Try again after this long.
    RetryAfter(Duration),
    /// No attempt left: the delivery is failed (`kycctl webhook replay` sends it again).
    Failed,
    /// The receiver answered 410 Gone: the delivery is failed and the endpoint disabled.
    Gone,
}

/// A delivery as `kycctl webhook deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryInfo {
    /// The delivery.
    pub id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts in the current round.
    pub attempts: i32,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptInfo {
    /// When it started.
    pub at: OffsetDateTime,
    /// The HTTP status, if a response came.
    pub status_code: Option<i32>,
    /// Milliseconds it took.
    pub latency_ms: i32,
    /// Why it failed.
    pub error: Option<String>,
    /// The first bytes of the response body.
    pub response_body: Option<String>,
}

/// Which deliveries a replay sends again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelection {
    /// These deliveries (whatever their status).
    Deliveries(Vec<Uuid>),
    /// Every failed delivery of the project.
    FailedOf(Uuid),
}

type EndpointRow = (
    Uuid,
    Uuid,
    String,
    Vec<String>,
    bool,
    Option<String>,
    Option<OffsetDateTime>,
    OffsetDateTime,
);

fn endpoint(row: EndpointRow) -> WebhookEndpoint {
    let (
        id,
        project_id,
        url,
        event_types,
        enabled,
        disabled_reason,
        previous_expires_at,
        created_at,
    ) = row;
    WebhookEndpoint {
        id,
        project_id,
        url,
        event_types,
        enabled,
        disabled_reason,
        previous_expires_at,
        created_at,
    }
}

type DeliveryRow = (
    Uuid,
    Uuid,
    Uuid,
    String,
    String,
    i32,
    Option<String>,
    OffsetDateTime,
);

type AttemptRow = (
    OffsetDateTime,
    Option<i32>,
    i32,
    Option<String>,
    Option<String>,
);

const ENDPOINT_COLUMNS: &str = "id, project_id, url, event_types, enabled, disabled_reason, \
     previous_expires_at, created_at";

/// The longest `last_error` and response body kept.
const TEXT_LIMIT: usize = 1024;

fn truncate(text: &str) -> String {
    if text.len() <= TEXT_LIMIT {
        return text.to_owned();
    }
    let mut end = TEXT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl Store {
    /// Adds an endpoint of `project` with the signing secret `secret` (sealed
    /// with `key`). `event_types` empty: every type.
    pub async fn add_webhook(
        &self,
        key: &DataKey,
        project: Uuid,
        url: &str,
        event_types: &[String],
        secret: &str,
    ) -> Result<WebhookEndpoint, StoreError> {
        let id = Uuid::now_v7();
        let sealed = key.seal(id, SECRET_COLUMN, secret);
        let row: EndpointRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhook_endpoints (id, project_id, url, event_types, secret_key_id, secret_enc)
             SELECT $1, id, $3, $4, $5, $6 FROM projects WHERE id = $2
             RETURNING {ENDPOINT_COLUMNS}"
        )))
        .bind(id)
        .bind(project)
        .bind(url)
        .bind(event_types)
        .bind(key.id())
        .bind(sealed)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("project"))?;
        Ok(endpoint(row))
    }

    /// The endpoints of `project`, oldest first.
    pub async fn webhooks(&self, project: Uuid) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let rows: Vec<EndpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE project_id = $1 ORDER BY created_at, id"
        )))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(endpoint).collect())
    }

    /// One endpoint.
    pub async fn webhook(&self, id: Uuid) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row: Option<EndpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(endpoint))
    }

    /// Removes an endpoint, with its deliveries and their attempts.
    pub async fn remove_webhook(&self, id: Uuid) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("webhook endpoint"));
        }
        Ok(())
    }

    /// Enables an endpoint, or disables it saying why. A disabled endpoint gets
    /// no new deliveries; its pending ones wait until it is enabled again.
    pub async fn set_webhook_enabled(
        &self,
        id: Uuid,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = $2, disabled_reason = CASE WHEN $2 THEN NULL ELSE $3 END
             WHERE id = $1",
        )
        .bind(id)
        .bind(enabled)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("webhook endpoint"));
        }
        Ok(())
    }

    /// Makes `secret` the endpoint's signing secret; the current one keeps
    /// signing beside it for `overlap` (both signatures are sent).
    pub async fn rotate_webhook_secret(
        &self,
        key: &DataKey,
        id: Uuid,
        secret: &str,
        overlap: Duration,
    ) -> Result<OffsetDateTime, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current: Option<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT secret_key_id, secret_enc FROM webhook_endpoints WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (key_id, sealed) = current.ok_or(StoreError::NotFound("webhook endpoint"))?;
        let old = key
            .open(&key_id, CURRENT_FORMAT, id, SECRET_COLUMN, &sealed)
            .ok_or(StoreError::Unopenable {
                column: "webhook_endpoints.secret_enc",
            })?;
        let expires = OffsetDateTime::now_utc() + overlap;
        sqlx::query(
            "UPDATE webhook_endpoints SET secret_key_id = $2, secret_enc = $3,
                 previous_key_id = $2, previous_secret_enc = $4, previous_expires_at = $5
             WHERE id = $1",
        )
        .bind(id)
        .bind(key.id())
        .bind(key.seal(id, SECRET_COLUMN, secret))
        .bind(key.seal(id, PREVIOUS_COLUMN, &old))
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(expires)
    }

    /// Records events and one pending delivery per (event, enabled endpoint of
    /// its project subscribed to its type), in one transaction. An event already
    /// recorded (a redelivered message) adds nothing. Returns the deliveries
    /// created.
    pub async fn record_webhook_events(
        &self,
        events: &[NewWebhookEvent],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let fresh = insert_events(&mut tx, events).await?;
        let mut created = 0;
        if !fresh.is_empty() {
            created = sqlx::query(concat!(
                "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, project_id) ",
                new_deliveries!(),
                " ON CONFLICT (event_id, endpoint_id) DO NOTHING"
            ))
            .bind(&fresh)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(created)
    }

    /// As [`Store::record_webhook_events`], with the new deliveries claimed by
    /// the caller for `lease` in the same transaction: their first attempt needs
    /// no claim. Returns them, ready to attempt. (A redelivered event's
    /// deliveries, recorded before, are left to the claims.)
    pub async fn record_webhook_events_claimed(
        &self,
        key: &DataKey,
        events: &[NewWebhookEvent],
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let fresh = insert_events(&mut tx, events).await?;
        if fresh.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let token = Uuid::now_v7();
        let created: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(concat!(
            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, project_id,
                 lease_until, lease_token)
             SELECT d.*, now() + $2 * interval '1 millisecond', $3::uuid FROM (",
            new_deliveries!(),
            ") d ON CONFLICT (event_id, endpoint_id) DO NOTHING
             RETURNING id, event_id, endpoint_id"
        ))
        .bind(&fresh)
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
        .bind(token)
        .fetch_all(&mut *tx)
        .await?;
        let mut endpoints: Vec<Uuid> = created.iter().map(|(_, _, e)| *e).collect();
        endpoints.sort_unstable();
        endpoints.dedup();
        let rows: Vec<TargetRow> = sqlx::query_as(
            "SELECT id, url, secret_key_id, secret_enc, previous_key_id, previous_secret_enc,
                    previous_expires_at
             FROM webhook_endpoints WHERE id = ANY ($1)",
        )
        .bind(&endpoints)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let now = OffsetDateTime::now_utc();
        let mut targets: HashMap<Uuid, (String, Vec<String>)> = HashMap::new();
        for (id, url, key_id, sealed, pkey, psealed, pexp) in rows {
            let secrets = open_secrets(key, id, &key_id, &sealed, (pkey, psealed, pexp), now)?;
            targets.insert(id, (url, secrets));
        }
        let bodies: HashMap<Uuid, &str> = events.iter().map(|e| (e.id, e.body.as_str())).collect();
        Ok(created
            .into_iter()
            .filter_map(|(id, event_id, endpoint_id)| {
                let (url, secrets) = targets.get(&endpoint_id)?;
                Some(ClaimedDelivery {
                    id,
                    event_id,
                    endpoint_id,
                    url: url.clone(),
                    body: (*bodies.get(&event_id)?).to_owned(),
                    attempts: 0,
                    secrets: secrets.clone(),
                    lease_token: token,
                })
            })
            .collect())
    }

    /// Claims up to `max` due deliveries of enabled endpoints for `lease`,
    /// taking at most `room(endpoint)` of each endpoint; rows other dispatchers
    /// hold are skipped. `full` lists endpoints with no room at all (left out of
    /// the search, so that one endpoint's backlog cannot hide the others').
    pub async fn claim_webhook_deliveries(
        &self,
        key: &DataKey,
        max: usize,
        full: &[Uuid],
        room: impl Fn(Uuid) -> usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // More candidates than wanted (some endpoints may have little room),
        // read without locking: only the picked rows are locked below, so a
        // claim costs the rows it takes, not the backlog it looks at.
        let candidates: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT d.id, d.endpoint_id FROM webhook_deliveries d
             JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.enabled
             WHERE d.status = 'pending' AND d.due_at <= now()
               AND (d.lease_until IS NULL OR d.lease_until < now())
               AND NOT (d.endpoint_id = ANY ($1))
             ORDER BY d.due_at
             LIMIT $2",
        )
        .bind(full)
        .bind(i64::try_from(max.saturating_mul(4).min(2_048)).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut taken: HashMap<Uuid, usize> = HashMap::new();
        let mut wanted = Vec::new();
        for (id, endpoint) in candidates {
            if wanted.len() == max {
                break;
            }
            let n = taken.entry(endpoint).or_insert(0);
            if *n < room(endpoint) {
                *n += 1;
                wanted.push(id);
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        // Still due and free now: another dispatcher may have taken some since.
        let picked: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM webhook_deliveries
             WHERE id = ANY ($1) AND status = 'pending' AND due_at <= now()
               AND (lease_until IS NULL OR lease_until < now())
             FOR UPDATE SKIP LOCKED",
        )
        .bind(&wanted)
        .fetch_all(&mut *tx)
        .await?;
        if picked.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let token = Uuid::now_v7();
        type ClaimRow = (
            Uuid,
            Uuid,
            Uuid,
            String,
            String,
            i32,
            String,
            Vec<u8>,
            Option<String>,
            Option<Vec<u8>>,
            Option<OffsetDateTime>,
        );
        let rows: Vec<ClaimRow> = sqlx::query_as(
            "WITH claimed AS (
                 UPDATE webhook_deliveries SET lease_until = now() + $2 * interval '1 millisecond',
                     lease_token = $3
                 WHERE id = ANY ($1)
                 RETURNING id, event_id, endpoint_id, attempts
             )
             SELECT c.id, c.event_id, c.endpoint_id, w.url, e.body, c.attempts,
                    w.secret_key_id, w.secret_enc, w.previous_key_id, w.previous_secret_enc,
                    w.previous_expires_at
             FROM claimed c
             JOIN webhook_events e ON e.id = c.event_id
             JOIN webhook_endpoints w ON w.id = c.endpoint_id",
        )
        .bind(&picked)
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
        .bind(token)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let now = OffsetDateTime::now_utc();
        rows.into_iter()
            .map(
                |(
                    id,
                    event_id,
                    endpoint_id,
                    url,
                    body,
                    attempts,
                    key_id,
                    sealed,
                    pkey,
                    psealed,
                    pexp,
                )| {
                    let secrets = open_secrets(
                        key,
                        endpoint_id,
                        &key_id,
                        &sealed,
                        (pkey, psealed, pexp),
                        now,
                    )?;
                    Ok(ClaimedDelivery {
                        id,
                        event_id,
                        endpoint_id,
                        url,
                        body,
                        attempts,
                        secrets,
                        lease_token: token,
                    })
                },
            )
            .collect()
    }

    /// Lets go of claims that were not attempted (`(delivery, lease token)`), so
    /// any dispatcher can claim them again at once; a claim that has changed
    /// hands since is left alone. Returns how many were released.
    pub async fn release_webhook_claims(&self, claims: &[(Uuid, Uuid)]) -> Result<u64, StoreError> {
        if claims.is_empty() {
            return Ok(0);
        }
        let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = claims.iter().copied().unzip();
        let released = sqlx::query(
            "UPDATE webhook_deliveries d SET lease_until = NULL, lease_token = NULL
             FROM unnest($1::uuid[], $2::uuid[]) AS u (id, token)
             WHERE d.id = ANY ($1) AND d.id = u.id AND d.lease_token = u.token",
        )
        .bind(&ids)
        .bind(&tokens)
        .execute(&self.pool)
        .await?;
        Ok(released.rows_affected())
    }

    /// Records attempts of claimed deliveries, in one transaction, and moves each
    /// delivery on as its [`NextStep`] says (a 410 also disables the endpoint).
    /// An attempt whose claim has expired (another dispatcher holds the row now)
    /// changes nothing. Returns how many were recorded.
    pub async fn finish_webhook_attempts(
        &self,
        finished: &[FinishedAttempt],
    ) -> Result<u64, StoreError> {
        if finished.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(finished.len());
        let mut tokens = Vec::with_capacity(finished.len());
        let mut statuses = Vec::with_capacity(finished.len());
        let mut due_ms = Vec::with_capacity(finished.len());
        let mut errors = Vec::with_capacity(finished.len());
        let mut codes = Vec::with_capacity(finished.len());
        let mut latencies = Vec::with_capacity(finished.len());
        let mut bodies = Vec::with_capacity(finished.len());
        let mut gone = Vec::new();
        for f in finished {
            let (status, due): (&str, i64) = match f.next {
                NextStep::Delivered => ("delivered", 0),
                NextStep::RetryAfter(after) => (
                    "pending",
                    i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
                ),
                NextStep::Failed | NextStep::Gone => ("failed", 0),
            };
            if f.next == NextStep::Gone {
                gone.push(f.endpoint_id);
            }
            ids.push(f.delivery_id);
            tokens.push(f.lease_token);
            statuses.push(status);
            due_ms.push(due);
            errors.push(f.attempt.error.as_deref().map(truncate));
            codes.push(f.attempt.status_code.map(i32::from));
            latencies.push(i32::try_from(f.attempt.latency.as_millis()).unwrap_or(i32::MAX));
            bodies.push(f.attempt.response_body.as_deref().map(truncate));
        }
        let mut tx = self.pool.begin().await?;
        // `d.id = ANY ($1)` besides the join: the primary key finds the rows (a
        // join on unnest alone was planned as a scan of the whole table).
        let recorded: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE webhook_deliveries d SET status = u.status, attempts = d.attempts + 1,
                 due_at = now() + u.due_ms * interval '1 millisecond',
                 lease_until = NULL, lease_token = NULL, last_error = u.error, updated_at = now(),
                 delivered_at = CASE WHEN u.status = 'delivered' THEN now() END
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::text[])
                 AS u (id, token, status, due_ms, error)
             WHERE d.id = ANY ($1) AND d.id = u.id AND d.lease_token = u.token
             RETURNING d.id",
        )
        .bind(&ids)
        .bind(&tokens)
        .bind(&statuses)
        .bind(&due_ms)
        .bind(&errors)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, at, status_code, latency_ms, error, response_body)
             SELECT u.id, now() - u.latency_ms * interval '1 millisecond', u.code, u.latency_ms,
                    u.error, u.body
             FROM unnest($1::uuid[], $2::int4[], $3::int4[], $4::text[], $5::text[])
                 AS u (id, code, latency_ms, error, body)
             WHERE u.id = ANY ($6)",
        )
        .bind(&ids)
        .bind(&codes)
        .bind(&latencies)
        .bind(&errors)
        .bind(&bodies)
        .bind(&recorded)
        .execute(&mut *tx)
        .await?;
        if !gone.is_empty() {
            sqlx::query(
                "UPDATE webhook_endpoints SET enabled = false,
                     disabled_reason = 'the receiver answered 410 Gone'
                 WHERE id = ANY ($1)",
            )
            .bind(&gone)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(recorded.len() as u64)
    }

    /// The deliveries of `project`, newest first; only failed ones with `failed_only`.
    pub async fn webhook_deliveries(
        &self,
        project: Uuid,
        failed_only: bool,
        limit: i64,
    ) -> Result<Vec<DeliveryInfo>, StoreError> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT d.id, d.event_id, d.endpoint_id, e.type, d.status, d.attempts, d.last_error,
                        d.created_at
                 FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
                 WHERE d.project_id = $1 AND (NOT $2 OR d.status = 'failed')
                 ORDER BY d.created_at DESC, d.id DESC
                 LIMIT $3",
        )
        .bind(project)
        .bind(failed_only)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    event_id,
                    endpoint_id,
                    event_type,
                    status,
                    attempts,
                    last_error,
                    created_at,
                )| {
                    DeliveryInfo {
                        id,
                        event_id,
                        endpoint_id,
                        event_type,
                        status,
                        attempts,
                        last_error,
                        created_at,
                    }
                },
            )
            .collect())
    }

    /// The attempts of a delivery, oldest first.
    pub async fn webhook_attempts(&self, delivery: Uuid) -> Result<Vec<AttemptInfo>, StoreError> {
        let rows: Vec<AttemptRow> = sqlx::query_as(
            "SELECT at, status_code, latency_ms, error, response_body FROM webhook_attempts
                 WHERE delivery_id = $1 ORDER BY id",
        )
        .bind(delivery)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(at, status_code, latency_ms, error, response_body)| AttemptInfo {
                    at,
                    status_code,
                    latency_ms,
                    error,
                    response_body,
                },
            )
            .collect())
    }

    /// Sends deliveries again: each becomes pending, due now, with a fresh round
    /// of the retry schedule (its attempts so far stay recorded). Returns how
    /// many.
    pub async fn replay_webhook_deliveries(
        &self,
        selection: &ReplaySelection,
    ) -> Result<u64, StoreError> {
        let (ids, project): (Vec<Uuid>, Option<Uuid>) = match selection {
            ReplaySelection::Deliveries(ids) => (ids.clone(), None),
            ReplaySelection::FailedOf(project) => (Vec::new(), Some(*project)),
        };
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, due_at = now(),
                 lease_until = NULL, lease_token = NULL, updated_at = now()
             WHERE (id = ANY ($1) AND status <> 'pending')
                OR (project_id = $2 AND status = 'failed')",
        )
        .bind(&ids)
        .bind(project)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Endpoints with a signing secret sealed under another key than `key`'s
    /// current one (`kycctl data-key status`).
    pub async fn webhook_secrets_to_reseal(&self, key: &DataKey) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM webhook_endpoints
             WHERE secret_key_id <> $1 OR (previous_key_id IS NOT NULL AND previous_key_id <> $1)",
        )
        .bind(key.id())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Seals every endpoint's signing secrets (current and previous) again under
    /// the current key, in one transaction (`kycctl data-key reseal`); how many
    /// endpoints it changed.
    pub async fn reseal_webhook_secrets(&self, key: &DataKey) -> Result<u64, StoreError> {
        type Row = (Uuid, String, Vec<u8>, Option<String>, Option<Vec<u8>>);
        let mut tx = self.pool.begin().await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, secret_key_id, secret_enc, previous_key_id, previous_secret_enc
             FROM webhook_endpoints
             WHERE secret_key_id <> $1 OR (previous_key_id IS NOT NULL AND previous_key_id <> $1)
             FOR UPDATE",
        )
        .bind(key.id())
        .fetch_all(&mut *tx)
        .await?;
        let unopenable = |column| StoreError::Unopenable { column };
        for (id, key_id, sealed, previous_key_id, previous_sealed) in &rows {
            let secret = key
                .open(key_id, CURRENT_FORMAT, *id, SECRET_COLUMN, sealed)
                .ok_or_else(|| unopenable("webhook_endpoints.secret_enc"))?;
            let previous = match (previous_key_id, previous_sealed) {
                (Some(pkey), Some(psealed)) => Some(
                    key.open(pkey, CURRENT_FORMAT, *id, PREVIOUS_COLUMN, psealed)
                        .ok_or_else(|| unopenable("webhook_endpoints.previous_secret_enc"))?,
                ),
                _ => None,
            };
            sqlx::query(
                "UPDATE webhook_endpoints SET secret_key_id = $2, secret_enc = $3,
                     previous_key_id = CASE WHEN $4::bytea IS NULL THEN NULL ELSE $2 END,
                     previous_secret_enc = $4
                 WHERE id = $1",
            )
            .bind(id)
            .bind(key.id())
            .bind(key.seal(*id, SECRET_COLUMN, &secret))
            .bind(previous.map(|p| key.seal(*id, PREVIOUS_COLUMN, &p)))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Pending deliveries: (all, those waiting for a retry).
    pub async fn pending_webhook_deliveries(&self) -> Result<(i64, i64), StoreError> {
        Ok(sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE attempts > 0)
             FROM webhook_deliveries WHERE status = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Refreshes the planner's statistics of the deliveries table. A backlog
    /// that grows faster than autovacuum analyzes leaves the planner thinking
    /// the table small, and the claim query then sorts the whole backlog
    /// instead of reading the due index in order.
    pub async fn analyze_webhook_deliveries(&self) -> Result<(), StoreError> {
        sqlx::query("ANALYZE webhook_deliveries")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Pending deliveries that have had at least one attempt: retries waiting.
    pub async fn pending_webhook_retries(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending' AND attempts > 0",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}

/// An endpoint's URL and sealed secrets: id, url, key id, secret, previous key
/// id, previous secret, when the previous one expires.
type TargetRow = (
    Uuid,
    String,
    String,
    Vec<u8>,
    Option<String>,
    Option<Vec<u8>>,
    Option<OffsetDateTime>,
);

/// Inserts the events new to the table; their ids (a redelivered event is not
/// new and gets no deliveries).
async fn insert_events(
    tx: &mut sqlx::PgConnection,
    events: &[NewWebhookEvent],
) -> Result<Vec<Uuid>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let projects: Vec<Uuid> = events.iter().map(|e| e.project_id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
    Ok(sqlx::query_scalar(
        "INSERT INTO webhook_events (id, project_id, type, body)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
         ON CONFLICT (id) DO NOTHING
         RETURNING id",
    )
    .bind(&ids)
    .bind(&projects)
    .bind(&types)
    .bind(&bodies)
    .fetch_all(tx)
    .await?)
}

/// The signing secrets of an endpoint, opened: the current one, then the
/// previous one while its overlap (`previous.2`) lasts.
fn open_secrets(
    key: &DataKey,
    endpoint_id: Uuid,
    key_id: &str,
    sealed: &[u8],
    previous: (Option<String>, Option<Vec<u8>>, Option<OffsetDateTime>),
    now: OffsetDateTime,
) -> Result<Vec<String>, StoreError> {
    let mut secrets = vec![
        key.open(key_id, CURRENT_FORMAT, endpoint_id, SECRET_COLUMN, sealed)
            .ok_or(StoreError::Unopenable {
                column: "webhook_endpoints.secret_enc",
            })?,
    ];
    if let (Some(pkey), Some(psealed), Some(pexp)) = previous
        && pexp > now
    {
        secrets.push(
            key.open(
                &pkey,
                CURRENT_FORMAT,
                endpoint_id,
                PREVIOUS_COLUMN,
                &psealed,
            )
            .ok_or(StoreError::Unopenable {
                column: "webhook_endpoints.previous_secret_enc",
            })?,
        );
    }
    Ok(secrets)
}
