//! Support for the fault tests: stopping and restoring the shared PostgreSQL
//! ([`postgres`]) and RabbitMQ ([`broker`]) with guards that restore them on
//! drop, even when a test fails; real `kyc-worker` ([`workers`]) and
//! `kyc-intake` ([`intakes`]) processes that can be killed; a RabbitMQ
//! cluster of a test's own ([`cluster`]); bulk pushes and their
//! results files ([`push`]).

mod broker;
mod cluster;
mod intakes;
mod postgres;
mod push;
mod workers;

pub use broker::*;
pub use cluster::*;
pub use intakes::*;
pub use postgres::*;
pub use push::*;
pub use workers::*;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

pub const PG_ADDR: &str = "127.0.0.1:5432";
pub const AMQP_ADDR: &str = "127.0.0.1:5672";

/// Whether something accepts TCP connections at `addr`.
pub fn port_open(addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().expect("a socket address");
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Polls `check` every 100 ms, blocking, until it holds or `timeout` passes.
pub fn wait_blocking(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command to completion; whether it exited with 0. Its output is shown
/// only when it fails.
pub fn run(program: &str, args: &[&str]) -> bool {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "`{program} {}` exited with {}: {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("cannot run `{program}`: {e}");
            false
        }
    }
}

/// Both shared services up before a fault test starts (an earlier run may have
/// been killed while one was stopped).
pub fn ensure_services_up() {
    ensure_pg_up();
    ensure_broker_up();
}
