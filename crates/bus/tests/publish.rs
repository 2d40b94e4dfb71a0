//! The confirmed-publish path against a real broker (`KYC_TEST_AMQP`, default
//! the local one): only a plain ack is success; a returned, nacked or
//! unconfirmed message is a typed error. Every test names what it declares with
//! a prefix of its own and deletes it.

use kyc_bus::lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use kyc_bus::lapin::types::{AMQPValue, FieldTable, LongString};
use kyc_bus::lapin::{Channel, Connection, ExchangeKind};
use kyc_bus::{
    ConfirmChannel, Link, LinkOptions, Outgoing, PublishError, Publisher, Topology, persistent,
};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(5);

fn amqp_url() -> String {
    std::env::var("KYC_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A name no other test (or run) uses.
fn unique(what: &str) -> String {
    format!("bus-test-{}.{what}", uuid::Uuid::now_v7().simple())
}

async fn connect() -> Connection {
    kyc_bus::connect(&amqp_url(), "kyc-bus-tests")
        .await
        .expect("the test broker is reachable")
}

fn message<'a>(exchange: &'a str, routing_key: &'a str, mandatory: bool) -> Outgoing<'a> {
    Outgoing {
        exchange,
        routing_key,
        payload: b"{}",
        properties: persistent(),
        mandatory,
    }
}

/// A non-durable queue named `name` with `arguments`.
async fn declare_queue(channel: &Channel, name: &str, arguments: FieldTable) {
    channel
        .queue_declare(name.into(), QueueDeclareOptions::default(), arguments)
        .await
        .expect("declare the test queue");
}

async fn delete_queue(channel: &Channel, name: &str) {
    let _ = channel
        .queue_delete(name.into(), QueueDeleteOptions::default())
        .await;
}

#[tokio::test]
async fn a_routed_message_is_confirmed() {
    let connection = connect().await;
    let channel = ConfirmChannel::open(&connection, TIMEOUT)
        .await
        .expect("a confirm channel");
    let queue = unique("queue");
    declare_queue(channel.channel(), &queue, FieldTable::default()).await;

    // The default exchange routes by queue name.
    let outcome = channel.publish(message("", &queue, true)).await;

    delete_queue(channel.channel(), &queue).await;
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test]
async fn an_unroutable_mandatory_message_is_returned_not_confirmed() {
    let connection = connect().await;
    let channel = ConfirmChannel::open(&connection, TIMEOUT)
        .await
        .expect("a confirm channel");
    let exchange = unique("unbound");
    channel
        .channel()
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare the test exchange");

    let mandatory = channel.publish(message(&exchange, "nowhere", true)).await;
    // Without `mandatory`, nobody listening is fine.
    let optional = channel.publish(message(&exchange, "nowhere", false)).await;

    let _ = channel
        .channel()
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    match mandatory {
        Err(PublishError::Returned(reason)) => assert!(reason.contains("NO_ROUTE"), "{reason}"),
        other => panic!("expected Returned, got {other:?}"),
    }
    assert!(optional.is_ok(), "{optional:?}");
}

#[tokio::test]
async fn a_message_the_queue_refuses_is_nacked() {
    let connection = connect().await;
    let channel = ConfirmChannel::open(&connection, TIMEOUT)
        .await
        .expect("a confirm channel");
    let queue = unique("full");
    // A queue that holds nothing and rejects what does not fit: the broker
    // nacks every publish to it.
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("reject-publish")),
    );
    declare_queue(channel.channel(), &queue, arguments).await;

    let outcome = channel.publish(message("", &queue, true)).await;

    delete_queue(channel.channel(), &queue).await;
    assert!(
        matches!(outcome, Err(PublishError::Nacked)),
        "expected Nacked, got {outcome:?}"
    );
}

