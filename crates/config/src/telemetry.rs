//! Logging and metrics, set up once per process.
//!
//! Logs carry ids (submission, project) and error codes, never a personal field:
//! the types that hold personal data redact themselves in `Debug`, and no code
//! logs a request body.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber: `RUST_LOG` (default `info`), human-readable,
/// or JSON lines when `json` is set, on stderr (stdout is for command output,
/// such as the JSON `kycctl project create` prints). Calling it twice is harmless (tests do).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        // Colours only for a terminal, not for a log file or a collector.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi),
            )
            .try_init()
    };
}

/// Installs the Prometheus recorder for the `metrics` facade and returns the
/// handle that renders `/metrics`. A second call (tests, `kycctl dev`) returns a
/// handle that is not the global recorder, which only means its page stays empty.
pub fn metrics() -> PrometheusHandle {
    match prometheus_builder().install_recorder() {
        Ok(handle) => {
            build_info();
            handle
        }
        Err(_) => prometheus_builder().build_recorder().handle(),
    }
}

/// Latency buckets in seconds, for everything named `*_seconds`: from a
/// sub-millisecond broker confirm to a request that waited for its result
/// (`?wait`, up to 30 s). Explicit buckets make every latency a Prometheus
/// histogram, which (unlike a summary) can be summed across processes and asked
/// for any quantile with `histogram_quantile` (docs/operations.md, "Metrics").
pub const SECONDS_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Buckets for `kyc_worker_batch_size` (deliveries per batch, up to the largest
/// sensible `KYC__WORKER__BATCH_SIZE`).
pub const BATCH_SIZE_BUCKETS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// The Prometheus exporter every process uses: histograms (never summaries)
/// with the buckets above. `kyc-worker` adds its HTTP listener to it.
pub fn prometheus_builder() -> PrometheusBuilder {
    let with_buckets = PrometheusBuilder::new()
        .set_buckets(&SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("kyc_worker_batch_size".to_owned()),
                &BATCH_SIZE_BUCKETS,
            )
        });
    // Only an empty bucket list is refused, and these are constants.
    with_buckets.unwrap_or_else(|_| unreachable!("bucket lists are not empty"))
}

/// The version of the workspace and the commit it was built from (`KYC_BUILD_COMMIT`
/// at build time, else `git rev-parse`, else `unknown`; see `build.rs`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// See [`VERSION`].
pub const COMMIT: &str = env!("KYC_BUILD_COMMIT");

/// Sets `kyc_build_info{version,commit} 1` on the installed recorder. Called
/// by [`metrics`]; `kyc-worker` calls it after installing its own listener.
pub fn build_info() {
    metrics::describe_gauge!(
        "kyc_build_info",
        "Always 1; the labels name the version and the commit of the running binary."
    );
    metrics::gauge!("kyc_build_info", "version" => VERSION, "commit" => COMMIT).set(1.0);
}
