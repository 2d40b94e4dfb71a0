//! Confirmed publishing: the only success is a plain broker ack with no returned
//! message, within a timeout. Everything else is an error the caller can answer
//! honestly (the intake: 503 `unavailable`; `kycctl push`: stop and say how to
//! resume).
//!
//! There is one publish path (send, wait for the confirm under a timeout, settle
//! it by the rule above), offered two ways:
//!
//! - [`Publisher`], over a supervised [`Link`] (the intake and the workers): it
//!   leases a channel, bounds the publishes in flight, and reports broken
//!   channels so the link reconnects;
//! - [`ConfirmChannel`], one confirm-mode channel on a connection the caller owns
//!   for a single run (`kycctl push`, `kycctl dlq replay`): each publish is a
//!   future, so many can be kept in flight at once.

use crate::{BusError, Link};
use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Why a message was not durably accepted. None of these means "lost": the
/// message is either not on the broker or the caller does not know, and must not
/// claim success.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No connection to the broker right now (it is being re-established).
    #[error("broker not connected")]
    NotConnected,
    /// The broker blocked publishing (memory or disk alarm).
    #[error("broker blocked publishing")]
    Blocked,
    /// Too many publishes already waiting for confirms in this process.
    #[error("too many publishes in flight")]
    Busy,
    /// No confirm within the timeout.
    #[error("no publisher confirm within {0:?}")]
    Timeout(Duration),
    /// The broker nacked the message (it could not store it, e.g. a full queue
    /// that rejects publishes).
    #[error("broker nacked the message")]
    Nacked,
    /// Unroutable: returned by the broker (`mandatory`), e.g. the queue is
    /// missing. Holds the broker's reply text (`NO_ROUTE`); never the message,
    /// whose body may hold personal data.
    #[error("message returned by the broker: {0}")]
    Returned(String),
    /// The channel is not in publisher-confirm mode, so no confirm can be had.
    #[error("the channel is not in publisher-confirm mode")]
    NotConfirming,
    /// The channel or connection failed (closed by the broker, I/O error).
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
}

impl PublishError {
    /// Whether the channel the publish went out on is to be considered broken
    /// (a fresh connection is the cure), rather than the message refused.
    fn breaks_channel(&self) -> bool {
        matches!(
            self,
            PublishError::Amqp(_) | PublishError::Timeout(_) | PublishError::NotConfirming
        )
    }
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// Exchange to publish to (`""`: the default exchange, routing by queue name).
    pub exchange: &'a str,
    /// Routing key, e.g. [`kyc_core::wire::SUBMISSION_ROUTING_KEY`].
    pub routing_key: &'a str,
    /// The message body.
    pub payload: &'a [u8],
    /// Headers, ids and delivery mode; usually built on [`persistent`].
    pub properties: BasicProperties,
    /// Ask the broker to return the message if no queue takes it. Submissions
    /// set it (an unroutable submission is not "durably queued"); result events
    /// on the topic exchange do not (nobody listening is fine).
    pub mandatory: bool,
}

/// Publishes with confirms, bounded in-flight count and a confirm timeout, over
/// the channels of a [`Link`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Publisher {
    link: Link,
    confirm_timeout: Duration,
    in_flight: Arc<Semaphore>,
}

impl Publisher {
    /// `max_in_flight` bounds publishes awaiting confirms; past it, [`publish`]
    /// fails at once with [`PublishError::Busy`] instead of queueing memory.
    ///
    /// [`publish`]: Self::publish
    pub fn new(link: Link, confirm_timeout: Duration, max_in_flight: usize) -> Publisher {
        Publisher {
            link,
            confirm_timeout,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
        }
    }

    /// The link publishes go over (for readiness checks).
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Publishes one message; `Ok` only for a plain, timely broker ack.
    pub async fn publish(&self, message: Outgoing<'_>) -> Result<(), PublishError> {
        let started = std::time::Instant::now();
        let (sent, outcome) = self.publish_one(message).await;
        crate::metrics::record(started, sent, [&outcome]);
        outcome
    }

