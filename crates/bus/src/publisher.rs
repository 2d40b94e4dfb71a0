//! Confirmed publishing over a [`Link`]: the only success is a plain broker ack
//! with no returned message, within a timeout. Everything else is an error the
//! caller can answer honestly (the intake: 503 `unavailable`).

use crate::Link;
use futures_util::future::join_all;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation};
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
    /// The broker nacked the message (it could not store it).
    #[error("broker nacked the message")]
    Nacked,
    /// Unroutable: returned by the broker (`mandatory`), e.g. the queue is missing.
    #[error("message returned by the broker: {0}")]
    Returned(String),
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub payload: &'a [u8],
    pub properties: BasicProperties,
    /// Ask the broker to return the message if no queue takes it. Submissions
    /// set it (an unroutable submission is not "durably queued"); result events
    /// on the topic exchange do not (nobody listening is fine).
    pub mandatory: bool,
}

/// Publishes with confirms, bounded in-flight count and a confirm timeout.
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

    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Publishes one message; `Ok` only for a plain, timely broker ack.
    pub async fn publish(&self, message: Outgoing<'_>) -> Result<(), PublishError> {
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| PublishError::Busy)?;
        let lease = self.link.lease().ok_or(PublishError::NotConnected)?;
        if lease.blocked {
            return Err(PublishError::Blocked);
        }
        let confirm = send(&lease.channel, message);
        let outcome = match tokio::time::timeout(self.confirm_timeout, confirm).await {
            Err(_) => Err(PublishError::Timeout(self.confirm_timeout)),
            Ok(confirmation) => settle(confirmation),
        };
        if matches!(
            outcome,
            Err(PublishError::Amqp(_) | PublishError::Timeout(_))
        ) {
            self.link.report_failure(lease.generation);
        }
        outcome
    }
}

impl Publisher {
    /// Publishes several messages on one channel, all in flight at once, under one
    /// confirm timeout; one result per message, in order. Cheaper per message than
    /// [`publish`](Self::publish) for a batch (one permit request, one channel
    /// lease, one timer).
    pub async fn publish_all(&self, messages: Vec<Outgoing<'_>>) -> Vec<Result<(), PublishError>> {
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
        let confirms = messages
            .into_iter()
            .map(|message| send(&lease.channel, message));
        let timeout = self.confirm_timeout;
        let outcomes: Vec<Result<(), PublishError>> =
            match tokio::time::timeout(timeout, join_all(confirms)).await {
                Err(_) => (0..n)
                    .map(|_| Err(PublishError::Timeout(timeout)))
                    .collect(),
                Ok(confirmations) => confirmations.into_iter().map(settle).collect(),
            };
        if outcomes
            .iter()
            .any(|o| matches!(o, Err(PublishError::Amqp(_) | PublishError::Timeout(_))))
        {
            self.link.report_failure(lease.generation);
        }
        outcomes
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
fn settle(confirmation: Result<Confirmation, lapin::Error>) -> Result<(), PublishError> {
    match confirmation {
        Err(e) => Err(PublishError::Amqp(e)),
        Ok(Confirmation::Ack(None)) => Ok(()),
        Ok(Confirmation::Ack(Some(returned))) => {
            Err(PublishError::Returned(returned.reply_text.to_string()))
        }
        Ok(Confirmation::Nack(_)) => Err(PublishError::Nacked),
        // confirm_select is on for every channel of a Link; treat a channel that
        // somehow lost it as broken.
        Ok(Confirmation::NotRequested) => Err(PublishError::Amqp(lapin::Error::from(
            lapin::ErrorKind::InvalidChannelState(
                lapin::ChannelState::Error,
                "publisher confirms not enabled",
            ),
        ))),
    }
}

/// Properties for a persistent message (delivery mode 2: written to disk before
/// the broker confirms it).
pub fn persistent() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}
