//! The dispatcher: one loop takes events off the webhooks queue and writes them
//! with their deliveries to PostgreSQL (acknowledging only after the commit);
//! another claims due deliveries and attempts them, each attempt a task of its
//! own, within a global and a per-endpoint limit of attempts in flight.
//!
//! A fresh event's deliveries are claimed in the transaction that records them
//! and handed straight to the deliver loop, so their first attempt costs no
//! claim; claims (`FOR UPDATE SKIP LOCKED`) find retries, deliveries another
//! dispatcher recorded, and whatever was let go.
//!
//! Claims run ahead of the slots: an endpoint gets up to [`AHEAD`] times its
//! limit claimed at once, kept in memory and attempted as its slots free, so a
//! busy endpoint costs one claim per few dozen deliveries instead of one per
//! handful. A claimed row waits in memory only while its lease still covers a
//! whole attempt; past that it is let go (and claimed again once the lease has
//! run out), so no row is ever attempted under an expired lease.
//!
//! When a fast endpoint's queue is full, the consumer pauses (at most
//! [`MAX_PAUSE`] per batch) instead of recording events it would only release
//! to the table: a released row costs two more updates and a claim that scans
//! past every row leased since, and under a long backlog that work took more
//! of PostgreSQL than the deliveries themselves. A slow or hanging endpoint
//! never pauses the consumer: its overflow is released as before, so it
//! delays no one else.

use crate::event::{Routed, route, webhook_id};
use crate::signature;
use crate::target::{GuardedResolver, Policy};
use futures_util::StreamExt;
use kyc_bus::Topology;
use kyc_bus::lapin::Acker;
use kyc_bus::lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions};
use kyc_bus::lapin::types::FieldTable;
use kyc_config::Settings;
use kyc_store::webhooks::{
    AttemptRecord, ClaimedDelivery, FinishedAttempt, NewWebhookEvent, NextStep,
};
use kyc_store::{DataKey, Store};
use rand::RngExt;
use secrecy::ExposeSecret;
use std::collections::{HashMap, HashSet, VecDeque};
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
/// A written batch: its deliveries, claimed, and the acker of its last message.
type Recorded = (Vec<ClaimedDelivery>, Option<Acker>);

