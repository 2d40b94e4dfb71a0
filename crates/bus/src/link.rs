//! A supervised AMQP connection: connects with exponential back-off, declares the
//! topology, opens confirm-mode channels, watches for failure and broker flow
//! control, and starts over when the connection dies. Publishers borrow its
//! channels; nobody else reconnects.
//!
//! We do not use lapin's own auto-recovery: replaying consumers and confirm state
//! inside the client hides from us exactly the moment when unconfirmed publishes
//! must be answered 503. A fresh connection with fresh channels is simpler to
//! reason about, and every publish already tolerates failure.

use crate::connect::connect_from;
use crate::{BusError, Topology};
use futures_util::StreamExt;
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, Event};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

type EventStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Event> + Send>>;

/// What a [`Link`] connects to and how many channels it opens.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// The broker's AMQP URL (with credentials), or the URLs of a cluster's
    /// nodes separated by commas: tried in turn on every (re)connection, see
    /// [`crate::addresses`].
    pub url: String,
    /// Shown in the broker's management UI, e.g. `kyc-intake`.
    pub name: String,
    /// Declared on every (re)connection, before any publish.
    pub topology: Topology,
    /// Confirm-mode channels to spread publishes over.
    pub channels: usize,
}

/// The live connection, once established.
#[derive(Debug)]
struct Live {
    generation: u64,
    connection: Connection,
    channels: Vec<Slot>,
    next: AtomicUsize,
    /// The broker blocked publishing (memory or disk alarm).
    blocked: AtomicBool,
}

/// One publishing channel of a live connection, replaceable on its own.
#[derive(Debug)]
struct Slot {
    channel: std::sync::Mutex<Channel>,
    /// Publish rounds on it refused (nacked) in a row, none confirmed since.
    refused: AtomicU64,
    /// A replacement is being opened.
    replacing: AtomicBool,
}

impl Slot {
    fn new(channel: Channel) -> Slot {
        Slot {
            channel: std::sync::Mutex::new(channel),
            refused: AtomicU64::new(0),
            replacing: AtomicBool::new(false),
        }
    }

    fn channel(&self) -> Channel {
        self.channel
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Refused publish rounds in a row on one channel after which it is replaced
/// by a fresh one. A quorum queue can go on refusing a channel opened while
/// its leader moved — seen with RabbitMQ 3.10 when a cluster node is killed: a
/// client that reconnected to another node in that instant had every publish
/// nacked for as long as it kept its channels, while fresh channels were
/// served. A queue that is full (`reject-publish`) refuses fresh channels too:
/// then this only costs a channel now and then.
const REFUSED_ROUNDS_BEFORE_NEW_CHANNEL: u64 = 4;

/// How long a replaced channel stays open for the confirms still due on it.
const REPLACED_CHANNEL_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
enum State {
    Down,
    Up(Arc<Live>),
}

/// A channel lent to a publisher, with the generation of the connection it came
/// from (so a failure report cannot tear down a newer connection).
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub channel: Channel,
    pub generation: u64,
    pub blocked: bool,
    /// Which publishing channel of the connection it is.
    pub slot: usize,
    /// The connection it came from, for the refusal count of its slot.
    live: Arc<Live>,
}

/// Handle to a supervised connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Link {
    state: watch::Receiver<State>,
    failed: Arc<FailureReport>,
}

#[derive(Debug, Default)]
struct FailureReport {
    generation: AtomicU64,
    notify: Notify,
}

impl Link {
    /// Starts the supervisor task; it runs until `shutdown` is cancelled.
    pub fn spawn(options: LinkOptions, shutdown: CancellationToken) -> Link {
        let (tx, rx) = watch::channel(State::Down);
        let failed = Arc::new(FailureReport::default());
        tokio::spawn(supervise(options, tx, failed.clone(), shutdown));
        Link { state: rx, failed }
    }

    /// Whether a connection is up and not blocked by the broker.
    pub fn is_ready(&self) -> bool {
        match &*self.state.borrow() {
            State::Up(live) => !live.blocked.load(Ordering::Relaxed),
            State::Down => false,
        }
    }

