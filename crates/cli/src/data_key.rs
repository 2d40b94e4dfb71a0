//! `kycctl data-key`: the data keyring that seals identity and document numbers
//! at rest (`docs/operations.md`, "Rotating the data key").

use kyc_config::Settings;
use kyc_store::{DataKey, Store};
use secrecy::ExposeSecret;

#[derive(Debug, clap::Subcommand)]
pub enum DataKeyCommand {
    /// Seal every row sealed under an older key (or in the older format) again
    /// under the current key, a batch per transaction; safe to stop and rerun.
    Reseal {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
    /// How many rows are not yet under the current key (exits 1 if any).
    Status,
}

pub async fn run(settings: &Settings, command: DataKeyCommand) -> anyhow::Result<()> {
    let store = Store::connect_lazy(settings.database.url.expose_secret(), 2)?;
    let keyring = keyring(settings)?;
    match command {
        DataKeyCommand::Reseal { batch } => {
            anyhow::ensure!(batch > 0, "--batch must be at least 1");
            let mut done = 0u64;
            loop {
                let n = store.reseal_batch(&keyring, batch).await?;
                if n == 0 {
                    break;
                }
                done += n;
                eprintln!("resealed {done} rows");
            }
            // Webhook signing secrets are sealed with the data key too.
            let secrets = store.reseal_webhook_secrets(&keyring).await?;
            if secrets > 0 {
                eprintln!("resealed the signing secrets of {secrets} webhook endpoints");
            }
            println!(
                "{{\"resealed\": {done}, \"keyId\": {}}}",
                serde_json::Value::from(keyring.id())
            );
        }
        DataKeyCommand::Status => {
            let left = store.rows_to_reseal(&keyring).await?;
            let secrets = store.webhook_secrets_to_reseal(&keyring).await?;
            if secrets > 0 {
                eprintln!("{secrets} webhook endpoints have signing secrets under an older key");
            }
            println!(
                "{{\"rowsToReseal\": {left}, \"keyId\": {}}}",
                serde_json::Value::from(keyring.id())
            );
            if left > 0 || secrets > 0 {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// The configured keyring: the current data key and the older ones.
fn keyring(settings: &Settings) -> anyhow::Result<DataKey> {
    Ok(DataKey::keyring(
        &settings.data_key()?,
        &settings.crypto.older_data_keys()?,
    )?)
}
