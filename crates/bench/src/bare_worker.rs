//! CEILING: the bare worker. Consume with a prefetch; take up to `batch_size`
//! deliveries (waiting at most `linger` after the first); one `UNNEST` insert of
//! `(id uuid, body jsonb)` into the scratch table; one confirmed event per row on
//! the topic exchange, all in flight at once; one multiple-ack. Nothing else: no
//! authentication, validation, typed columns, encryption, retries or
//! reconnection. Deliberately minimal: it is what the broker and the database
//! cost for our batch shape.

use crate::env::SCRATCH_TABLE;
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use kyc_bus::lapin::message::Delivery;
use kyc_bus::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use kyc_bus::lapin::types::FieldTable;
use kyc_bus::lapin::{Confirmation, Consumer};
use kyc_bus::{Topology, persistent};
use sqlx::PgPool;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The batch shape; the benches copy ours from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub batch_size: usize,
    pub prefetch: u16,
    pub linger: Duration,
}

impl Shape {
    pub fn of(settings: &kyc_config::Settings) -> Shape {
        Shape {
            batch_size: settings.worker.batch_size,
            prefetch: settings.worker.prefetch,
            linger: settings.worker.batch_linger(),
        }
    }
}

/// A running bare worker.
#[derive(Debug)]
pub struct BareWorker {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl BareWorker {
    pub fn start(
        amqp_url: &str,
        topology: &Topology,
        pool: PgPool,
        shape: Shape,
        parent: &CancellationToken,
    ) -> BareWorker {
        let stop = parent.child_token();
        let task = tokio::spawn(run(
            amqp_url.to_owned(),
            topology.clone(),
            pool,
            shape,
            stop.clone(),
        ));
        BareWorker { stop, task }
    }

    /// Finishes the batch in hand and stops; its error, if it failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await?
    }
}

async fn run(
    amqp_url: String,
    topology: Topology,
    pool: PgPool,
    shape: Shape,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let connection = kyc_bus::connect(&amqp_url, "bench-bare-worker").await?;
    let consume = connection.create_channel().await?;
    consume
        .basic_qos(shape.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = consume
        .basic_consume(
            topology.submissions_queue().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let events = connection.create_channel().await?;
    events
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let exchange = topology.events_exchange();
    let insert = format!(
        "INSERT INTO {SCRATCH_TABLE} (id, body) \
         SELECT id, body::jsonb FROM UNNEST($1::uuid[], $2::text[]) AS t(id, body)"
    );

    loop {
        let batch = collect(&mut consumer, shape, &stop).await?;
        let Some(last) = batch.last() else { break };
        let ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
        let bodies: Vec<String> = batch
            .iter()
            .map(|d| String::from_utf8_lossy(&d.data).into_owned())
            .collect();
        sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
            .bind(&ids)
            .bind(&bodies)
            .execute(&pool)
            .await?;
        let confirms = ids.iter().map(|id| {
            let event = format!(r#"{{"event":"submission.accepted","submissionId":"{id}"}}"#);
            let events = &events;
            let exchange = exchange.as_str();
            async move {
                events
                    .basic_publish(
                        exchange.into(),
                        "submission.accepted.bench".into(),
                        BasicPublishOptions::default(),
                        event.as_bytes(),
                        persistent(),
                    )
                    .await?
                    .await
            }
        });
        for confirmation in try_join_all(confirms).await? {
            anyhow::ensure!(
                matches!(confirmation, Confirmation::Ack(_)),
                "event not confirmed"
            );
        }
        last.acker.ack(BasicAckOptions { multiple: true }).await?;
        if stop.is_cancelled() {
            break;
        }
    }
    kyc_bus::close_channel(&consume, "bye").await;
    kyc_bus::close_channel(&events, "bye").await;
    kyc_bus::close(&connection, "bye").await;
    Ok(())
}

/// Up to `batch_size` deliveries: waits for the first (or `stop`: empty), then at
/// most `linger` for the rest.
async fn collect(
    consumer: &mut Consumer,
    shape: Shape,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<Delivery>> {
    let mut batch = Vec::with_capacity(shape.batch_size);
    tokio::select! {
        () = stop.cancelled() => return Ok(batch),
        next = consumer.next() => match next {
            Some(delivery) => batch.push(delivery?),
            None => anyhow::bail!("consumer cancelled"),
        },
    }
    let deadline = tokio::time::Instant::now() + shape.linger;
    while batch.len() < shape.batch_size {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Some(delivery)) => batch.push(delivery?),
            Ok(None) => anyhow::bail!("consumer cancelled"),
            Err(_) => break,
        }
    }
    Ok(batch)
}
