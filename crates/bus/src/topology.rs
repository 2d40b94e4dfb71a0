//! Broker topology, declared idempotently by every process at start.
//!
//! The same declarations are listed in `deploy/rabbitmq/definitions.json`; the
//! arguments must match exactly, or RabbitMQ answers `PRECONDITION_FAILED`.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

/// Deliveries of one message before it is dead-lettered. RabbitMQ 3.10 has no
/// default (a message could loop forever); 4.x defaults to 20, and so do we.
/// Lower limits dead-letter healthy messages: a worker holds up to its prefetch
/// of deliveries unacknowledged, and each crash of a worker counts one delivery
/// against every one of them (seen with 5 under repeated SIGKILLs). A poison
/// message costs little per delivery (the worker rejects it after one failed
/// single-row insert), so 20 of them are cheap.
pub const DELIVERY_LIMIT: i64 = 20;

/// The names of every exchange and queue, derived from one prefix so that tests
/// (and several environments) can share a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// The topology whose every name starts with `prefix` (e.g. `kyc`).
    pub fn new(prefix: impl Into<String>) -> Topology {
        Topology {
            prefix: prefix.into(),
        }
    }

    /// The prefix every name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Direct exchange the submissions are published to.
    pub fn submissions_exchange(&self) -> String {
        format!("{}.submissions", self.prefix)
    }

    /// Quorum queue the workers consume.
    pub fn submissions_queue(&self) -> String {
        format!("{}.submissions", self.prefix)
    }

    /// Topic exchange of result events.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Fanout exchange that receives dead-lettered submissions.
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Quorum queue holding dead-lettered submissions for inspection and replay.
    pub fn dead_queue(&self) -> String {
        format!("{}.submissions.dead", self.prefix)
    }

    /// Every exchange, queue and binding of this topology, as data: what
    /// [`Topology::declare`] declares, and what `deploy/rabbitmq/definitions.json`
    /// must list for the prefix `kyc` (a test compares the two).
    pub fn declarations(&self) -> Declarations {
        Declarations {
            exchanges: vec![
                ExchangeDeclaration {
                    name: self.submissions_exchange(),
                    kind: ExchangeKind::Direct,
                },
                ExchangeDeclaration {
                    name: self.events_exchange(),
                    kind: ExchangeKind::Topic,
                },
                // Fanout: dead-lettered messages keep their original routing key,
                // and every one of them belongs in the dead queue.
                ExchangeDeclaration {
                    name: self.dead_exchange(),
                    kind: ExchangeKind::Fanout,
                },
            ],
            queues: vec![
                QueueDeclaration {
                    name: self.submissions_queue(),
                    arguments: self.submissions_queue_arguments(),
                },
                QueueDeclaration {
                    name: self.dead_queue(),
                    arguments: quorum_arguments(),
                },
            ],
            bindings: vec![
                BindingDeclaration {
                    exchange: self.submissions_exchange(),
                    queue: self.submissions_queue(),
                    routing_key: kyc_core::wire::SUBMISSION_ROUTING_KEY.to_owned(),
                },
                BindingDeclaration {
                    exchange: self.dead_exchange(),
                    queue: self.dead_queue(),
                    routing_key: String::new(),
                },
            ],
        }
    }

    /// Declares every exchange, queue and binding of [`Topology::declarations`].
    /// Safe to call any number of times from any number of processes.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let Declarations {
            exchanges,
            queues,
            bindings,
        } = self.declarations();
        // Durable: the topology must outlive a broker restart, or a confirmed
        // message could be routed nowhere after one.
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        for exchange in exchanges {
            channel
                .exchange_declare(
                    exchange.name.into(),
                    exchange.kind,
                    durable,
                    FieldTable::default(),
                )
                .await?;
        }
        let queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        for declaration in queues {
            channel
                .queue_declare(declaration.name.into(), queue, declaration.arguments)
                .await?;
        }
        for binding in bindings {
            channel
                .queue_bind(
                    binding.queue.into(),
                    binding.exchange.into(),
                    binding.routing_key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// The submissions queue's arguments, each with its reason.
    pub fn submissions_queue_arguments(&self) -> FieldTable {
        let mut args = quorum_arguments();
        // Bounded redelivery: a message that keeps failing (or crashing its worker)
        // is dead-lettered instead of blocking the queue forever.
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from(self.dead_exchange())),
        );
        // At-least-once dead-lettering: the message leaves this queue only once
        // the dead queue has confirmed it, so a poison message is never lost in
        // transit. It requires the reject-publish overflow behaviour.
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString(LongString::from("at-least-once")),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString(LongString::from("reject-publish")),
        );
        args
    }
}

/// The exchanges, queues and bindings of a topology. Every exchange and queue is
/// durable and not auto-deleted; bindings have no arguments.
#[derive(Debug, Clone)]
pub struct Declarations {
    /// Declared first.
    pub exchanges: Vec<ExchangeDeclaration>,
    /// Declared after the exchanges.
    pub queues: Vec<QueueDeclaration>,
    /// Declared last.
    pub bindings: Vec<BindingDeclaration>,
}

/// A durable exchange.
#[derive(Debug, Clone)]
pub struct ExchangeDeclaration {
    /// The exchange's name.
    pub name: String,
    /// Direct, topic or fanout.
    pub kind: ExchangeKind,
}

/// A durable queue and its arguments (queue type, limits, dead-lettering).
#[derive(Debug, Clone)]
pub struct QueueDeclaration {
    /// The queue's name.
    pub name: String,
    /// `x-…` arguments, exactly as declared.
    pub arguments: FieldTable,
}

/// A queue bound to an exchange with a routing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingDeclaration {
    /// The exchange bound from.
    pub exchange: String,
    /// The queue bound to.
    pub queue: String,
    /// The binding's routing key (empty for a fanout exchange).
    pub routing_key: String,
}

/// Quorum queues: replicated, durable, with poison-message handling; classic
/// queues offer neither delivery limits nor safe dead-lettering.
fn quorum_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}
