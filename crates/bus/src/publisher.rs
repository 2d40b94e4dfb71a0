//! Confirmed publishing over a [`Link`]: the only success is a plain broker ack
//! with no returned message, within a timeout. Everything else is an error the
//! caller can answer honestly (the intake: 503 `unavailable`).

use crate::Link;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation};
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
        let options = BasicPublishOptions {
            mandatory: message.mandatory,
            ..BasicPublishOptions::default()
        };
        let confirm = async {
            lease
                .channel
                .basic_publish(
                    message.exchange.into(),
                    message.routing_key.into(),
                    options,
                    message.payload,
                    message.properties,
                )
                .await?
                .await
        };
        let outcome = match tokio::time::timeout(self.confirm_timeout, confirm).await {
            Err(_) => Err(PublishError::Timeout(self.confirm_timeout)),
            Ok(Err(e)) => Err(PublishError::Amqp(e)),
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(returned)))) => {
                Err(PublishError::Returned(returned.reply_text.to_string()))
            }
            Ok(Ok(Confirmation::Nack(_))) => Err(PublishError::Nacked),
            // confirm_select is on for every channel of a Link; treat a channel that
            // somehow lost it as broken.
            Ok(Ok(Confirmation::NotRequested)) => Err(PublishError::Amqp(lapin::Error::from(
                lapin::ErrorKind::InvalidChannelState(
                    lapin::ChannelState::Error,
                    "publisher confirms not enabled",
                ),
            ))),
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

/// Properties for a persistent message (delivery mode 2: written to disk before
/// the broker confirms it).
pub fn persistent() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}
