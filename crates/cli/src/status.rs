//! `kycctl status`: one screen for an operator, and a gate for a deployment.
//!
//! - per queue (`P.submissions`, `P.submissions.dead`): depth (ready messages)
//!   and consumers, from passive declares (no permission needed on the names);
//!   publish and deliver rates only from RabbitMQ's management API
//!   (`--management-url`), since AMQP itself has no rates — without it they are
//!   shown as unknown;
//! - per project: submissions received in the last minute and hour, and the
//!   share of the last hour's that were rejected (from `submissions`);
//! - the size of the `submissions` table (with indexes and TOAST).
//!
//! [`Status::problems`] names what should stop a deployment: dead letters
//! present, or no worker consuming the submissions queue. `kycctl status`
//! exits 2 when there is any (1 is for a status that could not be read).

use anyhow::Context;
use kyc_bus::Topology;
use kyc_bus::lapin::options::QueueDeclareOptions;
use kyc_bus::lapin::types::FieldTable;
use kyc_config::Settings;
use secrecy::ExposeSecret;
use serde::Serialize;
use uuid::Uuid;

/// What `kycctl status` shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub queues: Vec<QueueStatus>,
    pub projects: Vec<ProjectStatus>,
    /// `pg_total_relation_size('submissions')`.
    pub submissions_table_bytes: i64,
    /// Why a deployment should not go ahead; empty when healthy.
    pub problems: Vec<String>,
}

/// One queue.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    pub name: String,
    /// `submissions`, `bulk` (the bulk lane) or `dead_letters`.
    pub role: &'static str,
    /// Messages ready for delivery (unacknowledged ones not included).
    pub messages: u32,
    pub consumers: u32,
    /// Messages per second published to / delivered from the queue, from the
    /// management API; `None` without `--management-url`.
    pub publish_rate: Option<f64>,
    pub deliver_rate: Option<f64>,
}

/// One project's recent submissions.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    pub project_id: Uuid,
    pub name: String,
    pub last_minute: i64,
    pub last_hour: i64,
    /// Rejected among the last hour's, 0..=1; `None` when there were none.
    pub rejected_share_last_hour: Option<f64>,
}

/// Reads the status: broker through `settings.amqp`, database through
/// `settings.database`; rates from `management_url` when given.
pub async fn read(settings: &Settings, management_url: Option<&str>) -> anyhow::Result<Status> {
    let topology = Topology::new(settings.amqp.prefix.clone());
    let mut queues = queues(settings, &topology).await?;
    if let Some(url) = management_url {
        for queue in &mut queues {
            let (publish, deliver) = rates(url, &queue.name)
                .await
                .with_context(|| format!("rates of {} from the management API", queue.name))?;
            queue.publish_rate = publish;
            queue.deliver_rate = deliver;
        }
    }
    let store = kyc_store::Store::connect_lazy(settings.database.url.expose_secret(), 2)?;
    let pool = store.pool();
    let rows: Vec<(Uuid, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT p.id, p.name, s.last_minute, s.last_hour, s.rejected_last_hour
         FROM projects p
         CROSS JOIN LATERAL (
             SELECT count(*) FILTER (WHERE received_at > now() - interval '1 minute') AS last_minute,
                    count(*) AS last_hour,
                    count(*) FILTER (WHERE status = 'rejected') AS rejected_last_hour
             FROM submissions
             WHERE project_id = p.id AND received_at > now() - interval '1 hour'
         ) s
         ORDER BY s.last_hour DESC, p.name",
    )
    .fetch_all(pool)
    .await
    .context("reading recent submissions per project")?;
    let projects = rows
        .into_iter()
        .map(
            |(project_id, name, last_minute, last_hour, rejected)| ProjectStatus {
                project_id,
                name,
                last_minute,
                last_hour,
                rejected_share_last_hour: (last_hour > 0)
                    .then(|| rejected as f64 / last_hour as f64),
            },
        )
        .collect();
    let submissions_table_bytes: i64 =
        sqlx::query_scalar("SELECT pg_total_relation_size('submissions')")
            .fetch_one(pool)
            .await
            .context("reading the size of the submissions table")?;
    let problems = problems(&queues);
    Ok(Status {
        queues,
        projects,
        submissions_table_bytes,
        problems,
    })
}

