//! REFERENCE: the bare dispatcher, what any dispatcher fed by RabbitMQ costs.
//! It takes the result events off our dispatcher's own queue (the same queue,
//! prefetch and kind), turns each into its webhook body and POSTs it to the
//! receiver with the same number of requests in flight, then acknowledges the
//! chunk with one multiple-ack: nothing signed, leased, retried or looked up.
//!
//! With a pool, each chunk also leaves one row per delivery in a table of its
//! own (`bench_bare_deliveries`, one `UNNEST` insert, committed before the ack): the least that a
//! durable record of every delivery costs, with none of our indexes or keys.

use futures_util::StreamExt;
use kyc_bus::Topology;
use kyc_bus::lapin::options::{BasicAckOptions, BasicConsumeOptions};
use kyc_bus::lapin::types::FieldTable;
use kyc_core::wire::ResultEventV1;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// Deliveries taken off the consumer at once (at most).
const CHUNK: usize = 256;

/// Chunks in progress at once; they are acknowledged in order.
const CHUNKS_AHEAD: usize = 2;

/// One delivery's outcome, as a record would keep it.
struct Sent {
    webhook_id: String,
    status: i16,
    latency_us: i32,
}

/// Delivers `n` events from `topology`'s webhooks queue to `url` and returns
/// when every one was answered 2xx and acknowledged.
pub async fn deliver(
    amqp_url: &str,
    topology: &Topology,
    prefetch: u16,
    in_flight: usize,
    url: &str,
    n: usize,
    rows: Option<&PgPool>,
) -> anyhow::Result<()> {
    if let Some(pool) = rows {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bench_bare_deliveries (webhook_id text PRIMARY KEY, \
             status smallint NOT NULL, latency_us integer NOT NULL, \
             attempted_at timestamptz NOT NULL DEFAULT now())",
        )
        .execute(pool)
        .await?;
    }
    let connection = kyc_bus::connect(amqp_url, "bench-bare-dispatcher").await?;
    let channel = kyc_bus::open_consumer_channel(&connection, topology, prefetch).await?;
    let consumer = channel
        .basic_consume(
            topology.webhooks_queue().into(),
            "bench-bare-dispatcher".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let client = reqwest::Client::new();
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut chunks = consumer
        .ready_chunks(CHUNK)
        .map(|chunk| {
            let (client, slots) = (client.clone(), slots.clone());
            async move {
                let deliveries = chunk.into_iter().collect::<Result<Vec<_>, _>>()?;
                let sent = futures_util::future::try_join_all(deliveries.iter().map(|d| {
                    let (client, slots) = (&client, &slots);
                    async move {
                        let event: ResultEventV1 = serde_json::from_slice(&d.data)?;
                        let webhook = kyc_webhooks::event::submission_event(&event);
                        let webhook_id = format!("msg_{}", webhook.id.simple());
                        let _slot = slots.acquire().await?;
                        let started = Instant::now();
                        let status = client
                            .post(url)
                            .header("content-type", "application/json")
                            .header("webhook-id", &webhook_id)
                            .body(webhook.body)
                            .send()
                            .await?
                            .status();
                        anyhow::ensure!(status.is_success(), "the receiver answered {status}");
                        Ok(Sent {
                            webhook_id,
                            status: status.as_u16() as i16,
                            latency_us: i32::try_from(started.elapsed().as_micros())
                                .unwrap_or(i32::MAX),
                        })
                    }
                }))
                .await?;
                if let Some(pool) = rows {
                    record(pool, sent).await?;
                }
                anyhow::Ok(deliveries)
            }
        })
        .buffered(CHUNKS_AHEAD);
    let mut done = 0;
    while done < n {
        let deliveries = chunks
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("the consumer ended after {done} of {n} events"))??;
        if let Some(last) = deliveries.last() {
            last.acker.ack(BasicAckOptions { multiple: true }).await?;
        }
        done += deliveries.len();
    }
    drop(chunks);
    kyc_bus::close(&connection, "bye").await;
    Ok(())
}

/// One statement for the chunk's rows.
async fn record(pool: &PgPool, sent: Vec<Sent>) -> anyhow::Result<()> {
    let mut ids = Vec::with_capacity(sent.len());
    let mut statuses = Vec::with_capacity(sent.len());
    let mut latencies = Vec::with_capacity(sent.len());
    for s in sent {
        ids.push(s.webhook_id);
        statuses.push(s.status);
        latencies.push(s.latency_us);
    }
    sqlx::query(
        "INSERT INTO bench_bare_deliveries (webhook_id, status, latency_us) \
         SELECT * FROM UNNEST($1::text[], $2::smallint[], $3::integer[])",
    )
    .bind(ids)
    .bind(statuses)
    .bind(latencies)
    .execute(pool)
    .await?;
    Ok(())
}
