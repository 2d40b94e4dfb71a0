//! # kyc-cli — the library behind `kycctl`
//!
//! The parts of `kycctl` other code calls too: [`push`] (bulk migrations straight
//! to RabbitMQ, used by the end-to-end tests and the benchmarks). The binary in
//! `main.rs` wires every subcommand.

pub mod push;