    /// [`publish`](Self::publish) without the metrics; whether it was sent.
    async fn publish_one(&self, message: Outgoing<'_>) -> (bool, Result<(), PublishError>) {
        let outcome = self.refuse_or_send(message).await;
        let sent = !matches!(
            outcome,
            Err(PublishError::Busy | PublishError::NotConnected | PublishError::Blocked)
        );
        (sent, outcome)
    }

    async fn refuse_or_send(&self, message: Outgoing<'_>) -> Result<(), PublishError> {
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| PublishError::Busy)?;
        let lease = self.link.lease().ok_or(PublishError::NotConnected)?;
        if lease.blocked {
            return Err(PublishError::Blocked);
        }
        let outcome = confirmed(&lease.channel, message, self.confirm_timeout).await;
        if outcome.as_ref().is_err_and(PublishError::breaks_channel) {
            self.link.report_failure(lease.generation);
        }
        self.note_refusals(&lease, std::slice::from_ref(&outcome));
        outcome
    }

    /// Tells the link about rounds where the broker refused everything on a
    /// channel (see [`Link::report_refused`]); a confirm ends the count.
    fn note_refusals(&self, lease: &crate::link::Lease, outcomes: &[Result<(), PublishError>]) {
        if outcomes.iter().any(Result::is_ok) {
            self.link.report_confirmed(lease);
        } else if outcomes
            .iter()
            .any(|o| matches!(o, Err(PublishError::Nacked)))
        {
            self.link.report_refused(lease);
        }
    }

    /// Publishes several messages on one channel, all in flight at once, under one
    /// confirm timeout; one result per message, in order. Cheaper per message than
    /// [`publish`](Self::publish) for a batch (one permit request, one channel
    /// lease, one timer).
    pub async fn publish_all(&self, messages: Vec<Outgoing<'_>>) -> Vec<Result<(), PublishError>> {
        let started = std::time::Instant::now();
        let outcomes = self.publish_all_unrecorded(messages).await;
        let sent = !outcomes.iter().all(|o| {
            matches!(
                o,
                Err(PublishError::Busy | PublishError::NotConnected | PublishError::Blocked)
            )
        });
        crate::metrics::record(started, sent, &outcomes);
        outcomes
    }

    async fn publish_all_unrecorded(
        &self,
        messages: Vec<Outgoing<'_>>,
    ) -> Vec<Result<(), PublishError>> {
        let n = messages.len();
        let all = |error: fn() -> PublishError| (0..n).map(|_| Err(error())).collect();
        let Ok(_permits) = u32::try_from(n)
            .ok()
            .and_then(|n| self.in_flight.try_acquire_many(n).ok())
            .ok_or(())
        else {
            return all(|| PublishError::Busy);
        };
        let Some(lease) = self.link.lease() else {
            return all(|| PublishError::NotConnected);
        };
        if lease.blocked {
            return all(|| PublishError::Blocked);
        }
        let mandatory: Vec<bool> = messages.iter().map(|m| m.mandatory).collect();
        let confirms = messages
            .into_iter()
            .map(|message| send(&lease.channel, message));
        let timeout = self.confirm_timeout;
        let outcomes: Vec<Result<(), PublishError>> =
            match tokio::time::timeout(timeout, join_all(confirms)).await {
                Err(_) => (0..n)
                    .map(|_| Err(PublishError::Timeout(timeout)))
                    .collect(),
                Ok(confirmations) => confirmations
                    .into_iter()
                    .zip(mandatory)
                    .map(|(confirmation, mandatory)| settle(confirmation, mandatory))
                    .collect(),
            };
        if outcomes
            .iter()
            .any(|o| o.as_ref().is_err_and(PublishError::breaks_channel))
        {
            self.link.report_failure(lease.generation);
        }
        self.note_refusals(&lease, &outcomes);
        outcomes
    }
}

/// One channel in publisher-confirm mode on a connection the caller owns, with
/// the same confirm rules and timeout as [`Publisher`]. For a process that runs
/// one job on one connection and stops at the first failure (`kycctl push`,
/// `kycctl dlq replay`), where a supervised [`Link`] that reconnects behind its
/// back would only hide the failure. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConfirmChannel {
    channel: Channel,
    confirm_timeout: Duration,
}