/// Depth and consumers of every queue of the topology, by passive declares.
async fn queues(settings: &Settings, topology: &Topology) -> anyhow::Result<Vec<QueueStatus>> {
    let connection = kyc_bus::connect(settings.amqp.url.expose_secret(), "kycctl-status")
        .await
        .context("connecting to RabbitMQ")?;
    let mut queues = Vec::new();
    for (name, role) in [
        (topology.submissions_queue(), "submissions"),
        (topology.bulk_queue(), "bulk"),
        (topology.dead_queue(), "dead_letters"),
    ] {
        // A missing queue closes the channel: one channel per queue.
        let channel = connection.create_channel().await?;
        let declared = channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("queue {name} (has a worker ever started?)"))?;
        queues.push(QueueStatus {
            name,
            role,
            messages: declared.message_count(),
            consumers: declared.consumer_count(),
            publish_rate: None,
            deliver_rate: None,
        });
        kyc_bus::close_channel(&channel, "status").await;
    }
    kyc_bus::close(&connection, "status").await;
    Ok(queues)
}

/// Publish and deliver rates of `queue` in the default vhost, from the
/// management API at `base` (`http://user:password@host:15672`).
async fn rates(base: &str, queue: &str) -> anyhow::Result<(Option<f64>, Option<f64>)> {
    let url = format!("{}/api/queues/%2F/{queue}", base.trim_end_matches('/'));
    let body: serde_json::Value = reqwest::get(&url).await?.error_for_status()?.json().await?;
    let rate = |name: &str| body["message_stats"][name]["rate"].as_f64();
    // A queue nothing went through yet has no message_stats: a rate of 0.
    let idle = body.get("message_stats").is_none();
    let or_idle = |r: Option<f64>| r.or(idle.then_some(0.0));
    Ok((
        or_idle(rate("publish_details")),
        or_idle(rate("deliver_get_details")),
    ))
}

/// What should stop a deployment.
fn problems(queues: &[QueueStatus]) -> Vec<String> {
    let mut problems = Vec::new();
    for queue in queues {
        match queue.role {
            "dead_letters" if queue.messages > 0 => problems.push(format!(
                "{} dead letter(s) in {} (kycctl dlq list)",
                queue.messages, queue.name
            )),
            "submissions" | "bulk" if queue.consumers == 0 => {
                problems.push(format!("no worker consumes {}", queue.name));
            }
            _ => {}
        }
    }
    problems
}

/// `12.3 MiB`.
fn bytes(n: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

impl Status {
    /// The human-readable screen.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let rate = |r: Option<f64>| r.map_or_else(|| "?".to_owned(), |r| format!("{r:.1}/s"));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<40} {:>10} {:>9} {:>10} {:>10}",
            "QUEUE", "MESSAGES", "CONSUMERS", "PUBLISH", "DELIVER"
        );
        for q in &self.queues {
            let _ = writeln!(
                out,
                "{:<40} {:>10} {:>9} {:>10} {:>10}",
                q.name,
                q.messages,
                q.consumers,
                rate(q.publish_rate),
                rate(q.deliver_rate)
            );
        }
        if self.queues.iter().all(|q| q.publish_rate.is_none()) {
            let _ = writeln!(
                out,
                "(rates need RabbitMQ's management plugin: --management-url)"
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<38} {:<24} {:>8} {:>8} {:>9}",
            "PROJECT", "NAME", "LAST 1M", "LAST 1H", "REJECTED"
        );
        for p in &self.projects {
            let share = p
                .rejected_share_last_hour
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1}%", s * 100.0));
            let name: String = p.name.chars().take(24).collect();
            let _ = writeln!(
                out,
                "{:<38} {:<24} {:>8} {:>8} {:>9}",
                p.project_id, name, p.last_minute, p.last_hour, share
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "submissions table: {}",
            bytes(self.submissions_table_bytes)
        );
        if self.problems.is_empty() {
            let _ = writeln!(out, "status: ok");
        } else {
            for problem in &self.problems {
                let _ = writeln!(out, "problem: {problem}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(role: &'static str, messages: u32, consumers: u32) -> QueueStatus {
        QueueStatus {
            name: format!("kyc.{role}"),
            role,
            messages,
            consumers,
            publish_rate: None,
            deliver_rate: None,
        }
    }

    #[test]
    fn dead_letters_and_missing_consumers_are_problems() {
        assert!(problems(&[queue("submissions", 5, 1), queue("dead_letters", 0, 0)]).is_empty());
        assert_eq!(
            problems(&[queue("bulk", 9, 0)]).len(),
            1,
            "a bulk lane nobody consumes"
        );
        assert_eq!(
            problems(&[queue("submissions", 0, 0), queue("dead_letters", 2, 0)]).len(),
            2
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
