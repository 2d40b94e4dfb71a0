//! The dispatcher: one loop takes events off the webhooks queue and writes them
//! with their deliveries to PostgreSQL (acknowledging only after the commit);
//! another claims due deliveries and attempts them, each attempt a task of its
//! own, within a global and a per-endpoint limit of attempts in flight.

use crate::event::{Routed, route, webhook_id};
use crate::signature;
use crate::target::{GuardedResolver, Policy};
use futures_util::StreamExt;
use kyc_bus::Topology;
use kyc_bus::lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions};
use kyc_bus::lapin::types::FieldTable;
use kyc_config::Settings;
use kyc_store::webhooks::{
    AttemptRecord, ClaimedDelivery, FinishedAttempt, NewWebhookEvent, NextStep,
};
use kyc_store::{DataKey, Store};
use rand::RngExt;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// The fixed `User-Agent` of every attempt.
pub const USER_AGENT: &str = concat!("kyc-ingest-webhooks/", env!("CARGO_PKG_VERSION"));

/// Response bytes read at most; the rest is not read.
const RESPONSE_READ_LIMIT: usize = 64 * 1024;
/// Events written per transaction at most.
const BATCH: usize = 500;
/// How long a partial batch waits for more events.
const LINGER: Duration = Duration::from_millis(5);

/// The webhook dispatcher. Run any number of them: they share the queue and the
/// deliveries table.
#[derive(Debug)]
pub struct Dispatcher {
    store: Store,
    key: DataKey,
    topology: Topology,
    amqp_url: String,
    prefetch: u16,
    client: reqwest::Client,
    policy: Policy,
    schedule: Vec<Duration>,
    jitter: f64,
    timeout: Duration,
    poll: Duration,
    per_endpoint: usize,
    slots: Arc<Semaphore>,
    in_flight: Arc<Mutex<HashMap<Uuid, usize>>>,
    wake: Arc<Notify>,
    /// Finished attempts on their way to [`record_loop`], which writes them in
    /// batches: a slot is free again as soon as its HTTP exchange is over.
    finished: mpsc::UnboundedSender<FinishedAttempt>,
    finished_rx: Mutex<Option<mpsc::UnboundedReceiver<FinishedAttempt>>>,
}

