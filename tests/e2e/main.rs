//! End-to-end tests: intake + worker against the real RabbitMQ and PostgreSQL.
//! One binary, one module per concern; every test builds its own `TestEnv`.
#![allow(clippy::unwrap_used)]

mod api_keys;
mod back_pressure;
mod batch_http;
mod batch_push;
mod bounds;
mod broker_addresses;
mod broker_users;
mod concurrency;
mod data_keys;
mod dead_letters;
mod direct;
mod edge;
mod encryption;
mod errors;
mod fields;
mod flood;
mod forbidden_dead_letters;
mod happy_path;
mod idempotency;
mod images;
mod isolation;
mod key_rotation;
mod kycctl;
mod lanes;
mod lifecycle_delete;
mod lifecycle_list;
mod lifecycle_patch;
mod lifecycle_races;
mod lifecycle_support;
mod metrics_names;
mod pii;
mod publish_outcomes;
mod push;
mod push_images;
mod push_key;
mod push_progress;
mod rate_limit;
mod restart;
mod startup;
mod trace;
mod transit;
mod transit_claims;
mod wait;
mod webhooks;
