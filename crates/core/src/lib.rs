//! # kyc-core — the submission contract as types
//!
//! Everything the contract (`docs/api.md`) says about a single submission lives
//! here, once, with no I/O: the intake (HTTP), the worker (AMQP consumer) and
//! `kycctl` all call into this crate, so a rule can never drift between them.
//!
//! A submission's journey through this crate:
//!
//! 1. raw request bytes → [`envelope::open`] detects the encrypted `{"body": …}`
//!    form and decrypts it (any failure is `invalid_payload`);
//! 2. the JSON object → [`submission::RawSubmission`] (keys kept in document order);
//! 3. [`submission::RawSubmission::validate`] applies every rule of `docs/api.md` §2 in the
//!    check order of `docs/api.md` §3 and yields a typed [`Submission`] or a [`Rejection`]
//!    carrying one of the stable [`ErrorCode`]s;
//! 4. [`id`] derives the submission id (UUIDv7, or UUIDv5 over project and
//!    idempotency key) and [`wire`] names the AMQP headers, routing keys and the
//!    versioned result event.
//!
//! Project and admin checks need the database and therefore live in the services,
//! but their error codes are here. [`example`] is the contract's example record,
//! the one every test, bench and demo sends.
#![warn(missing_docs)]

pub mod country;
pub mod envelope;
pub mod error;
pub mod example;
mod fields;
pub mod hex;
pub mod id;
pub mod submission;
pub mod trace;
pub mod transit;
pub mod types;
pub mod wire;

pub use error::{ErrorBody, ErrorCode, Rejection};
pub use submission::{RawSubmission, Submission};
