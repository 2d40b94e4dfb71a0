//! Webhook receivers for tests and benches: axum servers on loopback that record
//! what they get and answer as told, a verifier of the Standard Webhooks
//! signature written apart from the dispatcher's, and a dispatcher started
//! in-process.

use crate::run::Running;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use kyc_config::Settings;
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How a receiver answers its `n`-th request (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// This status, at once.
    Status(u16),
    /// Never (the request hangs until the client gives up).
    Hang,
    /// This status after this many milliseconds.
    After(u64, u16),
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: String,
    /// `webhook-signature`.
    pub signature: String,
    /// `user-agent`.
    pub user_agent: String,
    /// The body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a webhook body is JSON")
    }
}

type Script = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    script: Script,
    /// Requests being answered now, and the most there ever were at once.
    concurrency: Arc<Mutex<(usize, usize)>>,
}

/// An HTTP receiver on loopback, stopped when dropped.
#[derive(Debug)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    concurrency: Arc<Mutex<(usize, usize)>>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl Receiver {
    /// A receiver on a free loopback port answering as `script` says.
    pub async fn start(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Receiver {
        Receiver::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), script).await
    }

    /// A receiver on `addr` (a port a test reserved) answering as `script` says.
    pub async fn start_on(
        addr: SocketAddr,
        script: impl Fn(usize) -> Answer + Send + Sync + 'static,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind a loopback receiver");
        let addr = listener.local_addr().expect("its address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let concurrency = Arc::new(Mutex::new((0, 0)));
        let shared = Shared {
            received: received.clone(),
            script: Arc::new(script),
            concurrency: concurrency.clone(),
        };
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(shared);
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
        });
        Receiver {
            addr,
            received,
            concurrency,
            stop,
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Everything received so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The most requests it was answering at once.
    pub fn max_concurrent(&self) -> usize {
        self.concurrency.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let n = {
        let mut received = shared.received.lock().unwrap_or_else(|e| e.into_inner());
        received.push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            user_agent: header("user-agent"),
            body,
            at: Instant::now(),
        });
        received.len() - 1
    };
    let _answering = Answering::start(&shared.concurrency);
    let status =
        |status: u16| StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match (shared.script)(n) {
        Answer::Status(code) => status(code),
        Answer::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK
        }
        Answer::After(ms, code) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            status(code)
        }
    }
}

/// One request being answered, counted in and out (also when the client gives
/// up and the handler is dropped).
struct Answering(Arc<Mutex<(usize, usize)>>);

impl Answering {
    fn start(concurrency: &Arc<Mutex<(usize, usize)>>) -> Answering {
        let mut c = concurrency.lock().unwrap_or_else(|e| e.into_inner());
        c.0 += 1;
        c.1 = c.1.max(c.0);
        Answering(concurrency.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0 -= 1;
    }
}

/// Whether one of the `v1,` signatures of `received` is the HMAC-SHA256 of
/// `"{id}.{timestamp}.{body}"` under `secret` (`whsec_` and Base64): the
/// receiver's side of the Standard Webhooks specification, written apart from
/// the dispatcher's signing code.
pub fn verifies(secret: &str, received: &Received) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| BASE64.decode(k).ok())
    else {
        return false;
    };
    let mut signed = Vec::new();
    signed.extend_from_slice(received.id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(received.timestamp.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(&received.body);
    received.signature.split(' ').any(|entry| {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            return false;
        };
        let Ok(signature) = BASE64.decode(encoded) else {
            return false;
        };
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&key) else {
            return false;
        };
        mac.update(&signed);
        mac.verify_slice(&signature).is_ok()
    })
}

/// `settings` for a dispatcher delivering to loopback receivers over plain HTTP,
/// with the retry schedule `schedule` (milliseconds), no jitter and a short poll.
pub fn dispatcher_settings(settings: &Settings, schedule: &str) -> Settings {
    let mut settings = settings.clone();
    let w = &mut settings.webhooks;
    w.allow_http = true;
    w.allow_loopback = true;
    w.retry_schedule = schedule.to_owned();
    w.jitter = 0.0;
    w.poll_interval_ms = 50;
    w.timeout_ms = 2_000;
    settings
}

/// A dispatcher of `settings` in this process.
pub fn start_dispatcher(settings: &Settings) -> Running {
    let stop = CancellationToken::new();
    let dispatcher =
        kyc_webhooks::Dispatcher::from_settings(settings).expect("the dispatcher builds");
    let handle = tokio::spawn(dispatcher.run(stop.clone()));
    Running {
        stop,
        handle,
        addr: None,
    }
}

/// How long a test waits for a delivery at most.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Publishes `events` to `exchange` as a worker does (persistent, routed by
/// their type), all of them in flight at once, and waits for every confirm.
pub async fn publish_events(
    channel: &kyc_bus::lapin::Channel,
    exchange: &str,
    events: &[kyc_core::wire::ResultEventV1],
) -> Result<(), kyc_bus::lapin::Error> {
    let confirms = futures_util::future::join_all(events.iter().map(|event| async move {
        let body = serde_json::to_vec(event).expect("an event serializes");
        channel
            .basic_publish(
                exchange.into(),
                event.routing_key().into(),
                kyc_bus::lapin::options::BasicPublishOptions::default(),
                &body,
                kyc_bus::persistent(),
            )
            .await?
            .await
    }))
    .await;
    confirms.into_iter().try_for_each(|c| c.map(drop))
}