impl ConfirmChannel {
    /// Opens a channel on `connection` and turns publisher confirms on.
    pub async fn open(
        connection: &Connection,
        confirm_timeout: Duration,
    ) -> Result<ConfirmChannel, BusError> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(ConfirmChannel {
            channel,
            confirm_timeout,
        })
    }

    /// `n` (at least one) confirm channels on `connection`. The broker serves
    /// each channel in one process: several, used in turn, carry more than one.
    pub async fn open_many(
        connection: &Connection,
        n: usize,
        confirm_timeout: Duration,
    ) -> Result<Vec<ConfirmChannel>, BusError> {
        let mut channels = Vec::with_capacity(n.max(1));
        for _ in 0..n.max(1) {
            channels.push(ConfirmChannel::open(connection, confirm_timeout).await?);
        }
        Ok(channels)
    }

    /// The underlying channel, for declarations (not for publishing: that is
    /// [`publish`](Self::publish)).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes one message and resolves once it is settled: `Ok` only for a
    /// plain broker ack, with nothing returned, within the confirm timeout.
    ///
    /// Nothing is sent until the future is first polled, and the timeout runs
    /// from then. Many of these futures can be polled together (e.g. in a
    /// `FuturesUnordered`) to keep a window of publishes awaiting their confirms;
    /// the channel delivers them in the order they were first polled. Send all
    /// mandatory messages of one channel to one destination: a return cannot be
    /// told apart from a neighbour's under a multiple ack (see `settle`).
    pub async fn publish(&self, message: Outgoing<'_>) -> Result<(), PublishError> {
        let started = std::time::Instant::now();
        let outcome = confirmed(&self.channel, message, self.confirm_timeout).await;
        crate::metrics::record(started, true, [&outcome]);
        outcome
    }
}

/// Publishes on `channel`, waits for the broker's confirm at most `timeout`, and
/// settles it.
async fn confirmed(
    channel: &Channel,
    message: Outgoing<'_>,
    timeout: Duration,
) -> Result<(), PublishError> {
    let mandatory = message.mandatory;
    match tokio::time::timeout(timeout, send(channel, message)).await {
        Err(_) => Err(PublishError::Timeout(timeout)),
        Ok(confirmation) => settle(confirmation, mandatory),
    }
}

/// Publishes on `channel` and waits for the broker's confirm.
async fn send(channel: &Channel, message: Outgoing<'_>) -> Result<Confirmation, lapin::Error> {
    let options = BasicPublishOptions {
        mandatory: message.mandatory,
        ..BasicPublishOptions::default()
    };
    channel
        .basic_publish(
            message.exchange.into(),
            message.routing_key.into(),
            options,
            message.payload,
            message.properties,
        )
        .await?
        .await
}

/// What a confirm means: only a plain ack with nothing returned is success.
///
/// lapin hands a returned message to the next confirm that completes on its
/// channel, which under a multiple ack need not be the confirm of the message
/// that was returned (`basic.return` names no delivery tag). A message published
/// without `mandatory` is never returned, so a return on its confirm is a
/// neighbour's and its own ack stands. Among mandatory messages of one channel a
/// return may land on a neighbour's confirm; every caller sends all its mandatory
/// messages of a channel to the same destination (submissions), or ignores their
/// returns (replies), so either way the answer is right.
fn settle(
    confirmation: Result<Confirmation, lapin::Error>,
    mandatory: bool,
) -> Result<(), PublishError> {
    match confirmation {
        Err(e) => Err(PublishError::Amqp(e)),
        Ok(Confirmation::Ack(None)) => Ok(()),
        Ok(Confirmation::Ack(Some(_))) if !mandatory => Ok(()),
        Ok(Confirmation::Ack(Some(returned))) => {
            Err(PublishError::Returned(returned.reply_text.to_string()))
        }
        Ok(Confirmation::Nack(_)) => Err(PublishError::Nacked),
        Ok(Confirmation::NotRequested) => Err(PublishError::NotConfirming),
    }
}

/// Properties for a persistent JSON message (delivery mode 2: written to disk
/// before the broker confirms it).
pub fn persistent() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}
