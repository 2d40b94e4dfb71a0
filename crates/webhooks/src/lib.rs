//! # kyc-webhooks — result events to each project's endpoints
//!
//! The dispatcher (`kyc-webhooks`, scaled by count) consumes the events exchange
//! through a durable queue of its own (`<prefix>.webhooks`), stores one delivery
//! per (event, endpoint) in PostgreSQL before acknowledging the message, and
//! drives every attempt from that table: signed to the Standard Webhooks
//! specification ([`signature`]), retried on a schedule of about a day, recorded,
//! and never blocked by another endpoint ([`dispatch`]). [`target`] decides which
//! URLs may be called; [`event`] what each event says.

#![warn(missing_docs)]

pub mod dispatch;
pub mod event;
pub mod signature;
pub mod target;

pub use dispatch::{Dispatcher, USER_AGENT};
pub use target::Policy;

/// Installs ring as the process's rustls crypto provider, if none is yet.
///
/// reqwest is built with `rustls-no-provider` (this crate enables it, so every
/// binary linking it has it): the one provider of the workspace is ring, and any
/// process building a `reqwest::Client` must call this first, or the build
/// panics. The dispatcher does; so do the test harness and the benches.
pub fn install_crypto_provider() {
    // An error means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
