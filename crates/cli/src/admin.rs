//! `kycctl project|admin|key …`: tenant management. Output meant for scripts goes
//! to stdout as JSON; human remarks go to stderr.

use clap::{Subcommand, ValueEnum};
use kyc_config::Settings;
use kyc_store::Store;
use secrecy::ExposeSecret;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project; prints {"projectId", "apiKey"} once (only a digest is kept).
    Create {
        #[arg(long)]
        name: String,
        /// Require encrypted request bodies (`docs/api.md` §7).
        #[arg(long, value_enum)]
        encryption: Option<Encryption>,
    },
    /// Refuse the project's submissions with `invalid_project`.
    Disable {
        #[arg(value_parser = crate::project_id)]
        id: Uuid,
    },
    /// Accept the project's submissions again.
    Enable {
        #[arg(value_parser = crate::project_id)]
        id: Uuid,
    },
    /// Require encrypted request bodies (`--required`) or accept plain ones too
    /// (`--optional`).
    SetEncryption {
        #[arg(value_parser = crate::project_id)]
        id: Uuid,
        /// Refuse plain bodies with `invalid_payload` (`docs/api.md` §7).
        #[arg(
            long,
            conflicts_with = "optional",
            required_unless_present = "optional"
        )]
        required: bool,
        /// Accept plain and encrypted bodies.
        #[arg(long)]
        optional: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Encryption {
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
    /// Plain bodies allowed (encrypted ones too).
    #[value(name = "none")]
    None,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Register an administrator e-mail for a project.
    Add {
        #[arg(long, value_parser = crate::project_id)]
        project: Uuid,
        #[arg(long)]
        email: String,
    },
    /// Remove an administrator.
    Remove {
        #[arg(long, value_parser = crate::project_id)]
        project: Uuid,
        #[arg(long)]
        email: String,
    },
    /// List a project's administrators.
    List {
        #[arg(long, value_parser = crate::project_id)]
        project: Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Give a project a new API key; prints it once. The old key keeps working
    /// for the grace period, then stops (within the directory TTL, default 5 s).
    Rotate {
        #[arg(long, value_parser = crate::project_id)]
        project: Uuid,
        /// How long the old key keeps working, e.g. `90s`, `15m`, `2h`, `7d`
        /// (default `0s`: it stops at once).
        #[arg(long, value_parser = parse_grace, default_value = "0s")]
        grace: Duration,
    },
}

fn store(settings: &Settings) -> anyhow::Result<Store> {
    Ok(Store::connect_lazy(
        settings.database.url.expose_secret(),
        2,
    )?)
}

pub async fn project(settings: &Settings, command: ProjectCommand) -> anyhow::Result<()> {
    let store = store(settings)?;
    match command {
        ProjectCommand::Create { name, encryption } => {
            let required = matches!(encryption, Some(Encryption::Aes256Gcm));
            let (project, key) = store.create_project(&name, required).await?;
            println!(
                "{}",
                serde_json::json!({ "projectId": project.id, "apiKey": key.expose() })
            );
            eprintln!("store the API key now: it is not shown again");
        }
        ProjectCommand::Disable { id } => {
            store.set_project_disabled(id, true).await?;
            eprintln!("project {id} disabled");
        }
        ProjectCommand::Enable { id } => {
            store.set_project_disabled(id, false).await?;
            eprintln!("project {id} enabled");
        }
        ProjectCommand::SetEncryption { id, required, .. } => {
            store.set_encryption_required(id, required).await?;
            let what = if required {
                "requires encrypted bodies"
            } else {
                "accepts plain bodies"
            };
            eprintln!("project {id} {what} (running processes within the directory TTL)");
        }
    }
    Ok(())
}

pub async fn admin(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
    let store = store(settings)?;
    match command {
        AdminCommand::Add { project, email } => {
            anyhow::ensure!(
                kyc_core::types::Email::parse(email.trim()).is_some(),
                "not an e-mail address: {email}"
            );
            store.add_admin(project, email.trim()).await?;
            eprintln!("admin added");
        }
        AdminCommand::Remove { project, email } => {
            store.remove_admin(project, email.trim()).await?;
            eprintln!("admin removed");
        }
        AdminCommand::List { project } => {
            for email in store.admins(project).await? {
                println!("{email}");
            }
        }
    }
    Ok(())
}

pub async fn key(settings: &Settings, command: KeyCommand) -> anyhow::Result<()> {
    let store = store(settings)?;
    match command {
        KeyCommand::Rotate { project, grace } => {
            let key = store.rotate_key_with_grace(project, grace).await?;
            println!(
                "{}",
                serde_json::json!({ "projectId": project, "apiKey": key.expose() })
            );
            eprintln!("store the new API key now: it is not shown again");
            if grace.is_zero() {
                eprintln!("the old key stops working within the directory TTL");
            } else {
                eprintln!(
                    "the old key keeps working for {}s more, then stops within the directory TTL",
                    grace.as_secs()
                );
            }
        }
    }
    Ok(())
}

/// A grace period: a whole number with a unit, `ms`, `s`, `m`, `h` or `d`.
fn parse_grace(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?}: give a unit (ms, s, m, h, d), e.g. 15m"))?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: not a whole number followed by a unit"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: too long"))
}

#[cfg(test)]
mod tests {
    use super::parse_grace;
    use std::time::Duration;

    #[test]
    fn grace_periods_parse() {
        assert_eq!(parse_grace("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_grace("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_grace("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_grace("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_grace("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "15", "m", "1.5h", "-1s", "3w"] {
            assert!(parse_grace(bad).is_err(), "{bad}");
        }
    }
}
