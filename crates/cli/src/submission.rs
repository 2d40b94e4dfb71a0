//! `kycctl submission erase`: an erasure request for one person — every stored
//! submission of a project with that `userid` is erased as
//! `DELETE /v3/submission` erases one (`docs/api.md` §15), with a dry run that
//! only lists them.
//!
//! Each erasure commits its `submission.deleted` event to the outbox; a running
//! intake's relay publishes it.

use kyc_config::Settings;
use kyc_store::Store;
use kyc_store::lifecycle::erase::{EraseError, Erasure};
use secrecy::ExposeSecret;
use uuid::Uuid;

/// `kycctl submission …`.
#[derive(Debug, clap::Subcommand)]
pub enum SubmissionCommand {
    /// Erase every stored submission of one person (by `userid`) in a project.
    Erase {
        /// The project.
        #[arg(long)]
        project: Uuid,
        /// The person's `userid`, as the client sent it.
        #[arg(long)]
        userid: String,
        /// Only list what would be erased.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a `kycctl submission` command; prints one JSON object.
pub async fn run(settings: &Settings, command: SubmissionCommand) -> anyhow::Result<()> {
    match command {
        SubmissionCommand::Erase {
            project,
            userid,
            dry_run,
        } => {
            let ids = erase(settings, project, &userid, dry_run).await?;
            println!(
                "{}",
                serde_json::json!({"dryRun": dry_run, "submissions": ids, "count": ids.len()})
            );
            Ok(())
        }
    }
}

/// Erases (or with `dry_run` only finds) the project's undeleted submissions
/// stored with `userid`; their ids.
pub async fn erase(
    settings: &Settings,
    project_id: Uuid,
    userid: &str,
    dry_run: bool,
) -> anyhow::Result<Vec<Uuid>> {
    let store = Store::connect_lazy(settings.database.url.expose_secret(), 2)?;
    let ids = store.submissions_of_userid(project_id, userid).await?;
    if dry_run {
        return Ok(ids);
    }
    let mut erased = Vec::with_capacity(ids.len());
    for id in ids {
        let erasure = Erasure {
            project_id,
            submission_id: id,
            admin: None,
            groups: None,
        };
        match store.erase(&erasure).await {
            Ok(()) => erased.push(id),
            // Erased meanwhile by someone else: nothing left to do.
            Err(EraseError::Unknown) => {}
            Err(EraseError::Store(e)) => return Err(e.into()),
        }
    }
    Ok(erased)
}
