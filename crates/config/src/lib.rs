//! # kyc-config — what every kyc-ingest process starts with
//!
//! Typed [`Settings`] from layered configuration (defaults → `KYC_CONFIG` file →
//! `KYC__SECTION__KEY` environment), logging set up once ([`telemetry`]), and the
//! shutdown signal every `main` hands down as a cancellation token ([`shutdown`]).
//! Kept apart from `kyc-core`, which must stay free of I/O.

#![warn(missing_docs)]

pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use settings::{Secrets, SecretsError, Settings};
