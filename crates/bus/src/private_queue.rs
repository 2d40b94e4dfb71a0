//! A private reply queue: what a requester (the intake's `?wait`, `kycctl push`)
//! gives as `reply_to`.

use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};

/// Declares a server-named, exclusive, auto-deleted queue on a new channel and
/// consumes it without acks. It lives exactly as long as `connection`.
///
/// No acks: replies are an answer to someone waiting, not a record. A lost one is
/// recovered from the stored result (`--resume`, `GET`), so redelivery machinery
/// would buy nothing.
pub async fn private_queue(
    connection: &Connection,
) -> Result<(Channel, String, Consumer), lapin::Error> {
    let channel = connection.create_channel().await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((channel, queue.name().as_str().to_owned(), consumer))
}
