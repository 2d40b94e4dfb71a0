//! CEILING: the bare intake. An axum handler that parses the JSON body
//! (`serde_json::Value`), publishes the raw bytes with a publisher confirm
//! (persistent, mandatory) to a quorum queue of the same kind as
//! `P.submissions`, and answers 200 after the ack — nothing else: no
//! authentication, validation, headers, ids, timeouts, metrics or tracing.
//! Deliberately minimal: it is what the HTTP server and the broker cost.
//!
//! Publishes are spread round-robin over as many confirm channels as our intake
//! uses (`amqp.publish_channels`), so the channel count is not a difference.

use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;
use kyc_bus::lapin::options::BasicPublishOptions;
use kyc_bus::lapin::{Channel, Confirmation, Connection};
use kyc_bus::{Topology, persistent};
use kyc_core::wire::SUBMISSION_ROUTING_KEY;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct BareIntake {
    pub addr: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    connection: Connection,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Confirm channels, used round-robin.
    channels: Vec<Channel>,
    next: AtomicUsize,
    exchange: String,
    /// Send a transit version 1 message's properties too
    /// ([`crate::raw_publish::our_properties`]).
    ours_properties: bool,
}

impl BareIntake {
    /// Connects, opens `channels` confirm channels and serves on a free port of
    /// 127.0.0.1 until [`stop`](Self::stop) or `parent` is cancelled.
    pub async fn start(
        amqp_url: &str,
        topology: &Topology,
        channels: usize,
        ours_properties: bool,
        parent: &CancellationToken,
    ) -> anyhow::Result<BareIntake> {
        let connection = kyc_bus::connect(amqp_url, "bench-bare-intake").await?;
        let opened = kyc_bus::confirm_channels(&connection, channels).await?;
        let shared = Arc::new(Shared {
            channels: opened,
            next: AtomicUsize::new(0),
            exchange: topology.submissions_exchange(),
            ours_properties,
        });
        let app = axum::Router::new()
            .route("/v3/submission/migration", axum::routing::post(submit))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = parent.child_token();
        let server = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        );
        Ok(BareIntake {
            addr,
            stop,
            server,
            connection,
            shared,
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.server.await??;
        for channel in &self.shared.channels {
            kyc_bus::close_channel(channel, "bye").await;
        }
        kyc_bus::close(&self.connection, "bye").await;
        Ok(())
    }
}

async fn submit(State(shared): State<Arc<Shared>>, body: Bytes) -> (StatusCode, &'static str) {
    if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return (StatusCode::BAD_REQUEST, "{}");
    }
    let i = shared.next.fetch_add(1, Ordering::Relaxed) % shared.channels.len();
    let confirm = async {
        shared.channels[i]
            .basic_publish(
                shared.exchange.as_str().into(),
                SUBMISSION_ROUTING_KEY.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &body,
                if shared.ours_properties {
                    crate::raw_publish::our_properties()
                } else {
                    persistent()
                },
            )
            .await?
            .await
    };
    match confirm.await {
        Ok(Confirmation::Ack(None)) => (StatusCode::OK, r#"{"message":"success"}"#),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "{}"),
    }
}
