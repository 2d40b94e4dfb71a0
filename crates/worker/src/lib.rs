//! # kyc-worker — from the submissions queue to PostgreSQL and result events
//!
//! The loop (`docs/architecture.md`, "Worker loop"):
//!
//! 1. [`batch`]: collect up to `batch_size` deliveries, or what arrived within
//!    `batch_linger` after the first;
//! 2. [`decide`]: for each, authenticate `x-api-key`, open the envelope, validate
//!    with `kyc-core`, check project and admin — an [`Outcome`](kyc_store::submissions::Outcome);
//! 3. store the batch in one transaction (`kyc-store`, set-based insert; an
//!    existing row is kept, except that an accepted outcome replaces a
//!    `processing_error`);
//! 4. [`dead_letter`]: move the messages refused `forbidden` (no valid key) to
//!    the dead queue with their reason, confirmed; then [`announce`]: publish
//!    one confirmed result event per submission (and a reply where `reply_to`
//!    asks for one);
//! 5. ack — last, so a crash anywhere before leaves the messages on the queue.
//!    A message that cannot be stored is rejected with requeue; on the last
//!    delivery the queue's limit allows it is stored and announced as
//!    `processing_error` instead and rejected without requeue (dead-lettered).
//!
//! Transient failures (database or broker away) retry the batch with back-off and
//! acknowledge nothing meanwhile.
//!
//! Where each part lives: `session` (connecting, consuming, reconnecting with
//! back-off), `handle` (one batch, steps 2–5, and its retries), `fallback`
//! (storing a batch, row by row when the batch insert is refused), `worker` (the
//! [`Worker`] and its options).
#![warn(missing_docs)]

pub mod announce;
pub mod batch;
mod bounds;
pub mod dead_letter;
pub mod decide;
mod fallback;
mod handle;
mod images;
pub mod metrics;
mod records;
mod session;
pub mod trace;
mod worker;

pub use worker::{Worker, WorkerOptions};