/// Batches of events being written at once (the prefetch should hold as many
/// batches for the next one to be waiting).
const RECORDING: usize = 2;
/// Rows claimed ahead per endpoint, as a multiple of its in-flight limit, for
/// an endpoint whose speed is not known yet.
const AHEAD: usize = 4;
/// Rows claimed ahead per endpoint at most, however fast it answers.
const MAX_AHEAD: usize = 4_096;
/// What an attempt's lease covers beyond its timeout: recording it.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// The longest the consumer waits, per batch, for a full endpoint's queue to
/// drain; also what makes an endpoint fast enough to wait for at all.
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// A claimed delivery waiting in memory for a slot of its endpoint.
#[derive(Debug)]
struct Queued {
    claim: ClaimedDelivery,
    at: Instant,
}

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
    max_in_flight: usize,
    slots: Arc<Semaphore>,
    in_flight: Arc<Mutex<HashMap<Uuid, usize>>>,
    /// Each endpoint's recent attempt time (moving average), which sets how
    /// many of its rows may wait in memory.
    latency: Mutex<HashMap<Uuid, Duration>>,
    wake: Arc<Notify>,
    /// Set when events were recorded: there may be new deliveries to claim.
    fresh: std::sync::atomic::AtomicBool,
    /// Finished attempts on their way to [`record_loop`], which writes them in
    /// batches: a slot is free again as soon as its HTTP exchange is over.
    finished: mpsc::UnboundedSender<FinishedAttempt>,
    finished_rx: Mutex<Option<mpsc::UnboundedReceiver<FinishedAttempt>>>,
    /// The deliveries of freshly recorded events, claimed in the transaction
    /// that recorded them, on their way from the consumer to the deliver loop:
    /// their first attempt needs no claim of its own.
    handoff: mpsc::UnboundedSender<Vec<ClaimedDelivery>>,
    handoff_rx: Mutex<Option<mpsc::UnboundedReceiver<Vec<ClaimedDelivery>>>>,
    /// Set by the deliver loop while a fast endpoint's queue is full (fresh
    /// claims for it had to be released): the consumer waits before reading
    /// more events, until [`Dispatcher::drained`] or [`MAX_PAUSE`].
    saturated: std::sync::atomic::AtomicBool,
    drained: Notify,
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
        let (handoff, handoff_rx) = mpsc::unbounded_channel();
        Ok(Dispatcher {
            finished,
            finished_rx: Mutex::new(Some(finished_rx)),
            handoff,
            handoff_rx: Mutex::new(Some(handoff_rx)),
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
            max_in_flight: w.max_in_flight,
            slots: Arc::new(Semaphore::new(w.max_in_flight)),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            latency: Mutex::new(HashMap::new()),
            wake: Arc::new(Notify::new()),
            fresh: std::sync::atomic::AtomicBool::new(true),
            saturated: std::sync::atomic::AtomicBool::new(false),
            drained: Notify::new(),
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
        let handoff = this
            .handoff_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| anyhow::anyhow!("a dispatcher runs once"))?;
        this.deliver_loop(&stop, &attempts, handoff).await;
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
    async fn consume_loop(self: &Arc<Self>, stop: &CancellationToken) {
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

    async fn consume(self: &Arc<Self>, stop: &CancellationToken) -> anyhow::Result<()> {
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
        // Batches being written, oldest first: up to [`RECORDING`] at once, each
        // acknowledged (with every message before it) once it and all older ones
        // are committed, so the broker's next batch is read while one is written.
        let mut recording = futures_util::stream::FuturesOrdered::new();
        let result = async {
            loop {
                // Since when the next batch waits for a full endpoint.
                let mut paused_since: Option<Instant> = None;
                let first = loop {
                    let hold = if self.saturated.load(std::sync::atomic::Ordering::Acquire) {
                        let since = *paused_since.get_or_insert_with(Instant::now);
                        since.elapsed() < MAX_PAUSE
                    } else {
                        false
                    };
                    let pause_left = paused_since
                        .map_or(MAX_PAUSE, |at| MAX_PAUSE.saturating_sub(at.elapsed()));
                    tokio::select! {
                        () = stop.cancelled() => {
                            while let Some(done) = recording.next().await {
                                self.settle(done).await?;
                            }
                            return Ok(());
                        }
                        done = recording.next(), if !recording.is_empty() => {
                            if let Some(done) = done {
                                self.settle(done).await?;
                            }
                        }
                        () = self.drained.notified(), if hold => {}
                        () = tokio::time::sleep(pause_left), if hold => {}
                        next = consumer.next(), if recording.len() < RECORDING && !hold => match next {
                            Some(delivery) => break delivery?,
                            None => anyhow::bail!("the consumer was cancelled by the broker"),
                        },
                    }
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
                let acker = batch.last().map(|last| last.acker.clone());
                let (this, stop) = (self.clone(), stop.clone());
                recording.push_back(tokio::spawn(async move {
                    let claimed = this.record(&events, &stop).await?;
                    anyhow::Ok((claimed, acker))
                }));
            }
        }
        .await;
        let _ = channel
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await;
        kyc_bus::close(&connection, "bye").await;
        result
    }

    /// Acknowledges a written batch (and every message before it: older batches
    /// are settled first) and hands its claimed deliveries to the deliver loop.
    async fn settle(
        &self,
        done: Result<anyhow::Result<Recorded>, tokio::task::JoinError>,
    ) -> anyhow::Result<()> {
        let (claimed, acker) = done??;
        if let Some(acker) = acker {
            acker.ack(BasicAckOptions { multiple: true }).await?;
        }
        if !claimed.is_empty() {
            // The deliver loop gone (stopping): the leases run out.
            let _ = self.handoff.send(claimed);
        }
        Ok(())
    }

    /// Writes the events until it succeeds (nothing is acknowledged before);
    /// their new deliveries, claimed for this dispatcher.
    async fn record(
        &self,
        events: &[NewWebhookEvent],
        stop: &CancellationToken,
    ) -> anyhow::Result<Vec<ClaimedDelivery>> {
        let mut delays = kyc_bus::backoff();
        loop {
            match self
                .store
                .record_webhook_events_claimed(&self.key, events, self.lease())
                .await
            {
                Ok(claimed) => return Ok(claimed),
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

    /// How long a claim holds a delivery: an attempt ends within the timeout,
    /// and the margin covers recording it.
    fn lease(&self) -> Duration {
        self.timeout + LEASE_MARGIN
    }

    /// Claims due deliveries ahead of the free slots, and attempts each in a task
    /// as its endpoint has room.
    async fn deliver_loop(
        self: &Arc<Self>,
        stop: &CancellationToken,
        attempts: &TaskTracker,
        mut handoff: mpsc::UnboundedReceiver<Vec<ClaimedDelivery>>,
    ) {
        use std::sync::atomic::Ordering;
        let lease = self.lease();
        // A queued claim is attempted only while a whole attempt still fits in
        // its lease, with a margin to record it.
        let usable = lease.saturating_sub(self.timeout + Duration::from_secs(2));
        let mut queue: HashMap<Uuid, VecDeque<Queued>> = HashMap::new();
        // Fast endpoints whose queue was full: the consumer waits for them.
        let mut full: HashSet<Uuid> = HashSet::new();
        let mut claim_due = true;
        let mut last_claim: Option<Instant> = None;
        while !stop.is_cancelled() {
            if self.dispatch(&mut queue, usable, attempts) {
                claim_due = true;
            }
            self.ease(&queue, &mut full);
            if self.fresh.swap(false, Ordering::AcqRel)
                || last_claim.is_none_or(|at| at.elapsed() >= self.poll)
            {
                claim_due = true;
            }
            let free = self.slots.available_permits();
            if claim_due && free > 0 {
                let queued: usize = queue.values().map(VecDeque::len).sum();
                let max = (self.max_in_flight * AHEAD)
                    .max(MAX_AHEAD)
                    .saturating_sub(queued);
                let claimed = self.claim(&queue, max, lease).await;
                last_claim = Some(Instant::now());
                // A full claim may have left more behind: claim again at once.
                claim_due = max > 0 && claimed.len() == max;
                let at = Instant::now();
                for claim in claimed {
                    queue
                        .entry(claim.endpoint_id)
                        .or_default()
                        .push_back(Queued { claim, at });
                }
                self.dispatch(&mut queue, usable, attempts);
            }
            if claim_due {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
                fresh = handoff.recv() => {
                    if let Some(fresh) = fresh {
                        full.extend(self.take_over(&mut queue, fresh).await);
                        if !full.is_empty() {
                            self.saturated.store(true, Ordering::Release);
                        }
                    }
                }
                () = tokio::time::sleep(self.poll) => {}
            }
        }
        // Claims not attempted go back at once rather than when their lease
        // runs out.
        handoff.close();
        full.clear();
        self.ease(&queue, &mut full);
        let mut unused: Vec<(Uuid, Uuid)> = queue
            .into_values()
            .flatten()
            .map(|q| (q.claim.id, q.claim.lease_token))
            .collect();
        while let Ok(fresh) = handoff.try_recv() {
            unused.extend(fresh.iter().map(|c| (c.id, c.lease_token)));
        }
        if let Err(e) = self.store.release_webhook_claims(&unused).await {
            tracing::warn!(error = %e, n = unused.len(), "could not release claims; they return when their leases run out");
        }
    }

    /// Queues the deliveries the consumer claimed for their first attempt, each
    /// endpoint up to [`Dispatcher::ahead`] (in flight and queued together);
    /// the rest are released at once for later claims, so a burst
    /// for a slow endpoint is not held in memory past its leases. Returns the
    /// fast endpoints (see [`Dispatcher::drains_within`]) that had claims released: the
    /// consumer should wait for them.
    async fn take_over(
        &self,
        queue: &mut HashMap<Uuid, VecDeque<Queued>>,
        fresh: Vec<ClaimedDelivery>,
    ) -> HashSet<Uuid> {
        let counts = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let at = Instant::now();
        let mut released = Vec::new();
        let mut full = HashSet::new();
        for claim in fresh {
            let endpoint = claim.endpoint_id;
            let waiting = queue.entry(endpoint).or_default();
            let busy = counts.get(&endpoint).copied().unwrap_or(0);
            if busy + waiting.len() < self.ahead(endpoint) {
                waiting.push_back(Queued { claim, at });
            } else {
                released.push((claim.id, claim.lease_token));
                if self.drains_within(endpoint, self.ahead(endpoint) / 2, MAX_PAUSE) {
                    full.insert(endpoint);
                }
            }
        }
        queue.retain(|_, waiting| !waiting.is_empty());
        if released.is_empty() {
            return full;
        }
        metrics::counter!("kyc_webhook_claims_released_total").increment(released.len() as u64);
        if let Err(e) = self.store.release_webhook_claims(&released).await {
            tracing::warn!(error = %e, n = released.len(), "could not release claims; they return when their leases run out");
        }
        // There is more to claim than was kept.
        self.fresh.store(true, std::sync::atomic::Ordering::Release);
        full
    }

    /// Whether `endpoint`'s slots, at its recent speed, attempt `n` deliveries
    /// within `limit` (never, while its speed is unknown).
    fn drains_within(&self, endpoint: Uuid, n: usize, limit: Duration) -> bool {
        let latency = self.latency(endpoint);
        latency.is_some_and(|latency| drain_time(n, self.per_endpoint, latency) <= limit)
    }

    /// Forgets the full endpoints whose queue is down to half of what they may
    /// hold; once none is left, lets the consumer go on.
    fn ease(&self, queue: &HashMap<Uuid, VecDeque<Queued>>, full: &mut HashSet<Uuid>) {
        if full.is_empty() && !self.saturated.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        full.retain(|endpoint| {
            queue.get(endpoint).map_or(0, VecDeque::len) >= self.ahead(*endpoint) / 2
        });
        if full.is_empty()
            && self
                .saturated
                .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            self.drained.notify_waiters();
        }
    }

    /// Claims up to `max` due deliveries, each endpoint up to
    /// [`Dispatcher::ahead`] (in flight and queued together), and none for an
    /// endpoint whose queue still holds a round of attempts.
    async fn claim(
        &self,
        queue: &HashMap<Uuid, VecDeque<Queued>>,
        max: usize,
        lease: Duration,
    ) -> Vec<ClaimedDelivery> {
        if max == 0 {
            return Vec::new();
        }
        let counts = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let per_endpoint = self.per_endpoint;
        let room = |endpoint: Uuid| {
            let queued = queue.get(&endpoint).map_or(0, VecDeque::len);
            if queued >= per_endpoint {
                return 0;
            }
            self.ahead(endpoint)
                .saturating_sub(counts.get(&endpoint).copied().unwrap_or(0) + queued)
        };
        let full: Vec<Uuid> = counts
            .keys()
            .chain(queue.keys())
            .copied()
            .filter(|endpoint| room(*endpoint) == 0)
            .collect();
        match self
            .store
            .claim_webhook_deliveries(&self.key, max, &full, room, lease)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim deliveries");
                Vec::new()
            }
        }
    }

    /// Starts an attempt for every queued claim whose endpoint has room, while
    /// slots are free; lets go of claims whose lease no longer covers an
    /// attempt. `true` if an endpoint's queue fell below one round of
    /// attempts (time to claim more for it).
    fn dispatch(
        self: &Arc<Self>,
        queue: &mut HashMap<Uuid, VecDeque<Queued>>,
        usable: Duration,
        attempts: &TaskTracker,
    ) -> bool {
        let mut low = false;
        queue.retain(|endpoint, waiting| {
            while waiting.front().is_some_and(|q| q.at.elapsed() > usable) {
                waiting.pop_front();
                metrics::counter!("kyc_webhook_claims_expired_total").increment(1);
            }
            let before = waiting.len();
            while !waiting.is_empty() {
                let busy = self
                    .in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(endpoint)
                    .copied()
                    .unwrap_or(0);
                if busy >= self.per_endpoint {
                    break;
                }
                let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                    break;
                };
                if let Some(queued) = waiting.pop_front() {
                    self.spawn_attempt(queued.claim, permit, attempts);
                }
            }
            if before >= self.per_endpoint && waiting.len() < self.per_endpoint {
                low = true;
            }
            !waiting.is_empty()
        });
        low
    }

    /// How many of `endpoint`'s rows may be claimed at once (in flight and
    /// queued): as many as its slots can attempt in half the time a queued claim
    /// stays usable, at its recent speed; [`AHEAD`] times its limit while its
    /// speed is unknown; never more than [`MAX_AHEAD`].
    fn ahead(&self, endpoint: Uuid) -> usize {
        let floor = self.per_endpoint * AHEAD;
        let latency = self.latency(endpoint);
        let Some(latency) = latency else {
            return floor;
        };
        let usable = LEASE_MARGIN.saturating_sub(Duration::from_secs(2)) / 2;
        let rounds = usable.as_secs_f64() / latency.as_secs_f64().max(0.001);
        ((self.per_endpoint as f64 * rounds) as usize).clamp(floor, MAX_AHEAD.max(floor))
    }

    /// `endpoint`'s recent attempt time, once one has finished.
    fn latency(&self, endpoint: Uuid) -> Option<Duration> {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&endpoint)
            .copied()
    }

    /// Folds an attempt's duration into `endpoint`'s moving average.
    fn observe(&self, endpoint: Uuid, took: Duration) {
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let average = latency.entry(endpoint).or_insert(took);
        *average = average.mul_f64(0.8) + took.mul_f64(0.2);
    }

    /// Attempts `claim` in a task of its own, holding `permit` and a place in its
    /// endpoint's count until it is done.
    fn spawn_attempt(
        self: &Arc<Self>,
        claim: ClaimedDelivery,
        permit: tokio::sync::OwnedSemaphorePermit,
        attempts: &TaskTracker,
    ) {
        *self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(claim.endpoint_id)
            .or_insert(0) += 1;
        let this = self.clone();
        attempts.spawn(async move {
            let endpoint = claim.endpoint_id;
            let started = Instant::now();
            this.attempt(claim).await;
            this.observe(endpoint, started.elapsed());
            {
                let mut in_flight = this.in_flight.lock().unwrap_or_else(|e| e.into_inner());
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

/// How long `slots` attempts in parallel, each taking `latency`, take for `n`
/// deliveries.
fn drain_time(n: usize, slots: usize, latency: Duration) -> Duration {
    let rounds = n.div_ceil(slots.max(1));
    latency.saturating_mul(u32::try_from(rounds).unwrap_or(u32::MAX))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_time_counts_rounds_of_the_endpoints_slots() {
        let ms = Duration::from_millis;
        // A full fast endpoint (16 slots, 1 ms an attempt) halves its 4,096 in
        // 128 ms: worth pausing the consumer for.
        assert_eq!(drain_time(2_048, 16, ms(1)), ms(128));
        assert!(drain_time(2_048, 16, ms(1)) <= MAX_PAUSE);
        // A partial round is a round.
        assert_eq!(drain_time(17, 16, ms(10)), ms(20));
        assert_eq!(drain_time(0, 16, ms(10)), Duration::ZERO);
        // A hanging one (10 s an attempt) never is.
        assert!(drain_time(32, 16, Duration::from_secs(10)) > MAX_PAUSE);
        // No slots counts as one.
        assert_eq!(drain_time(3, 0, ms(1)), ms(3));
    }
}
