//! # kyc-cli — the library behind `kycctl`
//!
//! The parts of `kycctl` other code calls too: [`push`] (bulk migrations straight
//! to RabbitMQ, used by the end-to-end tests and the benchmarks) and [`dlq`]
//! (dead-letter inspection and replay). The binary in
//! `main.rs` wires every subcommand.

pub mod dlq;
pub mod push;
