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
    /// The address setting lists no broker at all.
    #[error("amqp: no broker address configured")]
    NoAddress,
}

/// The broker addresses in a setting: one AMQP URL, or several separated by
/// commas (the nodes of one cluster), in the order they are tried. Blanks around
/// an address and empty entries are ignored. A comma inside a password must be
/// percent-encoded (`%2C`), as URLs require anyway.
pub fn addresses(urls: &str) -> Vec<&str> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// `url` without its credentials, for logs: `amqp://host:port/vhost`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a url>".to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}://{rest}")
}

/// Connects to the first of `urls` (see [`addresses`]) that answers, naming the
/// connection `name` in the management UI. Each address is tried once, in
/// order, each under the connect timeout; the error is the last address's.
/// Retrying is the caller's: a [`crate::Link`] retries with [`crate::backoff`].
pub async fn connect(urls: &str, name: &str) -> Result<Connection, BusError> {
    connect_from(urls, 0, name)
        .await
        .map(|(connection, _)| connection)
}

/// [`connect`], starting with the address at `start` (wrapping around): a
/// reconnect begins with the address after the one that was lost, so a dead
/// node is tried last. Also returns the index of the address that answered.
pub(crate) async fn connect_from(
    urls: &str,
    start: usize,
    name: &str,
) -> Result<(Connection, usize), BusError> {
    let list = addresses(urls);
    if list.is_empty() {
        return Err(BusError::NoAddress);
    }
    let mut last = None;
    for offset in 0..list.len() {
        let index = (start + offset) % list.len();
        let url = list[index];
        match connect_one(url, name).await {
            Ok(connection) => {
                if offset > 0 || list.len() > 1 {
                    tracing::info!(%name, address = %redacted(url), "amqp connected");
                }
                return Ok((connection, index));
            }
            Err(e) => {
                if list.len() > 1 {
                    tracing::warn!(%name, address = %redacted(url), error = %e, "amqp address failed, trying the next");
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or(BusError::NoAddress))
}

async fn connect_one(url: &str, name: &str) -> Result<Connection, BusError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties))
        .await
        .map_err(|_| BusError::Timeout(CONNECT_TIMEOUT))?
        .map_err(BusError::from)
}

/// How long a polite close may wait for the broker's answer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Closes `connection` politely, waiting at most two seconds for the broker's
/// close-ok: a process that is done must end even when a broker (or a cluster
/// in the middle of losing a node) does not answer. The socket goes with the
/// process anyway; the close only spares the broker a "connection lost" log.
pub async fn close(connection: &Connection, reason: &str) {
    match tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, reason.into())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "amqp close"),
        Err(_) => tracing::warn!("amqp close unanswered after {CLOSE_TIMEOUT:?}; leaving anyway"),
    }
}

/// Closes `channel` politely, waiting at most two seconds, as [`close`] does
/// for a connection: a blocked connection's channel close is never answered
/// either.
pub async fn close_channel(channel: &Channel, reason: &str) {
    match tokio::time::timeout(CLOSE_TIMEOUT, channel.close(200, reason.into())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "amqp channel close"),
        Err(_) => tracing::debug!("amqp channel close unanswered after {CLOSE_TIMEOUT:?}"),
    }
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

#[cfg(test)]
mod tests {
    use super::{addresses, redacted};

    #[test]
    fn a_list_of_addresses_is_split_at_commas_in_order() {
        assert_eq!(
            addresses(" amqp://a:1@n1/%2f, ,amqp://n2:5672,amqps://u:p%2Cq@n3/v "),
            [
                "amqp://a:1@n1/%2f",
                "amqp://n2:5672",
                "amqps://u:p%2Cq@n3/v"
            ]
        );
        assert_eq!(addresses("amqp://n1"), ["amqp://n1"]);
        assert!(addresses(" , ").is_empty());
    }

    #[test]
    fn a_redacted_address_keeps_no_credentials() {
        assert_eq!(
            redacted("amqp://user:s3cr@t@10.0.0.1:5672/%2f"),
            "amqp://10.0.0.1:5672/%2f"
        );
        assert_eq!(redacted("amqp://n2:5672"), "amqp://n2:5672");
        assert_eq!(redacted("amqps://u:p@n3"), "amqps://n3");
        assert_eq!(redacted("not a url"), "<not a url>");
    }
}
