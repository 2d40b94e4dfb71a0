//! `kycctl project|admin|key …`: tenant management. Output meant for scripts goes
//! to stdout as JSON; human remarks go to stderr.

use clap::{Subcommand, ValueEnum};
use kyc_config::Settings;
use kyc_store::Store;
use secrecy::ExposeSecret;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project; prints {"projectId", "apiKey"} once (only a digest is kept).
    Create {
        #[arg(long)]
        name: String,
        /// Require encrypted request bodies (spec §7).
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
    /// Replace a project's API key; prints the new one. The old key stops working
    /// once caches expire (directory TTL, default 5 s).
    Rotate {
        #[arg(long, value_parser = crate::project_id)]
        project: Uuid,
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
        KeyCommand::Rotate { project } => {
            let key = store.rotate_key(project).await?;
            println!(
                "{}",
                serde_json::json!({ "projectId": project, "apiKey": key.expose() })
            );
            eprintln!("the old key stops working within the directory TTL");
        }
    }
    Ok(())
}
