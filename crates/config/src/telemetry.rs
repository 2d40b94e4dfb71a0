//! Logging and metrics, set up once per process.
//!
//! Logs carry ids (submission, project) and error codes, never a personal field:
//! the types that hold personal data redact themselves in `Debug`, and no code
//! logs a request body.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
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
                    .with_current_span(true),
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
    let builder = PrometheusBuilder::new();
    match builder.install_recorder() {
        Ok(handle) => handle,
        Err(_) => PrometheusBuilder::new().build_recorder().handle(),
    }
}
