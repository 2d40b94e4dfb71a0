//! # kyc-intake — the HTTP front door
//!
//! A request comes in on `POST /v3/submission/migration`; [`routes::submit`]
//! authenticates it (`x-api-key`, via the cached [`Directory`]), bounds its size,
//! opens its envelope and validates it with `kyc-core`, checks project and admin,
//! then publishes the validated body, sealed under the transit key
//! (`kyc_core::transit`), to `P.submissions` and answers 200 only after the
//! broker's confirm. The intake never writes to the database; workers do.
//!
//! [`Intake::build`] binds the listener (port 0 works, for tests) and
//! [`Intake::run`] serves until the shutdown token is cancelled, then drains.
#![warn(missing_docs)]

pub mod edge;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod relay;
pub mod routes;
pub mod state;
pub mod trace;
pub mod wait;

use axum::Router;
use axum::routing::{get, post};
use edge::EdgeLimits;
use kyc_bus::{Link, LinkOptions, Publisher, Topology};
use kyc_config::{SecretsError, Settings};
use kyc_core::transit::TransitKeyring;
use kyc_store::{Directory, DirectoryLimits, Store};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::{ExposeSecret, SecretString};
use state::{AppState, Shared};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

/// Everything an intake needs, taken from [`Settings`] by
/// [`IntakeOptions::from_settings`] (as the worker takes `WorkerOptions`).
#[derive(Debug, Clone)]
pub struct IntakeOptions {
    /// The public listener (port 0 picks a free port).
    pub addr: SocketAddr,
    /// Where `/metrics` and `/readyz` are served apart; `None`: on `addr`.
    pub operator_addr: Option<SocketAddr>,
    /// The database holding projects and admins (`KYC__DATABASE__URL`).
    pub database_url: SecretString,
    /// Pool size (`KYC__DATABASE__MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// The broker (`KYC__AMQP__URL`).
    pub amqp_url: SecretString,
    /// Exchange and queue names under `KYC__AMQP__PREFIX`, with dead-letter bounds.
    pub topology: Topology,
    /// Broker channels used for publishing (`KYC__AMQP__PUBLISH_CHANNELS`).
    pub publish_channels: usize,
    /// How long a publish waits for the broker's confirm before 503
    /// (`KYC__AMQP__CONFIRM_TIMEOUT_MS`).
    pub confirm_timeout: Duration,
    /// Publishes awaiting confirm at most (`KYC__AMQP__MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
    /// The largest request body; larger is 413 `payload_too_large`
    /// (`KYC__HTTP__BODY_LIMIT_BYTES`).
    pub body_limit: usize,
    /// The batch endpoint's body and record limits
    /// (`KYC__HTTP__BATCH_BODY_LIMIT_BYTES`, `KYC__HTTP__BATCH_MAX_RECORDS`).
    pub batch: routes::batch::BatchLimits,
    /// Per-project requests per second, 0 for none (`KYC__HTTP__RATE_LIMIT_PER_SECOND`).
    pub rate_limit_per_second: u32,
    /// How long in-flight requests may finish after shutdown
    /// (`KYC__HTTP__DRAIN_TIMEOUT_MS`).
    pub drain_timeout: Duration,
    /// Connection-level timeouts and limits (`KYC__HTTP__…`).
    pub edge: EdgeLimits,
    /// Size and lifetime of the project/admin cache (`KYC__DIRECTORY__…`).
    pub directory: DirectoryLimits,
    /// The transit keys; the intake seals every message with the current one.
    pub transit: TransitKeyring,
    /// The data key (id, Base64) and older ones: the lifecycle endpoints open
    /// and seal the sensitive columns (`docs/api.md` §15).
    pub data_keys: ((String, SecretString), Vec<(String, SecretString)>),
    /// The image store and the image limits (`KYC__IMAGES__…`).
    pub images: kyc_config::settings::Images,
}

impl IntakeOptions {
    /// The options a [`Settings`] describes; refuses settings without a data key
    /// and a transit key unless `dev` is set ([`Settings::secrets`]).
    pub fn from_settings(settings: &Settings) -> Result<IntakeOptions, SecretsError> {
        // The intake stores nothing, but refuses to run where a worker would
        // refuse: a deployment is either keyed or declared a development one.
        let secrets = settings.secrets()?;
        let http = &settings.http;
        Ok(IntakeOptions {
            addr: http.addr,
            operator_addr: http.operator_addr,
            database_url: settings.database.url.clone(),
            database_max_connections: settings.database.max_connections,
            amqp_url: settings.amqp.url.clone(),
            topology: Topology::new(settings.amqp.prefix.clone()).with_dead_letter_bounds(
                kyc_bus::DeadLetterBounds {
                    max_length: settings.amqp.dead_letter_max_length,
                    ttl_ms: settings.amqp.dead_letter_ttl_ms,
                },
            ),
            publish_channels: settings.amqp.publish_channels,
            confirm_timeout: settings.amqp.confirm_timeout(),
            max_in_flight: settings.amqp.max_in_flight,
            body_limit: http.body_limit_bytes,
            batch: routes::batch::BatchLimits {
                body_limit: http.batch_body_limit_bytes,
                max_records: http.batch_max_records,
                compress: http.compress_batches,
            },
            rate_limit_per_second: http.rate_limit_per_second,
            drain_timeout: Duration::from_millis(http.drain_timeout_ms),
            edge: EdgeLimits {
                header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
                body_timeout: Duration::from_millis(http.body_timeout_ms),
                request_timeout: Duration::from_millis(http.request_timeout_ms),
                max_connections: http.max_connections,
                per_address_per_second: http.per_address_rate_limit,
            },
            directory: DirectoryLimits {
                ttl: Duration::from_millis(settings.directory.ttl_ms),
                max_entries: settings.directory.max_entries,
                max_unknown_entries: settings.directory.max_unknown_entries,
            },
            transit: secrets.transit,
            data_keys: (secrets.data_key, secrets.older_data_keys),
            images: settings.images.clone(),
        })
    }
}

