//! # kyc-intake — the HTTP front door
//!
//! A request comes in on `POST /v3/submission/migration`; [`routes::submit`]
//! authenticates it (`x-api-key`, via the cached [`Directory`]), bounds its size,
//! opens its envelope and validates it with `kyc-core`, checks project and admin,
//! then publishes the body as received to `P.submissions` and answers 200 only
//! after the broker's confirm. The intake never writes to the database; workers do.
//!
//! [`Intake::build`] binds the listener (port 0 works, for tests) and
//! [`Intake::run`] serves until the shutdown token is cancelled, then drains.

pub mod error;
pub mod openapi;
pub mod rate_limit;
pub mod routes;
pub mod state;
pub mod wait;

use axum::Router;
use axum::routing::{get, post};
use kyc_bus::{Link, LinkOptions, Publisher, Topology};
use kyc_config::Settings;
use kyc_store::{DataKey, Directory, Store};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::ExposeSecret;
use state::{AppState, Shared};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

/// A bound, not yet serving intake.
#[derive(Debug)]
pub struct Intake {
    listener: TcpListener,
    router: Router,
    state: AppState,
    link_stop: CancellationToken,
    drain_timeout: Duration,
}

impl Intake {
    /// Binds `settings.http.addr`, starts the broker link, builds the routes.
    pub async fn build(settings: &Settings, metrics: PrometheusHandle) -> anyhow::Result<Intake> {
        let store = Store::connect_lazy(
            settings.database.url.expose_secret(),
            settings.database.max_connections,
        )?;
        let directory = Directory::new(store, Duration::from_millis(settings.directory.ttl_ms));
        let topology = Topology::new(settings.amqp.prefix.clone());
        let (key_id, key) = settings.crypto.data_key_or_dev();
        let data_key = DataKey::from_base64(key_id, &key)?;
        let link_stop = CancellationToken::new();
        let link = Link::spawn(
            LinkOptions {
                url: settings.amqp.url.expose_secret().to_owned(),
                name: "kyc-intake".to_owned(),
                topology: topology.clone(),
                channels: settings.amqp.publish_channels,
            },
            link_stop.clone(),
        );
        let publisher = Publisher::new(
            link,
            settings.amqp.confirm_timeout(),
            settings.amqp.max_in_flight,
        );
        let waiters = wait::Waiters::spawn(
            settings.amqp.url.expose_secret().to_owned(),
            link_stop.clone(),
        );
        let state = AppState(Arc::new(Shared {
            directory,
            publisher,
            topology,
            body_limit: settings.http.body_limit_bytes,
            metrics,
            draining: CancellationToken::new(),
            waiters,
            rate_limit: rate_limit::ProjectRateLimit::new(settings.http.rate_limit_per_second),
            seal_key: data_key.seal_key().clone(),
        }));
        let listener = TcpListener::bind(settings.http.addr).await?;
        Ok(Intake {
            listener,
            router: router(state.clone()),
            state,
            link_stop,
            drain_timeout: Duration::from_millis(settings.http.drain_timeout_ms),
        })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Waits until the broker link and the reply queue are up, at most `timeout`
    /// each (tests and `kycctl dev` use it to avoid 503s and early 202s right
    /// after start).
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        self.state.publisher.link().wait_ready(timeout).await
            && self.state.waiters.wait_ready(timeout).await
    }

    /// Serves until `shutdown` is cancelled; then stops accepting, lets in-flight
    /// requests finish (bounded by the drain timeout) and closes the broker link.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let draining = self.state.draining.clone();
        let signal = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                draining.cancel();
            }
        };
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(signal);
        let drain_timeout = self.drain_timeout;
        let bounded_drain = async {
            shutdown.cancelled().await;
            tokio::time::sleep(drain_timeout).await;
        };
        let result = tokio::select! {
            result = serve => result.map_err(anyhow::Error::from),
            () = bounded_drain => Err(anyhow::anyhow!("in-flight requests did not finish within {drain_timeout:?}")),
        };
        self.link_stop.cancel();
        tracing::info!("intake stopped");
        result
    }
}

/// Every route, with the middleware stack.
pub fn router(state: AppState) -> Router {
    use tower_http::catch_panic::CatchPanicLayer;
    use tower_http::trace::TraceLayer;
    Router::new()
        .route("/v3/submission/migration", post(routes::submit::submit))
        .route(
            "/v3/submission/migration/{id}",
            get(routes::result::get_result),
        )
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::ApiDoc::openapi()) }),
        )
        .with_state(state)
        // A panic becomes an opaque 500 instead of a dropped connection; the
        // handlers are written not to panic, and the tests say so.
        .layer(CatchPanicLayer::new())
        // Spans carry method and path only: headers hold the API key.
        .layer(TraceLayer::new_for_http())
}
