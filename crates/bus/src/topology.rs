//! Broker topology, declared idempotently by every process at start.
//!
//! The same declarations are listed in `deploy/rabbitmq/definitions.json`; the
//! arguments must match exactly, or RabbitMQ answers `PRECONDITION_FAILED`.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ExchangeKind};

/// Deliveries of one message before it is dead-lettered. RabbitMQ 3.10 has no
/// default (a message could loop forever); 4.x defaults to 20, and so do we.
/// Lower limits dead-letter healthy messages: a worker holds up to its prefetch
/// of deliveries unacknowledged, and each crash of a worker counts one delivery
/// against every one of them (seen with 5 under repeated SIGKILLs). A poison
/// message costs little per delivery (the worker rejects it after one failed
/// single-row insert), so 20 of them are cheap.
pub const DELIVERY_LIMIT: i64 = 20;

/// Members of each quorum queue when it is created (`x-quorum-initial-group-size`):
/// three, so that losing any one node of a cluster of three or more keeps a
/// majority (two of three) and the queue available. RabbitMQ places a queue on
/// all nodes when the cluster has fewer (3.10 and later; checked on one node,
/// where the queue gets its single member), so a single broker works unchanged.
/// A constant, not the cluster's size at declaration time: the argument is part
/// of the queue's equivalence check, so every process must declare the same
/// value whatever it sees, or RabbitMQ refuses it with `PRECONDITION_FAILED`. For
/// the same reason a queue created by a version that did not declare it must be
/// drained and deleted before upgrading (docs/scaling.md).
pub const QUORUM_INITIAL_GROUP_SIZE: i64 = 3;

/// Default bound on the number of dead letters kept (`x-max-length`).
pub const DEAD_LETTER_MAX_LENGTH: u32 = 100_000;
/// Default bound on a dead letter's age (`x-message-ttl`): 14 days.
pub const DEAD_LETTER_TTL_MS: u64 = 14 * 24 * 3600 * 1000;

/// How many dead letters the dead queue keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterBounds {
    /// At most this many messages; beyond it the oldest is dropped.
    pub max_length: u32,
    /// A message older than this is dropped.
    pub ttl_ms: u64,
}

impl Default for DeadLetterBounds {
    fn default() -> Self {
        DeadLetterBounds {
            max_length: DEAD_LETTER_MAX_LENGTH,
            ttl_ms: DEAD_LETTER_TTL_MS,
        }
    }
}

/// How [`Topology::ensure`] found the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// Declared (created, or already there with the same arguments).
    Declared,
    /// This user may not declare it (`ACCESS_REFUSED`), but every exchange and
    /// queue exists (passive declares, which need no configure permission).
    Present,
}

/// The names of every exchange and queue, derived from one prefix so that tests
/// (and several environments) can share a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    dead_letters: DeadLetterBounds,
}

impl Topology {
    /// The topology whose every name starts with `prefix` (e.g. `kyc`), with the
    /// default dead-letter bounds.
    pub fn new(prefix: impl Into<String>) -> Topology {
        Topology {
            prefix: prefix.into(),
            dead_letters: DeadLetterBounds::default(),
        }
    }

    /// The same names with other dead-letter bounds. Every process declaring the
    /// topology must use the same bounds, or the broker refuses the
    /// re-declaration with `PRECONDITION_FAILED`.
    pub fn with_dead_letter_bounds(mut self, bounds: DeadLetterBounds) -> Topology {
        self.dead_letters = bounds;
        self
    }

