//! `?wait=<seconds>` (`docs/api.md` §5) without a database poll per request.
//!
//! Each intake process owns one private reply queue. A request that wants to
//! wait registers its submission id here *before* publishing, publishes with
//! `reply_to` = that queue, `correlation_id` = the submission id and
//! `x-reply-mode: batch`, and the worker sends the result events of its batch
//! there, in one message, after the batch is committed. One consumer
//! task routes each reply to the requests waiting for that id.
//!
//! The queue is exclusive and auto-deleted: it lives exactly as long as the
//! connection that declared it. After a reconnect it has a new name, so a reply
//! addressed to the old one is returned to the worker (mandatory) and dropped;
//! the waiting request then answers 202, which the contract allows.

use futures_util::StreamExt;
use kyc_core::wire::ResultEventV1;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Requests waiting for results, and the reply queue they are told to use.
#[derive(Debug, Clone)]
pub struct Waiters {
    pending: Arc<Mutex<HashMap<Uuid, Vec<oneshot::Sender<ResultEventV1>>>>>,
    queue: watch::Receiver<Option<String>>,
}

/// A registered wait; unregisters itself when dropped.
#[derive(Debug)]
pub struct Wait {
    id: Uuid,
    receiver: oneshot::Receiver<ResultEventV1>,
    pending: Arc<Mutex<HashMap<Uuid, Vec<oneshot::Sender<ResultEventV1>>>>>,
}

impl Wait {
    /// The result event, or `None` if `timeout` passes first.
    pub async fn result(mut self, timeout: Duration) -> Option<ResultEventV1> {
        tokio::time::timeout(timeout, &mut self.receiver)
            .await
            .ok()?
            .ok()
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(senders) = pending.get_mut(&self.id) {
            senders.retain(|s| !s.is_closed());
            if senders.is_empty() {
                pending.remove(&self.id);
            }
        }
    }
}

impl Waiters {
    /// Starts the reply consumer; it runs until `shutdown` is cancelled.
    pub fn spawn(amqp_url: String, shutdown: CancellationToken) -> Waiters {
        let (tx, rx) = watch::channel(None);
        let waiters = Waiters {
            pending: Arc::default(),
            queue: rx,
        };
        tokio::spawn(consume_replies(
            amqp_url,
            tx,
            waiters.pending.clone(),
            shutdown,
        ));
        waiters
    }

    /// The reply queue's current name (`None` while disconnected).
    pub fn reply_queue(&self) -> Option<String> {
        self.queue.borrow().clone()
    }

    /// Waits until the reply queue exists, at most `timeout`; `true` if it does.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut queue = self.queue.clone();
        let ready = queue.wait_for(Option::is_some);
        matches!(tokio::time::timeout(timeout, ready).await, Ok(Ok(_)))
    }

    /// Registers interest in `id`'s result.
    pub fn register(&self, id: Uuid) -> Wait {
        let (sender, receiver) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default()
            .push(sender);
        Wait {
            id,
            receiver,
            pending: self.pending.clone(),
        }
    }

    fn deliver(
        pending: &Mutex<HashMap<Uuid, Vec<oneshot::Sender<ResultEventV1>>>>,
        event: ResultEventV1,
    ) {
        let senders = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&event.submission_id);
        for sender in senders.into_iter().flatten() {
            let _ = sender.send(event.clone());
        }
    }
}

async fn consume_replies(
    amqp_url: String,
    queue_name: watch::Sender<Option<String>>,
    pending: Arc<Mutex<HashMap<Uuid, Vec<oneshot::Sender<ResultEventV1>>>>>,
    shutdown: CancellationToken,
) {
    let mut delays = kyc_bus::backoff();
    loop {
        let session = async {
            let connection = kyc_bus::connect(&amqp_url, "kyc-intake-replies").await?;
            // Losing a reply only turns a 200 into a 202.
            let (_channel, queue, mut consumer) = kyc_bus::private_queue(&connection).await?;
            queue_name.send_replace(Some(queue.clone()));
            tracing::info!(%queue, "reply queue ready");
            while let Some(delivery) = consumer.next().await {
                let delivery = delivery?;
                let results = kyc_core::wire::decode_reply(
                    delivery.properties.kind().as_ref().map(|k| k.as_str()),
                    None,
                    &delivery.data,
                );
                match results {
                    Ok(results) => {
                        for reply in results {
                            Waiters::deliver(&pending, reply.event);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a reply that is not a result event")
                    }
                }
            }
            Ok::<(), kyc_bus::BusError>(())
        };
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            outcome = session => outcome,
        };
        queue_name.send_replace(None);
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        match outcome {
            Ok(()) => tracing::warn!(?delay, "reply consumer ended; reconnecting"),
            Err(e) => tracing::warn!(error = %e, ?delay, "reply consumer failed; reconnecting"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}