    /// Waits until the link is up, at most `timeout`; `true` if it is.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut state = self.state.clone();
        let up = state.wait_for(|s| matches!(s, State::Up(_)));
        matches!(tokio::time::timeout(timeout, up).await, Ok(Ok(_)))
    }

    /// A consumer channel (see [`crate::open_consumer_channel`]) on the link's
    /// current connection; `None` while it is down. It dies with that connection,
    /// and its consumer then ends: ask again. Sharing the connection saves a
    /// socket and an I/O thread per process. (A broker alarm blocks the whole
    /// connection, but a worker's acks wait for its event publishes anyway.)
    pub async fn consumer_channel(
        &self,
        topology: &Topology,
        prefetch: u16,
    ) -> Result<Option<Channel>, BusError> {
        let live = match &*self.state.borrow() {
            State::Up(live) => live.clone(),
            State::Down => return Ok(None),
        };
        crate::open_consumer_channel(&live.connection, topology, prefetch)
            .await
            .map(Some)
    }

    /// The next channel, round-robin; `None` while the connection is down.
    pub(crate) fn lease(&self) -> Option<Lease> {
        match &*self.state.borrow() {
            State::Up(live) => {
                let i = live.next.fetch_add(1, Ordering::Relaxed) % live.channels.len();
                Some(Lease {
                    channel: live.channels[i].channel(),
                    generation: live.generation,
                    blocked: live.blocked.load(Ordering::Relaxed),
                    slot: i,
                    live: live.clone(),
                })
            }
            State::Down => None,
        }
    }

    /// A publish round on `lease` was refused (nacked) with nothing confirmed:
    /// after [`REFUSED_ROUNDS_BEFORE_NEW_CHANNEL`] such rounds in a row, the
    /// channel is replaced by a fresh one of the same connection.
    pub(crate) fn report_refused(&self, lease: &Lease) {
        let live = lease.live.clone();
        let slot = &live.channels[lease.slot];
        let rounds = slot.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if rounds < REFUSED_ROUNDS_BEFORE_NEW_CHANNEL || slot.replacing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let index = lease.slot;
        tokio::spawn(async move {
            replace_channel(&live, index).await;
        });
    }

    /// A publish on `lease` was confirmed: its channel's refusals are over.
    /// On every publish: one atomic load, no lock.
    pub(crate) fn report_confirmed(&self, lease: &Lease) {
        let slot = &lease.live.channels[lease.slot];
        if slot.refused.load(Ordering::Relaxed) != 0 {
            slot.refused.store(0, Ordering::Relaxed);
        }
    }

    /// A publisher saw a channel of `generation` fail: reconnect.
    pub(crate) fn report_failure(&self, generation: u64) {
        self.failed.generation.store(generation, Ordering::Relaxed);
        self.failed.notify.notify_one();
    }
}

