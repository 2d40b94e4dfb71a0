//! The in-tree HTTP load generator: N keep-alive HTTP/1.1 connections posting the
//! same body, either as fast as they are answered (closed loop, like `wrk`) or at
//! a fixed total rate (like `wrk2`).
//!
//! It runs on its own Tokio runtime on its own OS thread(s), so the server under
//! test keeps the process's main runtime to itself and both compete only for
//! the CPU — the same way for a ceiling and for our code.
//!
//! Latency is measured per request in microseconds and kept in a plain `Vec<u32>`
//! sorted at the end. At a fixed rate it counts from when the request was *due*,
//! not when it was sent, so a stalled server cannot hide its stall by delaying
//! the next requests (coordinated omission). Only requests completing inside the
//! measurement window (after the warm-up) count.

use crate::report::{Phase, Report, Role};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The load flags `bench intake` and `bench e2e` share.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Length of each measured phase (10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration)]
    pub duration: Duration,
    /// Keep-alive HTTP/1.1 connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Load before each phase's window, not counted.
    #[arg(long, default_value = "2s", value_parser = crate::parse_duration)]
    pub warmup: Duration,
    /// Threads of the load generator (its own runtime, apart from the server's).
    #[arg(long, default_value_t = 1)]
    pub load_threads: usize,
}

impl HttpArgs {
    /// The plan for posting the bench record to `addr` with `api_key`.
    pub fn plan(&self, addr: SocketAddr, api_key: &str, rate: Option<f64>) -> Plan {
        Plan {
            addr,
            path: "/v3/submission/migration".to_owned(),
            api_key: api_key.to_owned(),
            body: crate::record::body(),
            connections: self.connections,
            warmup: self.warmup,
            duration: self.duration,
            rate,
            threads: self.load_threads,
        }
    }

    pub fn describe(&self, report: &mut Report) {
        report.param("duration", format!("{:?}", self.duration));
        report.param("warmup", format!("{:?}", self.warmup));
        report.param("connections", self.connections);
        report.param("load_threads", self.load_threads);
    }
}

/// What load to apply.
#[derive(Debug, Clone)]
pub struct Plan {
    pub addr: SocketAddr,
    pub path: String,
    pub api_key: String,
    pub body: Bytes,
    pub connections: usize,
    /// Sent but not counted, before the window.
    pub warmup: Duration,
    /// The measurement window.
    pub duration: Duration,
    /// Requests per second over all connections; `None`: closed loop.
    pub rate: Option<f64>,
    /// Threads of the load generator's runtime.
    pub threads: usize,
}

/// When the counted requests run: `[start, end)`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup_start: Instant,
    pub start: Instant,
    pub end: Instant,
}

/// What the load saw in the window.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: u64,
    pub non_200: u64,
    /// Connection failures and requests that got no response.
    pub errors: u64,
    /// Every 200 answered, warm-up and stragglers after the window included (what
    /// must end up persisted).
    pub accepted_total: u64,
    /// Every counted response's latency in µs, sorted.
    pub latencies_us: Vec<u32>,
    pub seconds: f64,
}

impl Outcome {
    /// Nearest-rank percentile (`q` in 0..=1), in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        let n = self.latencies_us.len();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Some(f64::from(self.latencies_us[rank - 1]) / 1000.0)
    }

    /// A report row of requests answered 200 per second, with latencies and
    /// failures.
    pub fn phase(&self, name: &str, role: Role) -> Phase {
        let mut phase = Phase::new(name, role, self.ok, self.seconds);
        self.annotate(&mut phase);
        phase
    }

    /// Adds latencies and failures to `phase`.
    pub fn annotate(&self, phase: &mut Phase) {
        phase.p50_ms = self.percentile_ms(0.50);
        phase.p99_ms = self.percentile_ms(0.99);
        phase.non_200 = Some(self.non_200);
        phase.errors = Some(self.errors);
    }
}

/// A load in progress.
#[derive(Debug)]
pub struct Load {
    pub window: Window,
    result: tokio::sync::oneshot::Receiver<anyhow::Result<Outcome>>,
}

