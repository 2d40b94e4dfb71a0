//! Fault tests: workers killed with SIGKILL during a bulk push, the intake
//! killed mid-request, the broker restarted and put under a memory alarm, the
//! database restarted and crashed (`-m immediate`) under load, SIGTERM in the
//! middle of a batch.
//!
//! They stop and restart the shared PostgreSQL and RabbitMQ, so every test is
//! `#[ignore]`d and `scripts/test` runs them one at a time, after everything else:
//! `cargo test -p kyc-tests --test faults -- --ignored --test-threads=1`.
//! The worker-process tests need the binaries: `cargo build --bins` first.
//! Every stopped service is restored by a guard, also when a test fails.
//! The cluster tests (`cluster_failover`, `broker_sigkill`) leave the shared
//! broker alone: they start a three-node RabbitMQ cluster of their own
//! (`support::Cluster`), removed also when they fail.
#![allow(clippy::unwrap_used)]

mod broker_restart;
mod broker_sigkill;
mod cluster_failover;
mod database_crash;
mod database_restart;
mod intake_kill;
mod kill9;
mod memory_alarm;
mod sigterm;
mod support;
mod webhooks_kill9;
