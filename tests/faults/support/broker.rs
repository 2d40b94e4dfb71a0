//! RabbitMQ stopped and restored, and queries of a test's queues.

use super::{AMQP_ADDR, port_open, run, wait_blocking};
use kyc_testkit::TestEnv;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn broker_app_running() -> bool {
    port_open(AMQP_ADDR)
        && Command::new("rabbitmqctl")
            .args(["-q", "await_startup", "--timeout", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Makes sure the broker runs and accepts AMQP: `start_app` if only the
/// application was stopped, `rabbitmq-server -detached` if the node is gone;
/// whether it came back. Never panics (guards call it from `Drop`).
fn restore_broker() -> bool {
    if port_open(AMQP_ADDR) && run("rabbitmqctl", &["-q", "await_startup"]) {
        return true;
    }
    if !port_open(AMQP_ADDR) && !run("rabbitmqctl", &["-q", "start_app"]) {
        // The node itself is not running.
        let _ = Command::new("rabbitmq-server")
            .arg("-detached")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    wait_blocking(Duration::from_secs(120), broker_app_running)
}

/// Makes sure the broker runs and accepts AMQP (see [`restore_broker`]).
pub fn ensure_broker_up() {
    assert!(
        restore_broker(),
        "RabbitMQ did not come back on {AMQP_ADDR}"
    );
}

/// The broker application stopped (`rabbitmqctl stop_app`) for the lifetime of
/// the guard; dropping it runs `start_app` and waits for startup. The guard stays
/// armed until a restart has been confirmed, and its `Drop` never panics.
#[derive(Debug)]
pub struct BrokerStopped {
    restored: bool,
}

impl BrokerStopped {
    /// `rabbitmqctl stop_app`, off the async runtime.
    pub async fn stop() -> BrokerStopped {
        let guard = BrokerStopped { restored: false };
        let stopped = tokio::task::spawn_blocking(|| run("rabbitmqctl", &["-q", "stop_app"]))
            .await
            .expect("the blocking task");
        assert!(stopped, "rabbitmqctl stop_app");
        guard
    }

    /// `start_app`, then waits (off the async runtime) until the broker accepts
    /// AMQP; when `start_app` returned.
    pub async fn start(&mut self) -> Instant {
        let (started, returned, up) = tokio::task::spawn_blocking(|| {
            let started = run("rabbitmqctl", &["-q", "start_app"]);
            let returned = Instant::now();
            (started, returned, restore_broker())
        })
        .await
        .expect("the blocking task");
        assert!(started, "rabbitmqctl start_app");
        assert!(up, "RabbitMQ did not come back on {AMQP_ADDR}");
        // Disarmed only now that the broker is confirmed back.
        self.restored = true;
        returned
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        if !self.restored {
            eprintln!("restoring RabbitMQ");
            self.restored = restore_broker();
            if !self.restored {
                eprintln!("RabbitMQ did not come back on {AMQP_ADDR}: start it by hand");
            }
        }
    }
}

// ---------------------------------------------------------------- broker queries

/// Ready messages and consumers of a queue (a passive declare).
pub async fn queue_counts(env: &TestEnv, queue: &str) -> (u32, u32) {
    use kyc_bus::lapin::options::QueueDeclareOptions;
    use kyc_bus::lapin::types::FieldTable;
    let (connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("passive declare of {queue}: {e}"));
    let _ = connection.close(200, "bye".into()).await;
    (declared.message_count(), declared.consumer_count())
}