    /// The dead queue's bounds.
    pub fn dead_letter_bounds(&self) -> DeadLetterBounds {
        self.dead_letters
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

    /// Quorum queue of the webhook dispatcher (`kyc-webhooks`): every event of
    /// the events exchange, whatever its kind (the dispatcher routes by type).
    pub fn webhooks_queue(&self) -> String {
        format!("{}.webhooks", self.prefix)
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
                    name: self.bulk_queue(),
                    arguments: self.submissions_queue_arguments(),
                },
                QueueDeclaration {
                    name: self.images_queue(),
                    arguments: self.submissions_queue_arguments(),
                },
                QueueDeclaration {
                    name: self.dead_queue(),
                    arguments: self.dead_queue_arguments(),
                },
                // Unbounded and without dead-lettering: an event is gone only
                // once a dispatcher has written its deliveries to PostgreSQL.
                QueueDeclaration {
                    name: self.webhooks_queue(),
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
                    exchange: self.submissions_exchange(),
                    queue: self.bulk_queue(),
                    routing_key: kyc_core::wire::SUBMISSION_BATCH_ROUTING_KEY.to_owned(),
                },
                BindingDeclaration {
                    exchange: self.submissions_exchange(),
                    queue: self.images_queue(),
                    routing_key: kyc_core::wire::IMAGE_ROUTING_KEY.to_owned(),
                },
                BindingDeclaration {
                    exchange: self.dead_exchange(),
                    queue: self.dead_queue(),
                    routing_key: String::new(),
                },
                BindingDeclaration {
                    exchange: self.events_exchange(),
                    queue: self.webhooks_queue(),
                    routing_key: "#".to_owned(),
                },
            ],
        }
    }

    /// The bulk lane: batch messages (`kyc_core::wire::SUBMISSION_BATCH_ROUTING_KEY`)
    /// queue here, apart from single-record submissions, so that a migration's
    /// backlog never stands in front of an ordinary client's submission. Same
    /// arguments as [`Topology::submissions_queue`].
    pub fn bulk_queue(&self) -> String {
        format!("{}.submissions.bulk", self.prefix)
    }

    /// Image references (`kyc_core::wire::IMAGE_ROUTING_KEY`): the claim checks
    /// of uploaded images, which the workers record. Same arguments as
    /// [`Topology::submissions_queue`] (delivery limit, dead-lettering).
    pub fn images_queue(&self) -> String {
        format!("{}.images", self.prefix)
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

    /// Declares the topology on a channel of its own, like [`Topology::declare`];
    /// a user without configure permission on these names (the intake, a
    /// migrating client's publisher user, an operator) instead checks with
    /// passive declares that everything exists. `Err` if declaring failed for
    /// another reason, or something is missing.
    pub async fn ensure(&self, connection: &Connection) -> Result<Ensured, lapin::Error> {
        let channel = connection.create_channel().await?;
        match self.declare(&channel).await {
            Ok(()) => {
                crate::close_channel(&channel, "declared").await;
                Ok(Ensured::Declared)
            }
            // The broker closed that channel; check on a fresh one.
            Err(e) if is_access_refused(&e) => {
                self.verify(connection).await?;
                Ok(Ensured::Present)
            }
            Err(e) => Err(e),
        }
    }

    /// Passive declares of every exchange and queue: `Err` (`NOT_FOUND`) if one
    /// is missing. Passive declares need no permission on the names.
    pub async fn verify(&self, connection: &Connection) -> Result<(), lapin::Error> {
        let channel = connection.create_channel().await?;
        let exchange = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        for (name, kind) in [
            (self.submissions_exchange(), ExchangeKind::Direct),
            (self.events_exchange(), ExchangeKind::Topic),
            (self.dead_exchange(), ExchangeKind::Fanout),
        ] {
            channel
                .exchange_declare(name.into(), kind, exchange, FieldTable::default())
                .await?;
        }
        let queue = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        for name in [
            self.submissions_queue(),
            self.bulk_queue(),
            self.images_queue(),
            self.dead_queue(),
            self.webhooks_queue(),
        ] {
            channel
                .queue_declare(name.into(), queue, FieldTable::default())
                .await?;
        }
        crate::close_channel(&channel, "verified").await;
        Ok(())
    }

    /// The dead queue's arguments: bounded in length and age, so that dead
    /// letters (full messages, API key header included) do not pile up forever.
    pub fn dead_queue_arguments(&self) -> FieldTable {
        let mut args = quorum_arguments();
        args.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(i64::from(self.dead_letters.max_length)),
        );
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(i64::try_from(self.dead_letters.ttl_ms).unwrap_or(i64::MAX)),
        );
        // When full, the oldest dead letter goes. Not reject-publish: that would
        // refuse new dead letters, and the submissions queue's at-least-once
        // dead-lettering would then keep poison messages in the submissions queue
        // (and a worker's own dead-lettering would be retried forever). The dead
        // queue has no dead-letter exchange, so what it drops is gone.
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString(LongString::from("drop-head")),
        );
        args
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

/// Whether the broker refused an operation for lack of permission (403).
pub fn is_access_refused(error: &lapin::Error) -> bool {
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(e) if e.get_id() == 403)
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
/// queues offer neither delivery limits nor safe dead-lettering. Created with
/// [`QUORUM_INITIAL_GROUP_SIZE`] members.
fn quorum_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args.insert(
        "x-quorum-initial-group-size".into(),
        AMQPValue::LongLongInt(QUORUM_INITIAL_GROUP_SIZE),
    );
    args
}
