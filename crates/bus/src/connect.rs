//! Opening connections and channels, always under a timeout: a broker that
//! accepts TCP but never answers must not hang a process.

use crate::Topology;
use lapin::options::{BasicQosOptions, ConfirmSelectOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::Duration;

/// How long connecting (TCP, AMQP handshake) may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Failures at the AMQP boundary.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker or the connection answered with an error.
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker did not answer in time (it may accept TCP and say nothing).
    #[error("amqp: timed out after {0:?}")]
    Timeout(Duration),
}

/// Connects to `url`, naming the connection `name` in the management UI.
pub async fn connect(url: &str, name: &str) -> Result<Connection, BusError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties))
        .await
        .map_err(|_| BusError::Timeout(CONNECT_TIMEOUT))?
        .map_err(BusError::from)
}

/// A channel for consuming from the submissions queue: topology declared, and at
/// most `prefetch` unacknowledged deliveries outstanding (the broker stops
/// sending beyond it, which is the worker's back-pressure).
pub async fn open_consumer_channel(
    connection: &Connection,
    topology: &Topology,
    prefetch: u16,
) -> Result<Channel, BusError> {
    let channel = connection.create_channel().await?;
    topology.declare(&channel).await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    Ok(channel)
}

/// `n` (at least one) raw channels in publisher-confirm mode, for measuring what
/// the broker takes without our publish path (the benchmark's ceiling). To
/// publish, use [`crate::ConfirmChannel::open_many`], which settles confirms.
pub async fn confirm_channels(connection: &Connection, n: usize) -> Result<Vec<Channel>, BusError> {
    let mut channels = Vec::with_capacity(n.max(1));
    for _ in 0..n.max(1) {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channels.push(channel);
    }
    Ok(channels)
}