impl Dispatcher {
    /// A dispatcher of `settings` (`[webhooks]`, the database, the broker and the
    /// data keyring that opens the signing secrets).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Dispatcher> {
        let w = &settings.webhooks;
        let key = DataKey::keyring(&settings.data_key()?, &settings.crypto.older_data_keys()?)?;
        let store = Store::connect_lazy(
            settings.database.url.expose_secret(),
            settings.database.max_connections,
        )?;
        let topology = Topology::new(settings.amqp.prefix.clone()).with_dead_letter_bounds(
            kyc_bus::DeadLetterBounds {
                max_length: settings.amqp.dead_letter_max_length,
                ttl_ms: settings.amqp.dead_letter_ttl_ms,
            },
        );
        let (finished, finished_rx) = mpsc::unbounded_channel();
        Ok(Dispatcher {
            finished,
            finished_rx: Mutex::new(Some(finished_rx)),
            store,
            key,
            topology,
            amqp_url: settings.amqp.url.expose_secret().to_owned(),
            prefetch: w.prefetch,
            client: client(Policy::from_settings(w), w.timeout())?,
            policy: Policy::from_settings(w),
            schedule: w
                .schedule()
                .ok_or_else(|| anyhow::anyhow!("webhooks.retry_schedule is not a list"))?,
            jitter: w.jitter,
            timeout: w.timeout(),
            poll: w.poll_interval(),
            per_endpoint: w.per_endpoint_in_flight,
            slots: Arc::new(Semaphore::new(w.max_in_flight)),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            wake: Arc::new(Notify::new()),
        })
    }

    /// Consumes events and delivers them until `stop`; attempts in flight then
    /// get up to the attempt timeout to finish (an unfinished one is attempted
    /// again, by any dispatcher, when its lease runs out).
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let this = Arc::new(self);
        let consume = tokio::spawn({
            let this = this.clone();
            let stop = stop.clone();
            async move { this.consume_loop(&stop).await }
        });
        let gauge = tokio::spawn({
            let this = this.clone();
            let stop = stop.clone();
            async move { this.gauge_loop(&stop).await }
        });
        let records = this
            .finished_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| anyhow::anyhow!("a dispatcher runs once"))?;
        let recorder = tokio::spawn(record_loop(this.store.clone(), records));
        let attempts = TaskTracker::new();
        this.deliver_loop(&stop, &attempts).await;
        attempts.close();
        let _ = tokio::time::timeout(this.timeout + Duration::from_secs(1), attempts.wait()).await;
        let _ = consume.await;
        gauge.abort();
        // The recorder ends once every sender is gone: the attempt tasks' (done)
        // and this dispatcher's own.
        // An attempt still hanging past its timeout keeps a sender: bounded wait.
        drop(this);
        let _ = tokio::time::timeout(Duration::from_secs(5), recorder).await;
        Ok(())
    }

    /// Reconnects with back-off until `stop`.
    async fn consume_loop(&self, stop: &CancellationToken) {
        let mut delays = kyc_bus::backoff();
        while !stop.is_cancelled() {
            match self.consume(stop).await {
                Ok(()) => break,
                Err(e) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(error = %e, ?delay, "webhook consumer stopped; reconnecting");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    async fn consume(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let connection = kyc_bus::connect(&self.amqp_url, "kyc-webhooks").await?;
        let channel =
            kyc_bus::open_consumer_channel(&connection, &self.topology, self.prefetch).await?;
        let mut consumer = channel
            .basic_consume(
                self.topology.webhooks_queue().into(),
                "".into(),
                // Manual acks: an event leaves the queue once its deliveries are stored.
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %self.topology.webhooks_queue(), "consuming events");
        let result = async {
            loop {
                let first = tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    next = consumer.next() => match next {
                        Some(delivery) => delivery?,
                        None => anyhow::bail!("the consumer was cancelled by the broker"),
                    },
                };
                let mut batch = vec![first];
                let linger = tokio::time::sleep(LINGER);
                tokio::pin!(linger);
                while batch.len() < BATCH {
                    tokio::select! {
                        () = &mut linger => break,
                        next = consumer.next() => match next {
                            Some(delivery) => batch.push(delivery?),
                            None => break,
                        },
                    }
                }
                let mut events: Vec<NewWebhookEvent> = Vec::with_capacity(batch.len());
                for delivery in &batch {
                    let message_type = delivery.properties.kind().as_ref().map(|k| k.as_str());
                    match route(delivery.routing_key.as_str(), message_type, &delivery.data) {
                        Routed::Events(routed) => {
                            for event in routed {
                                metrics::counter!("kyc_webhook_events_total", "type" => event.event_type.clone())
                                    .increment(1);
                                events.push(event);
                            }
                        }
                        Routed::Unknown => {
                            metrics::counter!("kyc_webhook_events_total", "type" => "unknown")
                                .increment(1);
                        }
                        Routed::Malformed(why) => {
                            metrics::counter!("kyc_webhook_events_total", "type" => "malformed")
                                .increment(1);
                            tracing::error!(%why, "an event that does not parse; acknowledged");
                        }
                    }
                }
                self.record(&events, stop).await?;
                if let Some(last) = batch.last() {
                    last.acker.ack(BasicAckOptions { multiple: true }).await?;
                }
                self.wake.notify_one();
            }
        }
        .await;
        let _ = channel
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await;
        let _ =
            tokio::time::timeout(Duration::from_secs(2), connection.close(200, "bye".into())).await;
        result
    }

    /// Writes the events until it succeeds; nothing is acknowledged before.
    async fn record(
        &self,
        events: &[NewWebhookEvent],
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut delays = kyc_bus::backoff();
        loop {
            match self.store.record_webhook_events(events).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(error = %e, ?delay, "could not store events; retrying");
                    tokio::select! {
                        () = stop.cancelled() => anyhow::bail!("stopped before the events were stored"),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Claims due deliveries while there is room, and attempts each in a task.
    async fn deliver_loop(self: &Arc<Self>, stop: &CancellationToken, attempts: &TaskTracker) {
        // An attempt ends within the timeout; the margin covers recording it.
        let lease = self.timeout + Duration::from_secs(10);
        while !stop.is_cancelled() {
            let free = self.slots.available_permits();
            let (full, counts) = {
                let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                let full: Vec<Uuid> = in_flight
                    .iter()
                    .filter(|(_, n)| **n >= self.per_endpoint)
                    .map(|(id, _)| *id)
                    .collect();
                (full, in_flight.clone())
            };
            let claimed = if free == 0 {
                Ok(Vec::new())
            } else {
                let per_endpoint = self.per_endpoint;
                self.store
                    .claim_webhook_deliveries(
                        &self.key,
                        free,
                        &full,
                        |endpoint| {
                            per_endpoint.saturating_sub(counts.get(&endpoint).copied().unwrap_or(0))
                        },
                        lease,
                    )
                    .await
            };
            let claimed = match claimed {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim deliveries");
                    Vec::new()
                }
            };
            let all_taken = free > 0 && claimed.len() == free;
            for claim in claimed {
                let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                    break;
                };
                *self
                    .in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(claim.endpoint_id)
                    .or_insert(0) += 1;
                let this = self.clone();
                attempts.spawn(async move {
                    let endpoint = claim.endpoint_id;
                    this.attempt(claim).await;
                    {
                        let mut in_flight =
                            this.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(n) = in_flight.get_mut(&endpoint) {
                            *n -= 1;
                            if *n == 0 {
                                in_flight.remove(&endpoint);
                            }
                        }
                    }
                    drop(permit);
                    this.wake.notify_one();
                });
            }
            if all_taken {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// One attempt of a claimed delivery, recorded.
    async fn attempt(&self, claim: ClaimedDelivery) {
        let id = webhook_id(claim.event_id);
        let started = Instant::now();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        // Literal addresses are checked here, names by the resolver.
        let signed = self
            .policy
            .check_url(&claim.url)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                signature::header(&claim.secrets, &id, timestamp, claim.body.as_bytes())
                    .map_err(|e| e.to_string())
            });
        let record = match signed {
            Ok(signatures) => {
                let request = self
                    .client
                    .post(&claim.url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signatures)
                    .body(claim.body.clone());
                match tokio::time::timeout(self.timeout, send(request)).await {
                    Ok(Ok((status, body))) => AttemptRecord {
                        status_code: Some(status),
                        latency: started.elapsed(),
                        error: (!(200..300).contains(&status)).then(|| format!("HTTP {status}")),
                        response_body: Some(body),
                    },
                    Ok(Err(e)) => AttemptRecord {
                        status_code: None,
                        latency: started.elapsed(),
                        error: Some(describe(&e, self.timeout)),
                        response_body: None,
                    },
                    Err(_) => AttemptRecord {
                        status_code: None,
                        latency: started.elapsed(),
                        error: Some(format!("timed out after {:?}", self.timeout)),
                        response_body: None,
                    },
                }
            }
            Err(e) => AttemptRecord {
                status_code: None,
                latency: started.elapsed(),
                error: Some(e),
                response_body: None,
            },
        };
        metrics::histogram!("kyc_webhook_attempt_duration_seconds")
            .record(record.latency.as_secs_f64());
        let next = self.next_step(&claim, &record);
        let outcome = match next {
            NextStep::Delivered => "delivered",
            NextStep::RetryAfter(_) => "retry",
            NextStep::Failed => "failed",
            NextStep::Gone => "gone",
        };
        metrics::counter!("kyc_webhook_deliveries_total", "outcome" => outcome).increment(1);
        if next != NextStep::Delivered {
            tracing::info!(delivery = %claim.id, endpoint = %claim.endpoint_id, error = ?record.error, outcome, "webhook attempt failed");
        }
        // Recorded in a batch by `record_loop`; if that never happens (a crash),
        // the lease runs out and the delivery is attempted again: at least once.
        let _ = self.finished.send(FinishedAttempt {
            delivery_id: claim.id,
            endpoint_id: claim.endpoint_id,
            lease_token: claim.lease_token,
            attempt: record,
            next,
        });
    }

    fn next_step(&self, claim: &ClaimedDelivery, record: &AttemptRecord) -> NextStep {
        match record.status_code {
            Some(status) if (200..300).contains(&status) => return NextStep::Delivered,
            Some(410) => return NextStep::Gone,
            _ => {}
        }
        let made = usize::try_from(claim.attempts).unwrap_or(0) + 1;
        match self.schedule.get(made) {
            Some(delay) => NextStep::RetryAfter(jittered(*delay, self.jitter)),
            None => NextStep::Failed,
        }
    }

    /// Keeps `kyc_webhook_pending_retries` current, and the planner's view of
    /// the deliveries table when the backlog changes fast.
    async fn gauge_loop(&self, stop: &CancellationToken) {
        let mut analyzed_at: i64 = 0;
        while !stop.is_cancelled() {
            if let Ok((pending, retries)) = self.store.pending_webhook_deliveries().await {
                metrics::gauge!("kyc_webhook_pending_retries").set(retries as f64);
                if (pending - analyzed_at).abs() > 1_000 {
                    if let Err(e) = self.store.analyze_webhook_deliveries().await {
                        tracing::debug!(error = %e, "could not analyze webhook_deliveries");
                    }
                    analyzed_at = pending;
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }
}

/// Writes finished attempts in batches until every sender is gone.
async fn record_loop(store: Store, mut finished: mpsc::UnboundedReceiver<FinishedAttempt>) {
    const MAX: usize = 500;
    let mut batch = Vec::with_capacity(MAX);
    while finished.recv_many(&mut batch, MAX).await > 0 {
        let mut delays = kyc_bus::backoff();
        let mut tries = 0;
        loop {
            match store.finish_webhook_attempts(&batch).await {
                Ok(recorded) => {
                    if (recorded as usize) < batch.len() {
                        tracing::warn!(
                            expired = batch.len() - recorded as usize,
                            "claims expired before their attempts were recorded"
                        );
                    }
                    break;
                }
                Err(e) if tries < 10 => {
                    tries += 1;
                    tracing::warn!(error = %e, "could not record attempts; retrying");
                    tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(1))).await;
                }
                Err(e) => {
                    // Their leases run out and they are attempted again.
                    tracing::error!(error = %e, n = batch.len(), "could not record attempts; they will be made again");
                    break;
                }
            }
        }
        batch.clear();
    }
}

/// `delay` times a random factor in `1 ± jitter`.
fn jittered(delay: Duration, jitter: f64) -> Duration {
    if delay.is_zero() || jitter == 0.0 {
        return delay;
    }
    let factor = rand::rng().random_range((1.0 - jitter)..=(1.0 + jitter));
    delay.mul_f64(factor)
}

/// Sends the request; the status and the first bytes of the body (at most
/// [`RESPONSE_READ_LIMIT`] are read).
async fn send(request: reqwest::RequestBuilder) -> Result<(u16, String), reqwest::Error> {
    let mut response = request.send().await?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < RESPONSE_READ_LIMIT {
        match response.chunk().await? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(RESPONSE_READ_LIMIT);
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// An error with its causes (a refused target names the address).
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {timeout:?}");
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The HTTP client of every attempt: rustls with the ring provider, no
/// redirects, no proxy, the guarded resolver, a fixed User-Agent.
pub fn client(policy: Policy, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    crate::install_crypto_provider();
    Ok(reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(!policy.allow_http)
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(64)
        .dns_resolver(GuardedResolver(policy))
        .build()?)
}