/// Why the supervisor gives a connection up and starts over.
#[derive(Debug, thiserror::Error)]
enum Down {
    #[error("a publish on it failed")]
    PublishFailed,
    #[error("connection no longer connected")]
    Disconnected,
    #[error("connection error: {0}")]
    Error(#[source] lapin::Error),
    #[error("event stream ended")]
    EventsEnded,
}

async fn supervise(
    options: LinkOptions,
    state: watch::Sender<State>,
    failed: Arc<FailureReport>,
    shutdown: CancellationToken,
) {
    let mut generation = 0u64;
    // The address to try first: the first one, then after each loss the one
    // after the address that was lost (a dead node is tried last).
    let mut first = 0usize;
    loop {
        generation += 1;
        let established = tokio::select! {
            () = shutdown.cancelled() => return,
            live = establish_with_backoff(&options, generation, first) => live,
        };
        let (live, mut events, address) = established;
        first = address + 1;
        let live = Arc::new(live);
        tracing::info!(name = %options.name, generation, "amqp link up");
        state.send_replace(State::Up(live.clone()));

        // Fallback for a death that produces no event: poll the status.
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        let reason = loop {
            tokio::select! {
                () = shutdown.cancelled() => break None,
                () = failed.notify.notified() => {
                    if failed.generation.load(Ordering::Relaxed) == generation {
                        break Some(Down::PublishFailed);
                    }
                }
                _ = poll.tick() => {
                    if !live.connection.status().connected() {
                        break Some(Down::Disconnected);
                    }
                }
                event = events.next() => match event {
                    Some(Event::Error(e)) => break Some(Down::Error(e)),
                    Some(Event::ConnectionBlocked(why)) => {
                        tracing::warn!(name = %options.name, reason = %why, "broker blocked publishing");
                        live.blocked.store(true, Ordering::Relaxed);
                    }
                    Some(Event::ConnectionUnblocked) => {
                        tracing::info!(name = %options.name, "broker unblocked publishing");
                        live.blocked.store(false, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => break Some(Down::EventsEnded),
                },
            }
        };
        state.send_replace(State::Down);
        crate::close(&live.connection, "closing").await;
        match reason {
            None => return,
            Some(reason) => {
                tracing::warn!(name = %options.name, %reason, error.cause_chain = ?reason, "amqp link down, reconnecting")
            }
        }
    }
}

/// Retries [`establish`] with [`crate::backoff`], forever: the caller cancels.
/// Each attempt tries every address once, beginning with the one at `first`;
/// the back-off is between rounds. Also returns the index of the address.
async fn establish_with_backoff(
    options: &LinkOptions,
    generation: u64,
    first: usize,
) -> (Live, EventStream, usize) {
    let mut delays = crate::backoff();
    loop {
        match establish(options, generation, first).await {
            Ok(live) => return live,
            Err(e) => {
                let delay = delays.next().expect("the back-off schedule never ends");
                tracing::warn!(name = %options.name, error = %e, ?delay, "amqp connect failed");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn establish(
    options: &LinkOptions,
    generation: u64,
    first: usize,
) -> Result<(Live, EventStream, usize), BusError> {
    let (connection, address) = connect_from(&options.url, first, &options.name).await?;
    // On a channel of its own: a user that may not declare the topology (the
    // intake's) checks that it exists instead. Before subscribing to the
    // connection's events, which would report the refused declaration (a
    // channel error, already handled here) as a failure of the link.
    options.topology.ensure(&connection).await?;
    // Subscribe before anything else can fail, so no error event is missed.
    let events: EventStream = Box::pin(connection.events_listener());
    let mut channels = Vec::with_capacity(options.channels.max(1));
    for _ in 0..options.channels.max(1) {
        channels.push(Slot::new(confirming_channel(&connection).await?));
    }
    Ok((
        Live {
            generation,
            connection,
            channels,
            next: AtomicUsize::new(0),
            blocked: AtomicBool::new(false),
        },
        events,
        address,
    ))
}

/// A channel of `connection` in publisher-confirm mode: success is a broker
/// ack, never "the bytes left our socket".
async fn confirming_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Opens a fresh publishing channel in slot `index` of `live`; the old one is
/// closed once the confirms still due on it have had their time. On failure
/// the slot keeps its channel (a broken connection is the supervisor's).
async fn replace_channel(live: &Live, index: usize) {
    let slot = &live.channels[index];
    match confirming_channel(&live.connection).await {
        Ok(fresh) => {
            let old = std::mem::replace(
                &mut *slot
                    .channel
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                fresh,
            );
            slot.refused.store(0, Ordering::Relaxed);
            tracing::warn!(
                generation = live.generation,
                channel = index,
                "every publish on a channel was refused; replaced it with a fresh one"
            );
            tokio::spawn(async move {
                tokio::time::sleep(REPLACED_CHANNEL_GRACE).await;
                crate::close_channel(&old, "replaced").await;
            });
        }
        Err(e) => tracing::warn!(error = %e, "could not open a replacement channel"),
    }
    slot.replacing.store(false, Ordering::Release);
}