impl Load {
    /// Starts the load now: warm-up, then the window.
    pub fn start(plan: Plan) -> anyhow::Result<Load> {
        anyhow::ensure!(plan.connections > 0, "--connections must be at least 1");
        anyhow::ensure!(
            plan.rate.is_none_or(|r| r > 0.0),
            "--rate must be positive (0 is unlimited)"
        );
        let warmup_start = Instant::now();
        let start = warmup_start + plan.warmup;
        let window = Window {
            warmup_start,
            start,
            end: start + plan.duration,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("bench-load".to_owned())
            .spawn(move || {
                let _ = tx.send(generate(plan, window));
            })?;
        Ok(Load { window, result: rx })
    }

    /// Waits for the load to finish.
    pub async fn finish(self) -> anyhow::Result<Outcome> {
        self.result
            .await
            .map_err(|_| anyhow::anyhow!("the load generator thread died"))?
    }
}

/// Runs the whole load on a runtime of its own (this is the load thread).
fn generate(plan: Plan, window: Window) -> anyhow::Result<Outcome> {
    let runtime = if plan.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(plan.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let plan = Arc::new(plan);
        let tasks: Vec<_> = (0..plan.connections)
            .map(|i| tokio::spawn(connection(i, plan.clone(), window)))
            .collect();
        let mut outcome = Outcome {
            seconds: window.end.duration_since(window.start).as_secs_f64(),
            ..Outcome::default()
        };
        for task in tasks {
            let tally = task.await?;
            outcome.ok += tally.ok;
            outcome.non_200 += tally.non_200;
            outcome.errors += tally.errors;
            outcome.accepted_total += tally.accepted_total;
            outcome.latencies_us.extend(tally.latencies_us);
        }
        outcome.latencies_us.sort_unstable();
        Ok(outcome)
    })
}

#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    non_200: u64,
    errors: u64,
    accepted_total: u64,
    latencies_us: Vec<u32>,
}

/// One connection's request loop, until the window ends.
async fn connection(i: usize, plan: Arc<Plan>, window: Window) -> Tally {
    let host = HeaderValue::from_str(&plan.addr.to_string()).ok();
    let api_key = HeaderValue::from_str(&plan.api_key).ok();
    let json = HeaderValue::from_static("application/json");
    // At a fixed rate each connection sends every `interval`, the connections
    // staggered evenly over one interval.
    let interval = plan
        .rate
        .map(|rate| Duration::from_secs_f64(plan.connections as f64 / rate));
    let mut due = window.warmup_start
        + interval.map_or(Duration::ZERO, |iv| {
            iv.mul_f64(i as f64 / plan.connections as f64)
        });
    let mut tally = Tally::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let scheduled = match interval {
            Some(iv) => {
                tokio::time::sleep_until(due).await;
                let scheduled = due;
                due += iv;
                scheduled
            }
            None => Instant::now(),
        };
        if scheduled >= window.end {
            break;
        }
        let s = match &mut sender {
            Some(s) => s,
            None => match connect(plan.addr).await {
                Ok(s) => sender.insert(s),
                Err(_) => {
                    if Instant::now() >= window.start {
                        tally.errors += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let mut request = Request::post(plan.path.as_str());
        if let Some(headers) = request.headers_mut() {
            if let Some(host) = &host {
                headers.insert(HOST, host.clone());
            }
            if let Some(key) = &api_key {
                headers.insert("x-api-key", key.clone());
            }
            headers.insert(CONTENT_TYPE, json.clone());
        }
        let Ok(request) = request.body(Full::new(plan.body.clone())) else {
            tally.errors += 1;
            break;
        };
        let answer = send(s, request).await;
        let done = Instant::now();
        if matches!(answer, Ok(200)) {
            tally.accepted_total += 1;
        }
        if done >= window.end {
            break;
        }
        if done < window.start {
            if answer.is_err() {
                sender = None;
            }
            continue;
        }
        match answer {
            Ok(status) => {
                if status == 200 {
                    tally.ok += 1;
                } else {
                    tally.non_200 += 1;
                }
                let micros = done.duration_since(scheduled).as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Err(_) => {
                tally.errors += 1;
                sender = None;
            }
        }
    }
    tally
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole response (so the connection can be
/// reused); the status code.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<u16> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

#[cfg(test)]
mod tests;
