//! What the lifecycle tests share: rows stored straight through the store (as a
//! worker stores them), the three endpoints, and a tap on lifecycle events.

use futures_util::StreamExt;
use kyc_bus::Topology;
use kyc_bus::lapin::options::QueueBindOptions;
use kyc_bus::lapin::types::FieldTable;
use kyc_bus::lapin::{Connection, Consumer};
use kyc_store::DataKey;
use kyc_store::lifecycle::LifecycleEvent;
use kyc_store::submissions::Outcome;
use kyc_testkit::http::Reply;
use kyc_testkit::{Api, TestEnv};
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// The tests' data key (the one `TestEnv` configures).
pub fn data_key() -> DataKey {
    DataKey::from_base64("test", &kyc_testkit::TEST_DATA_KEY.to_owned().into()).unwrap()
}

/// A valid outcome of `record` for `project`, received at `at`.
pub fn outcome(project_id: Uuid, record: &Value, at: OffsetDateTime) -> Outcome {
    let raw = kyc_core::submission::RawSubmission::from_slice(&serde_json::to_vec(record).unwrap())
        .unwrap();
    Outcome {
        id: Uuid::now_v7(),
        project_id,
        received_at: at,
        idempotency_key: None,
        result: Ok(raw.validate(kyc_core::submission::today_utc()).unwrap()),
    }
}

/// Stores `outcomes` as a worker would.
pub async fn store(env: &TestEnv, outcomes: &[Outcome]) {
    for chunk in outcomes.chunks(500) {
        env.store.store_batch(chunk, &data_key()).await.unwrap();
    }
}

/// Stores one record of `project` now; its id.
pub async fn store_one(env: &TestEnv, project_id: Uuid, record: &Value) -> Uuid {
    let o = outcome(project_id, record, OffsetDateTime::now_utc());
    store(env, std::slice::from_ref(&o)).await;
    o.id
}

/// `GET /v3/submission?{query}`.
pub async fn list(api: &Api, key: &str, query: &str) -> Reply {
    api.get(&format!("/v3/submission?{query}"), Some(key)).await
}

/// `PATCH /v3/submission` with `body`.
pub async fn patch(api: &Api, key: &str, body: &Value) -> Reply {
    patch_raw(api, key, serde_json::to_vec(body).unwrap()).await
}

/// `PATCH /v3/submission` with raw bytes.
pub async fn patch_raw(api: &Api, key: &str, body: Vec<u8>) -> Reply {
    api.send(Method::PATCH, "/v3/submission", Some(key), Some(body))
        .await
}

/// `DELETE /v3/submission?{query}`.
pub async fn delete(api: &Api, key: &str, query: &str) -> Reply {
    api.send(
        Method::DELETE,
        &format!("/v3/submission?{query}"),
        Some(key),
        None,
    )
    .await
}

/// `DELETE /v3/submission/partial?{query}`.
pub async fn delete_partial(api: &Api, key: &str, query: &str) -> Reply {
    api.send(
        Method::DELETE,
        &format!("/v3/submission/partial?{query}"),
        Some(key),
        None,
    )
    .await
}

/// Asserts an error answer: status and code.
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{:?}", reply.body);
    assert_eq!(reply.error_code(), Some(code), "{:?}", reply.body);
}

/// A private queue bound to the lifecycle events of the topology.
pub struct LifecycleTap {
    consumer: Consumer,
    _connection: Connection,
}

impl LifecycleTap {
    pub async fn open(topology: &Topology) -> LifecycleTap {
        let (connection, _) = kyc_testkit::amqp::channel(topology).await;
        let (channel, queue, consumer) = kyc_bus::private_queue(&connection).await.unwrap();
        for binding in ["submission.updated.#", "submission.deleted.#"] {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    topology.events_exchange().into(),
                    binding.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
        LifecycleTap {
            consumer,
            _connection: connection,
        }
    }

    /// The next lifecycle event; fails the test after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> LifecycleEvent {
        let delivery = tokio::time::timeout(timeout, self.consumer.next())
            .await
            .expect("a lifecycle event in time")
            .expect("the consumer is open")
            .unwrap();
        serde_json::from_slice(&delivery.data).unwrap()
    }
}
