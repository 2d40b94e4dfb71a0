//! `kycctl webhook …`: each project's webhook endpoints, their deliveries, and
//! replays (`docs/api.md` "Webhooks", `docs/operations.md`). Output meant for
//! scripts goes to stdout as JSON lines; human remarks go to stderr.

use clap::Subcommand;
use kyc_config::Settings;
use kyc_store::webhooks::{ReplaySelection, WebhookEndpoint};
use kyc_store::{DataKey, Store};
use secrecy::ExposeSecret;
use serde_json::json;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// The event types an endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 2] = ["submission.accepted", "submission.rejected"];

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Add an endpoint; prints {"id", "secret"} once (the secret is stored sealed
    /// and never shown again; `rotate-secret` makes a new one).
    Add {
        #[arg(long, value_parser = parse_id)]
        project: Uuid,
        /// HTTPS URL the events are POSTed to.
        #[arg(long)]
        url: String,
        /// Event types to receive, separated by commas (default: all of them).
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
    },
    /// A project's endpoints, one JSON object per line (never their secrets).
    List {
        #[arg(long, value_parser = parse_id)]
        project: Uuid,
    },
    /// Remove an endpoint with its deliveries.
    Remove {
        #[arg(value_parser = parse_id)]
        id: Uuid,
    },
    /// Stop delivering to an endpoint (new events are not queued for it; pending
    /// deliveries wait until it is enabled).
    Disable {
        #[arg(value_parser = parse_id)]
        id: Uuid,
    },
    /// Deliver to an endpoint again.
    Enable {
        #[arg(value_parser = parse_id)]
        id: Uuid,
    },
    /// A new signing secret, printed once; the old one keeps signing beside it
    /// (two signatures per request) for the overlap.
    RotateSecret {
        #[arg(value_parser = parse_id)]
        id: Uuid,
        /// How long the old secret keeps signing, e.g. `30m`, `24h`, `7d`.
        #[arg(long, value_parser = parse_duration, default_value = "24h")]
        overlap: Duration,
    },
    /// A project's deliveries, newest first, one JSON object per line.
    Deliveries {
        #[arg(long, value_parser = parse_id)]
        project: Uuid,
        /// Only the failed ones (every attempt of the schedule failed).
        #[arg(long)]
        failed: bool,
        /// With each delivery's attempts.
        #[arg(long)]
        attempts: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Send deliveries again, with a new round of the retry schedule and the same
    /// webhook-id: the given ones, or every failed one of a project.
    Replay {
        /// Every failed delivery of this project.
        #[arg(long, value_parser = parse_id, conflicts_with = "ids")]
        project: Option<Uuid>,
        /// Delivery ids, as `deliveries` shows them.
        #[arg(value_parser = parse_id, required_unless_present = "project")]
        ids: Vec<Uuid>,
    },
}

fn parse_id(s: &str) -> Result<Uuid, String> {
    Uuid::parse_str(s).map_err(|e| format!("not an id: {e}"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?}: give a unit (s, m, h, d), e.g. 24h"))?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: not a whole number followed by a unit"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d)")),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: too long"))
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn endpoint_json(e: &WebhookEndpoint) -> serde_json::Value {
    json!({
        "id": e.id,
        "projectId": e.project_id,
        "url": e.url,
        "events": e.event_types,
        "enabled": e.enabled,
        "disabledReason": e.disabled_reason,
        "previousSecretUntil": e.previous_expires_at.map(rfc3339),
        "createdAt": rfc3339(e.created_at),
    })
}

/// Runs one `kycctl webhook` command.
pub async fn run(settings: &Settings, command: WebhookCommand) -> anyhow::Result<()> {
    let store = Store::connect_lazy(settings.database.url.expose_secret(), 2)?;
    let keyring = || -> anyhow::Result<DataKey> {
        Ok(DataKey::keyring(
            &settings.data_key()?,
            &settings.crypto.older_data_keys()?,
        )?)
    };
    match command {
        WebhookCommand::Add {
            project,
            url,
            events,
        } => {
            let policy = kyc_webhooks::Policy::from_settings(&settings.webhooks);
            policy
                .check_url(&url)
                .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
            let events: Vec<String> = events
                .into_iter()
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty())
                .collect();
            for event in &events {
                anyhow::ensure!(
                    EVENT_TYPES.contains(&event.as_str()),
                    "unknown event type {event:?} (known: {})",
                    EVENT_TYPES.join(", ")
                );
            }
            let secret = kyc_webhooks::signature::generate_secret()?;
            let endpoint = store
                .add_webhook(&keyring()?, project, &url, &events, &secret)
                .await?;
            println!("{}", json!({ "id": endpoint.id, "secret": secret }));
            eprintln!("store the signing secret now: it is not shown again");
        }
        WebhookCommand::List { project } => {
            for endpoint in store.webhooks(project).await? {
                println!("{}", endpoint_json(&endpoint));
            }
        }
        WebhookCommand::Remove { id } => {
            store.remove_webhook(id).await?;
            eprintln!("webhook endpoint {id} removed");
        }
        WebhookCommand::Disable { id } => {
            store
                .set_webhook_enabled(id, false, Some("disabled by an operator"))
                .await?;
            eprintln!("webhook endpoint {id} disabled");
        }
        WebhookCommand::Enable { id } => {
            store.set_webhook_enabled(id, true, None).await?;
            eprintln!("webhook endpoint {id} enabled");
        }
        WebhookCommand::RotateSecret { id, overlap } => {
            let secret = kyc_webhooks::signature::generate_secret()?;
            let until = store
                .rotate_webhook_secret(&keyring()?, id, &secret, overlap)
                .await?;
            println!(
                "{}",
                json!({ "id": id, "secret": secret, "previousSecretUntil": rfc3339(until) })
            );
            eprintln!("store the new signing secret now; the old one signs too until then");
        }
        WebhookCommand::Deliveries {
            project,
            failed,
            attempts,
            limit,
        } => {
            let deliveries = store.webhook_deliveries(project, failed, limit).await?;
            for d in &deliveries {
                let mut line = json!({
                    "id": d.id,
                    "webhookId": kyc_webhooks::event::webhook_id(d.event_id),
                    "endpointId": d.endpoint_id,
                    "type": d.event_type,
                    "status": d.status,
                    "attempts": d.attempts,
                    "lastError": d.last_error,
                    "createdAt": rfc3339(d.created_at),
                });
                if attempts {
                    let list: Vec<serde_json::Value> = store
                        .webhook_attempts(d.id)
                        .await?
                        .into_iter()
                        .map(|a| {
                            json!({
                                "at": rfc3339(a.at),
                                "status": a.status_code,
                                "latencyMs": a.latency_ms,
                                "error": a.error,
                                "responseBody": a.response_body,
                            })
                        })
                        .collect();
                    line["attemptLog"] = list.into();
                }
                println!("{line}");
            }
            eprintln!("{} deliveries shown", deliveries.len());
        }
        WebhookCommand::Replay { project, ids } => {
            let selection = match project {
                Some(project) => ReplaySelection::FailedOf(project),
                None => ReplaySelection::Deliveries(ids),
            };
            let n = store.replay_webhook_deliveries(&selection).await?;
            println!("{}", json!({ "replayed": n }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn overlaps() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert!(parse_duration("24").is_err());
        assert!(parse_duration("1y").is_err());
    }
}
