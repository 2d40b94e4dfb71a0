//! Scratch resources: a database and broker prefixes that one run creates for
//! itself and removes at the end.
//!
//! The only way to get a [`ScratchDb`] or a [`ScratchBroker`] is to create one,
//! and creating fails if the name is already taken: `CREATE DATABASE` (not "create
//! if missing") for the database, passive declares of every queue and exchange
//! for a broker prefix. Dropping and deleting are methods of those values and
//! touch exactly the names they were created with, so whatever this code removes
//! is something the same run created; an existing database or prefix, with data
//! or not, is refused before anything is written to it.

use anyhow::Context as _;
use kyc_bus::Topology;
use kyc_bus::lapin::Connection;
use kyc_bus::lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use kyc_bus::lapin::types::FieldTable;
use sqlx::Connection as _;
use uuid::Uuid;

/// A random suffix for scratch names: 12 lower-case hex digits.
pub fn random_tag() -> String {
    let id = Uuid::new_v4().simple().to_string();
    id[..12].to_owned()
}

/// A database this run created on a server, migrated.
#[derive(Debug)]
pub struct ScratchDb {
    name: String,
    url: String,
    /// The server's `postgres` database, to drop ours from.
    admin_url: String,
}

impl ScratchDb {
    /// Creates database `name` on the server of `server_url` (a URL with or
    /// without a database; only its server part is used) and migrates it.
    /// Fails, leaving everything as it was, if `name` already exists.
    pub async fn create(server_url: &str, name: &str) -> anyhow::Result<ScratchDb> {
        anyhow::ensure!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "scratch database name {name:?}: only a-z, 0-9 and _"
        );
        let admin_url = with_database(server_url, "postgres");
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .context("connecting to PostgreSQL")?;
        // Without IF NOT EXISTS: an existing database of that name is an error,
        // never something to reuse.
        let created = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        created.with_context(|| {
            format!("creating scratch database {name} (an existing one is never reused)")
        })?;
        let db = ScratchDb {
            name: name.to_owned(),
            url: with_database(server_url, name),
            admin_url,
        };
        if let Err(e) = kyc_store::migrate(&db.url).await {
            // Ours: created just above.
            let _ = db.drop_database().await;
            return Err(e).with_context(|| format!("migrating scratch database {name}"));
        }
        Ok(db)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops this database, closing any session still using it.
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
        let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
        dropped.with_context(|| format!("dropping scratch database {}", self.name))?;
        Ok(())
    }
}

/// Broker prefixes this run claimed: none of their queues and exchanges existed
/// when they were claimed.
#[derive(Debug)]
pub struct ScratchBroker {
    amqp_url: String,
    topologies: Vec<Topology>,
}

impl ScratchBroker {
    /// Claims `topologies` on the broker at `amqp_url`: fails if any of their
    /// queues or exchanges already exists. Declares nothing (whoever uses them
    /// declares them, as the services do).
    pub async fn claim(amqp_url: &str, topologies: Vec<Topology>) -> anyhow::Result<ScratchBroker> {
        let connection = kyc_bus::connect(amqp_url, "kyc-testkit-claim")
            .await
            .context("connecting to RabbitMQ")?;
        let mut taken = Vec::new();
        for topology in &topologies {
            taken.extend(existing(&connection, topology).await?);
        }
        let _ = connection.close(200, "bye".into()).await;
        anyhow::ensure!(
            taken.is_empty(),
            "broker names already exist, refusing to use or delete them: {}",
            taken.join(", ")
        );
        Ok(ScratchBroker {
            amqp_url: amqp_url.to_owned(),
            topologies,
        })
    }

    pub fn topologies(&self) -> &[Topology] {
        &self.topologies
    }

    /// Deletes the queues and exchanges of the claimed prefixes.
    pub async fn delete(&self) -> anyhow::Result<()> {
        let connection = kyc_bus::connect(&self.amqp_url, "kyc-testkit-cleanup").await?;
        let channel = connection.create_channel().await?;
        for topology in &self.topologies {
            for queue in [
                topology.submissions_queue(),
                topology.bulk_queue(),
                topology.images_queue(),
                topology.dead_queue(),
                topology.webhooks_queue(),
            ] {
                channel
                    .queue_delete(queue.into(), QueueDeleteOptions::default())
                    .await?;
            }
            for exchange in [
                topology.submissions_exchange(),
                topology.events_exchange(),
                topology.dead_exchange(),
            ] {
                channel
                    .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                    .await?;
            }
        }
        let _ = connection.close(200, "bye".into()).await;
        Ok(())
    }
}

/// The queues and exchanges of `topology` that exist. A passive declare of a
/// missing name closes its channel, hence one channel per name.
async fn existing(connection: &Connection, topology: &Topology) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for queue in [
        topology.submissions_queue(),
        topology.bulk_queue(),
        topology.images_queue(),
        topology.dead_queue(),
        topology.webhooks_queue(),
    ] {
        let channel = connection.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        if channel
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
            .is_ok()
        {
            found.push(format!("queue {queue}"));
            let _ = channel.close(200, "bye".into()).await;
        }
    }
    for exchange in [
        topology.submissions_exchange(),
        topology.events_exchange(),
        topology.dead_exchange(),
    ] {
        let channel = connection.create_channel().await?;
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        if channel
            .exchange_declare(
                exchange.as_str().into(),
                kyc_bus::lapin::ExchangeKind::Topic,
                passive,
                FieldTable::default(),
            )
            .await
            .is_ok()
        {
            found.push(format!("exchange {exchange}"));
            let _ = channel.close(200, "bye".into()).await;
        }
    }
    Ok(found)
}

/// `url` with its database (path) replaced by `name`, query kept:
/// `postgres://u@h:5432/kyc?x=y` → `postgres://u@h:5432/<name>?x=y`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/kyc", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5432/kyc?sslmode=disable", "x"),
            "postgres://u:p@db:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://db:5432", "x"),
            "postgres://db:5432/x"
        );
    }
}
