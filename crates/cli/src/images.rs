//! `kycctl images gc`: removes image objects no row references.
//!
//! An object becomes an orphan when an upload died between writing it and the
//! broker's confirm of its reference, or when a delete after a commit failed
//! (`docs/api.md` §16). Every object of the image store that no row of
//! `submission_images` names and that is older than the grace period is
//! deleted. The grace protects references still in flight: an object written a
//! moment ago may have its reference queued but not yet recorded.

use kyc_config::Settings;
use kyc_images::ImageStore;
use kyc_store::Store;
use secrecy::ExposeSecret;
use std::collections::HashSet;
use std::time::Duration;
use time::OffsetDateTime;

/// `kycctl images …`.
#[derive(Debug, clap::Subcommand)]
pub enum ImagesCommand {
    /// Delete image objects that no row references and that are older than the
    /// grace period; prints each key removed.
    Gc {
        /// The grace period: younger objects stay (`30s`, `15m`, `1h`, `2d`).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        older_than: Duration,
    },
}

/// Runs an `images` subcommand.
pub async fn run(settings: &Settings, command: ImagesCommand) -> anyhow::Result<()> {
    match command {
        ImagesCommand::Gc { older_than } => {
            let store = Store::connect_lazy(settings.database.url.expose_secret(), 2)?;
            let images = ImageStore::from_settings(&settings.images)?;
            let removed = gc(&store, &images, older_than).await?;
            for key in &removed {
                println!("{key}");
            }
            eprintln!("removed {} unreferenced image object(s)", removed.len());
            Ok(())
        }
    }
}

/// Deletes the objects of `images` that no row of `store` references and that
/// were last written more than `older_than` ago; returns their keys.
pub async fn gc(
    store: &Store,
    images: &ImageStore,
    older_than: Duration,
) -> anyhow::Result<Vec<String>> {
    // Listed before the rows are read: an object whose row commits in between
    // is in the row set, never deleted as an orphan.
    let objects = images.list().await?;
    let referenced: HashSet<String> = store
        .referenced_image_objects()
        .await?
        .into_iter()
        .collect();
    let cutoff = OffsetDateTime::now_utc() - older_than;
    let mut removed = Vec::new();
    for object in objects {
        if object.last_modified <= cutoff && !referenced.contains(&object.key) {
            images.delete(&object.key).await?;
            removed.push(object.key);
        }
    }
    Ok(removed)
}
