//! SIGKILL of the broker's node process under load: on a
//! three-node RabbitMQ cluster the test starts for itself — never the shared
//! broker — the Erlang VM of the node hosting the submissions queue's leader is
//! killed with `kill -9` while a 50,000-record push and HTTP load run, then
//! started again. Every HTTP 200 is stored, the push exits 0 with one result per
//! line, nothing is stored twice (by userid), and the node rejoins with its
//! member of the queue. The scenario is `cluster_failover`'s.

use crate::cluster_failover::{Fault, failover_under_load};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault test: a RabbitMQ cluster of its own under load; run by scripts/test with --ignored --test-threads=1"]
async fn broker_node_sigkill_under_load() {
    failover_under_load(Fault::Kill).await;
}