#[tokio::test]
async fn no_confirm_within_the_timeout_is_a_timeout() {
    let connection = connect().await;
    // 8 MB take the client and the broker well over the timer's millisecond to
    // move, so no confirm can be back in time.
    let timeout = Duration::from_millis(1);
    let channel = ConfirmChannel::open(&connection, timeout)
        .await
        .expect("a confirm channel");
    let queue = unique("slow");
    declare_queue(channel.channel(), &queue, FieldTable::default()).await;
    let payload = vec![b' '; 8 << 20];

    let outcome = channel
        .publish(Outgoing {
            payload: &payload,
            ..message("", &queue, true)
        })
        .await;

    delete_queue(channel.channel(), &queue).await;
    assert!(
        matches!(outcome, Err(PublishError::Timeout(t)) if t == timeout),
        "expected Timeout, got {outcome:?}"
    );
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_is_a_channel_error() {
    let connection = connect().await;
    let channel = ConfirmChannel::open(&connection, TIMEOUT)
        .await
        .expect("a confirm channel");
    let exchange = unique("missing");

    // The broker closes the channel (404 NOT_FOUND).
    let outcome = channel.publish(message(&exchange, "any", true)).await;

    assert!(
        matches!(outcome, Err(PublishError::Amqp(_))),
        "expected Amqp, got {outcome:?}"
    );
}

#[tokio::test]
async fn many_publishes_in_flight_each_settle_by_the_same_rules() {
    let connection = connect().await;
    let channels = ConfirmChannel::open_many(&connection, 2, TIMEOUT)
        .await
        .expect("confirm channels");
    let queue = unique("window");
    declare_queue(channels[0].channel(), &queue, FieldTable::default()).await;

    // A window of publishes over two channels, all awaiting confirms at once:
    // the first channel's to a queue, the second's to a queue that does not exist.
    let outcomes = futures_util::future::join_all((0..400).map(|i| {
        let routing_key = if i % 2 == 0 { &queue } else { "no-such-queue" };
        channels[i % 2].publish(message("", routing_key, true))
    }))
    .await;

    delete_queue(channels[0].channel(), &queue).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        if i % 2 == 0 {
            assert!(outcome.is_ok(), "{i}: {outcome:?}");
        } else {
            assert!(
                matches!(outcome, Err(PublishError::Returned(_))),
                "{i}: {outcome:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_return_never_fails_a_message_published_without_mandatory() {
    let connection = connect().await;
    let channel = ConfirmChannel::open(&connection, TIMEOUT)
        .await
        .expect("a confirm channel");
    let queue = unique("events");
    declare_queue(channel.channel(), &queue, FieldTable::default()).await;

    // As a worker's batch: events (not mandatory) and replies to a requester
    // that is gone (mandatory, returned), on one channel. A multiple ack may hand
    // a reply's return to an event's confirm; the event still succeeded.
    let outcomes = futures_util::future::join_all((0..400).map(|i| {
        let channel = &channel;
        let queue = &queue;
        async move {
            let mandatory = i % 2 == 1;
            let routing_key = if mandatory { "gone-requester" } else { queue };
            (
                mandatory,
                channel.publish(message("", routing_key, mandatory)).await,
            )
        }
    }))
    .await;

    delete_queue(channel.channel(), &queue).await;
    for (i, (mandatory, outcome)) in outcomes.iter().enumerate() {
        if !mandatory {
            assert!(outcome.is_ok(), "{i}: {outcome:?}");
        }
    }
    assert!(
        outcomes
            .iter()
            .any(|(_, o)| matches!(o, Err(PublishError::Returned(_)))),
        "the unroutable mandatory messages are returned"
    );
}

#[tokio::test]
async fn the_publisher_over_a_link_settles_by_the_same_rules() {
    let topology = Topology::new(unique("topology"));
    let stop = CancellationToken::new();
    let link = Link::spawn(
        LinkOptions {
            url: amqp_url(),
            name: "kyc-bus-tests".to_owned(),
            topology: topology.clone(),
            channels: 2,
        },
        stop.clone(),
    );
    let publisher = Publisher::new(link, TIMEOUT, 16);
    let ready = publisher.link().wait_ready(Duration::from_secs(10)).await;

    let submissions = topology.submissions_exchange();
    let submission = || message(&submissions, kyc_core::wire::SUBMISSION_ROUTING_KEY, true);
    let single = publisher.publish(submission()).await;
    let unroutable = publisher
        .publish(message(&submissions, "not-a-submission", true))
        .await;
    let batch = publisher
        .publish_all(vec![
            submission(),
            // No queue is bound for this key (the events exchange would not do:
            // the webhooks queue takes every event).
            message(&submissions, "not-a-submission", true),
            message(&submissions, "not-a-submission", false),
        ])
        .await;
    let too_many = publisher
        .publish_all((0..17).map(|_| submission()).collect())
        .await;

    stop.cancel();
    delete_topology(&topology).await;
    assert!(ready, "the link came up");
    assert!(single.is_ok(), "{single:?}");
    assert!(
        matches!(unroutable, Err(PublishError::Returned(_))),
        "{unroutable:?}"
    );
    assert!(batch[0].is_ok(), "{:?}", batch[0]);
    assert!(
        matches!(batch[1], Err(PublishError::Returned(_))),
        "{:?}",
        batch[1]
    );
    assert!(batch[2].is_ok(), "{:?}", batch[2]);
    assert!(
        too_many
            .iter()
            .all(|o| matches!(o, Err(PublishError::Busy))),
        "more than max_in_flight at once is Busy: {too_many:?}"
    );
}

async fn delete_topology(topology: &Topology) {
    let connection = connect().await;
    let channel = connection.create_channel().await.expect("a channel");
    for queue in [
        topology.submissions_queue(),
        topology.dead_queue(),
        topology.webhooks_queue(),
    ] {
        delete_queue(&channel, &queue).await;
    }
    for exchange in [
        topology.submissions_exchange(),
        topology.events_exchange(),
        topology.dead_exchange(),
    ] {
        let _ = channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
}
