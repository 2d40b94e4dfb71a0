//! # kyc-bus — RabbitMQ for kyc-ingest
//!
//! Owns everything AMQP: the broker topology ([`Topology`]), the supervised
//! connection that reconnects with back-off ([`Link`]), confirmed publishing that
//! only reports success for a plain broker ack within a timeout ([`Publisher`]
//! over a [`Link`], [`ConfirmChannel`] on a connection of one's own), and small
//! helpers for consumers and headers. Every publish of the services and of
//! `kycctl` goes through one of those two.
//!
//! Where a message goes: the intake and `kycctl push` publish submissions to
//! `P.submissions` (routing key `submission.v1`); the quorum queue `P.submissions`
//! feeds the workers; messages over the delivery limit are dead-lettered through
//! `P.dead` into `P.submissions.dead`; workers announce outcomes on the topic
//! exchange `P.events` and, when asked, on a `reply_to` queue.

#![warn(missing_docs)]

mod backoff;
mod connect;
pub mod headers;
mod link;
pub mod metrics;
mod private_queue;
mod publisher;
mod topology;

pub use backoff::backoff;
pub use connect::{
    BusError, addresses, close, close_channel, confirm_channels, connect, open_consumer_channel,
    redacted,
};
pub use lapin;
pub use link::{Link, LinkOptions};
pub use private_queue::private_queue;
pub use publisher::{ConfirmChannel, Outgoing, PublishError, Publisher, persistent};
pub use topology::{
    BindingDeclaration, DEAD_LETTER_MAX_LENGTH, DEAD_LETTER_TTL_MS, DELIVERY_LIMIT,
    DeadLetterBounds, Declarations, Ensured, ExchangeDeclaration, QUORUM_INITIAL_GROUP_SIZE,
    QueueDeclaration, Topology, is_access_refused,
};