/// A bound, not yet serving intake.
#[derive(Debug)]
pub struct Intake {
    listener: TcpListener,
    operator: Option<TcpListener>,
    routes: Router<AppState>,
    state: AppState,
    link_stop: CancellationToken,
    drain_timeout: Duration,
    edge: EdgeLimits,
}

impl Intake {
    /// [`Intake::build`] with the options `settings` describe.
    pub async fn from_settings(
        settings: &Settings,
        metrics: PrometheusHandle,
    ) -> anyhow::Result<Intake> {
        Intake::build(IntakeOptions::from_settings(settings)?, metrics).await
    }

    /// Binds the listeners, starts the broker link, builds the routes.
    pub async fn build(
        options: IntakeOptions,
        metrics: PrometheusHandle,
    ) -> anyhow::Result<Intake> {
        metrics::describe();
        // The S3 image store's TLS needs the process's one provider (ring).
        kyc_images::install_crypto_provider();
        let store = Store::connect_lazy(
            options.database_url.expose_secret(),
            options.database_max_connections,
        )?;
        let data_key = kyc_store::DataKey::keyring(&options.data_keys.0, &options.data_keys.1)?;
        let images = routes::images::Images {
            store: kyc_images::ImageStore::from_settings(&options.images)?,
            keys: kyc_images::ImageKeys::keyring(&options.data_keys.0, &options.data_keys.1)?,
            max_image_bytes: options.images.max_image_bytes,
            max_request_bytes: options.images.max_request_bytes,
        };
        let directory = Directory::with_limits(store, options.directory);
        let link_stop = CancellationToken::new();
        let link = Link::spawn(
            LinkOptions {
                url: options.amqp_url.expose_secret().to_owned(),
                name: "kyc-intake".to_owned(),
                topology: options.topology.clone(),
                channels: options.publish_channels,
            },
            link_stop.clone(),
        );
        let publisher = Publisher::new(link, options.confirm_timeout, options.max_in_flight);
        let waiters = wait::Waiters::spawn(
            options.amqp_url.expose_secret().to_owned(),
            link_stop.clone(),
        );
        let state = AppState(Arc::new(Shared {
            directory,
            publisher,
            topology: options.topology.clone(),
            body_limit: options.body_limit,
            batch: options.batch,
            body_timeout: options.edge.body_timeout,
            metrics,
            draining: CancellationToken::new(),
            waiters,
            rate_limit: rate_limit::ProjectRateLimit::new(options.rate_limit_per_second),
            transit: options.transit.clone(),
            data_key,
            outbox: Arc::new(tokio::sync::Notify::new()),
            images,
        }));
        relay::spawn(state.clone(), link_stop.clone());
        let listener = TcpListener::bind(options.addr).await?;
        let operator = match options.operator_addr {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let routes = match operator {
            Some(_) => api_routes(),
            None => api_routes().merge(operator_routes()),
        };
        Ok(Intake {
            listener,
            operator,
            routes,
            state,
            link_stop,
            drain_timeout: options.drain_timeout,
            edge: options.edge,
        })
    }

    /// Adds routes to the public listener, under the same middleware (tests use
    /// it for a route that panics).
    pub fn merge_routes(mut self, routes: Router<AppState>) -> Intake {
        self.routes = self.routes.merge(routes);
        self
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The operator listener's address, when it is apart.
    pub fn operator_addr(&self) -> Option<SocketAddr> {
        self.operator.as_ref().and_then(|l| l.local_addr().ok())
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
        let Intake {
            listener,
            operator,
            routes,
            state,
            link_stop,
            drain_timeout,
            edge,
        } = self;
        let draining = state.draining.clone();
        let stop = CancellationToken::new();
        {
            let (shutdown, stop) = (shutdown.clone(), stop.clone());
            tokio::spawn(async move {
                shutdown.cancelled().await;
                draining.cancel();
                stop.cancel();
            });
        }
        let app = edge::layers(routes.with_state(state.clone()), &edge);
        let operator_served = async {
            match operator {
                Some(listener) => {
                    let app = edge::layers(operator_routes().with_state(state.clone()), &edge);
                    edge::serve(listener, app, &edge, stop.clone(), drain_timeout).await
                }
                None => Ok(()),
            }
        };
        let (result, operator_result) = tokio::join!(
            edge::serve(listener, app, &edge, stop.clone(), drain_timeout),
            operator_served
        );
        link_stop.cancel();
        tracing::info!("intake stopped");
        result.and(operator_result)
    }
}

/// The API: submissions, results, liveness and the OpenAPI document.
fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/v3/submission/migration", post(routes::submit::submit))
        .route(
            "/v3/submission/migration/batch",
            post(routes::batch::submit_batch),
        )
        .route(
            "/v3/submission/migration/{id}",
            get(routes::result::get_result),
        )
        .route(
            "/v3/submission/image",
            axum::routing::put(routes::images::put_image),
        )
        .route(
            "/v3/submission/migration/{id}/images/{kind}",
            get(routes::images::get_image),
        )
        .route(
            "/v3/submission",
            get(routes::list::list)
                .patch(routes::correct::correct)
                .delete(routes::erase::erase),
        )
        .route(
            "/v3/submission/partial",
            axum::routing::delete(routes::erase::erase_partial),
        )
        .route("/healthz", get(routes::health::healthz))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::ApiDoc::openapi()) }),
        )
}

/// What operators scrape and probe.
fn operator_routes() -> Router<AppState> {
    Router::new()
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
}
