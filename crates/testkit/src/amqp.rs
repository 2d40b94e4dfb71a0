//! Talking to the broker directly, as a downstream consumer or a bulk publisher would.

use futures_util::StreamExt;
use kyc_bus::lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use kyc_bus::lapin::types::FieldTable;
use kyc_bus::lapin::{BasicProperties, Channel, Connection, Consumer};
use kyc_bus::{Topology, headers};
use kyc_core::wire::{BatchedReplyV1, ResultEventV1, SUBMISSION_ROUTING_KEY, SubmissionHeadersV2};
use std::time::Duration;

/// A connection and a confirm-mode channel with the topology declared.
pub async fn channel(topology: &Topology) -> (Connection, Channel) {
    let connection = kyc_bus::connect(&crate::amqp_url(), "kyc-tests")
        .await
        .expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    topology.declare(&channel).await.expect("declare topology");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    (connection, channel)
}

/// Publishes a submission the way `kycctl push` or any AMQP client would, and
/// waits for the broker's ack.
pub async fn publish_submission(
    channel: &Channel,
    topology: &Topology,
    body: &[u8],
    properties: BasicProperties,
) {
    let confirm = channel
        .basic_publish(
            topology.submissions_exchange().into(),
            SUBMISSION_ROUTING_KEY.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties.with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(
        confirm.is_ack() && confirm.take_message().is_none(),
        "broker did not accept the message"
    );
}

/// Message properties carrying an API key.
pub fn with_api_key(api_key: &str) -> BasicProperties {
    BasicProperties::default().with_headers(headers::encode(&SubmissionHeadersV2 {
        api_key: Some(api_key),
        ..SubmissionHeadersV2::default()
    }))
}

/// A private queue receiving messages: result events (bound to the events
/// exchange) or replies (addressed by name).
#[derive(Debug)]
pub struct Tap {
    pub queue: String,
    consumer: Consumer,
    /// Events of a `kyc.result-batch.v1` message not yet handed out by `next`.
    pending: std::collections::VecDeque<ResultEventV1>,
    /// How many `kyc.result-batch.v1` messages `next` has read.
    pub grouped_messages: usize,
    _connection: Connection,
}

impl Tap {
    /// Every result event of the topology.
    pub async fn events(topology: &Topology) -> Tap {
        Tap::open(topology, Some("#")).await
    }

    /// A fresh exclusive queue (for `reply_to`).
    pub async fn queue(topology: &Topology) -> Tap {
        Tap::open(topology, None).await
    }

    /// Declares an exclusive, auto-deleted, server-named queue, binds it to the
    /// events exchange with `binding` if given, and consumes it.
    async fn open(topology: &Topology, binding: Option<&str>) -> Tap {
        let (connection, _) = channel(topology).await;
        let (channel, name, consumer) = kyc_bus::private_queue(&connection)
            .await
            .expect("declare and consume a tap queue");
        if let Some(routing_key) = binding {
            channel
                .queue_bind(
                    name.as_str().into(),
                    topology.events_exchange().into(),
                    routing_key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("bind tap");
        }
        Tap {
            queue: name,
            consumer,
            pending: std::collections::VecDeque::new(),
            grouped_messages: 0,
            _connection: connection,
        }
    }

    /// The next result event and the correlation id of its message, or `None`
    /// after `timeout`. The events of a grouped message (`kyc.result-batch.v1`)
    /// come one by one, without a correlation id. Lifecycle events
    /// (`submission.updated`/`.deleted`, AMQP type `kyc.lifecycle.v1`) share the
    /// exchange and are skipped.
    pub async fn next(&mut self, timeout: Duration) -> Option<(Option<String>, ResultEventV1)> {
        if let Some(event) = self.pending.pop_front() {
            return Some((None, event));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let delivery = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let delivery = tokio::time::timeout(left, self.consumer.next())
                .await
                .ok()??
                .ok()?;
            let kind = delivery.properties.kind().as_ref().map(|k| k.to_string());
            match kind.as_deref() {
                Some("kyc.lifecycle.v1") => continue,
                Some(kyc_core::wire::RESULT_BATCH_TYPE) => {
                    let events = kyc_core::wire::decode_events(kind.as_deref(), &delivery.data)
                        .expect("grouped result events are valid JSON");
                    self.grouped_messages += 1;
                    self.pending.extend(events);
                    if let Some(event) = self.pending.pop_front() {
                        return Some((None, event));
                    }
                }
                _ => break delivery,
            }
        };
        let correlation = delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str().to_owned());
        let event = serde_json::from_slice(&delivery.data).expect("result events are valid JSON");
        Some((correlation, event))
    }

    /// The next message as a reply: its `type` property and the results it carries
    /// (one for a plain result event, several for a batch reply), or `None` after
    /// `timeout`.
    pub async fn next_reply(
        &mut self,
        timeout: Duration,
    ) -> Option<(Option<String>, Vec<BatchedReplyV1>)> {
        let delivery = tokio::time::timeout(timeout, self.consumer.next())
            .await
            .ok()??
            .ok()?;
        let kind = delivery.properties.kind().as_ref().map(|k| k.to_string());
        let correlation = delivery.properties.correlation_id().as_ref();
        let results = kyc_core::wire::decode_reply(
            kind.as_deref(),
            correlation.map(|c| c.as_str()),
            &delivery.data,
        )
        .expect("replies are result events or batches of them");
        Some((kind, results))
    }

    /// Skips messages until one about `submission_id` arrives; its correlation id
    /// and event. Fails the test after `timeout`.
    pub async fn until(
        &mut self,
        submission_id: uuid::Uuid,
        timeout: Duration,
    ) -> (Option<String>, ResultEventV1) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some((correlation, event)) if event.submission_id == submission_id => {
                    return (correlation, event);
                }
                Some(_) => {}
                None => panic!("no message about {submission_id} within {timeout:?}"),
            }
        }
    }

    /// Collects events until `n` distinct submissions are seen (events may repeat
    /// on redelivery), failing after `timeout`.
    pub async fn distinct(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> std::collections::HashMap<uuid::Uuid, ResultEventV1> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = std::collections::HashMap::new();
        while seen.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some((_, event)) => {
                    seen.insert(event.submission_id, event);
                }
                None => panic!(
                    "only {} of {n} result events within {timeout:?}",
                    seen.len()
                ),
            }
        }
        seen
    }
}

/// Messages ready in the submissions queue (a passive declare; the topology must
/// exist).
pub async fn queue_depth(topology: &Topology) -> u32 {
    let (connection, channel) = channel(topology).await;
    let queue = channel
        .queue_declare(
            topology.submissions_queue().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare of the submissions queue");
    let _ = connection.close(200, "bye".into()).await;
    queue.message_count()
}
