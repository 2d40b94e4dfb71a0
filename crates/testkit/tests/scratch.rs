//! Scratch resources are only created fresh and only removed by their creator:
//! an existing database or broker prefix is refused and left as it was.
#![allow(clippy::unwrap_used)]

use kyc_bus::Topology;
use kyc_testkit::scratch::{ScratchBroker, ScratchDb, random_tag};
use kyc_testkit::{amqp_url, pg_base_url, require_services};

#[tokio::test]
async fn an_existing_database_is_refused_and_kept() {
    require_services().await;
    let name = format!("kyc_t_{}", random_tag());
    let db = ScratchDb::create(&pg_base_url(), &name).await.unwrap();
    let store = kyc_store::Store::connect_lazy(db.url(), 1).unwrap();
    store.create_project("kept", false).await.unwrap();

    let again = ScratchDb::create(&pg_base_url(), &name).await;
    assert!(again.is_err(), "a second create of {name} must fail");
    let (projects,): (i64,) = sqlx::query_as("SELECT count(*) FROM projects")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(projects, 1, "the existing database is untouched");

    store.pool().close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn an_existing_broker_prefix_is_refused_and_kept() {
    require_services().await;
    let topology = Topology::new(format!("t{}", random_tag()));
    let claimed = ScratchBroker::claim(&amqp_url(), vec![topology.clone()])
        .await
        .unwrap();
    let (connection, _channel) = kyc_testkit::amqp::channel(&topology).await;

    let again = ScratchBroker::claim(&amqp_url(), vec![topology.clone()]).await;
    let error = again
        .expect_err("a declared prefix cannot be claimed")
        .to_string();
    assert!(error.contains(&topology.submissions_queue()), "{error}");
    assert_eq!(
        kyc_testkit::amqp::queue_depth(&topology).await,
        0,
        "still there"
    );

    let _ = connection.close(200, "bye".into()).await;
    claimed.delete().await.unwrap();
}

#[test]
fn names_are_plain_identifiers() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = runtime.block_on(ScratchDb::create(&pg_base_url(), "kyc\"; DROP"));
    assert!(refused.is_err());
}
