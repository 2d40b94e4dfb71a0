//! # kyc-cli — the library behind `kycctl`
//!
//! `kycctl` is the operator and migration tool: database, projects, admins and
//! keys, bulk push, dead letters, dev mode (benchmarks are `kyc-bench`). The
//! parts of it other code calls too: [`push`] (bulk migrations straight
//! to RabbitMQ, used by the end-to-end tests and the benchmarks) and [`dlq`]
//! (dead-letter inspection and replay), [`status`] (the operator's screen),
//! [`submission`] (erasure requests) and [`webhook`] (webhook endpoints,
//! deliveries, replays). The binary in
//! `main.rs` wires every subcommand.

pub mod dlq;
pub mod images;
pub mod push;
pub mod status;
pub mod submission;
pub mod webhook;
