//! `PATCH /v3/submission` (`docs/api.md` §15): corrects fields of a stored
//! submission, durably, with its history and a `submission.updated` event.
//!
//! Checks, in order: authentication and rate limit → size → envelope and JSON →
//! the body's keys (`invalid_parameter`), missing `submissionId`/`admin`/`data`
//! and an empty `data` (`missing_data`) → `admin`'s and the fields' formats
//! (`invalid_format`, by the rules of the migration endpoint) → project →
//! admin (`invalid_admin`) → the submission (`invalid_submission`).

use super::lifecycle::{caller, check_admin, respond};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use http_body_util::{BodyExt, Limited};
use kyc_core::envelope::{self, EncryptionPolicy};
use kyc_core::submission::{CORRECTABLE, Entry, RawField, validate_fields};
use kyc_core::{ErrorCode, Rejection};
use kyc_store::lifecycle::correct::{CorrectError, Correction};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// `{"message": "success"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CorrectedBody {
    /// `success`.
    pub message: &'static str,
}

/// The body's keys.
const KEYS: [&str; 3] = ["submissionId", "admin", "data"];

/// Corrects a stored submission of the caller's project.
pub async fn correct(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (project, api_key) = caller(&app, &headers).await?;
    let bytes = match tokio::time::timeout(
        app.body_timeout,
        Limited::new(body, app.body_limit).collect(),
    )
    .await
    {
        Err(_) => return Err(ApiError::code(ErrorCode::RequestTimeout)),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(ApiError::code(ErrorCode::PayloadTooLarge));
        }
        Ok(Err(_)) => return Err(ApiError::code(ErrorCode::InvalidPayload)),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let policy = if project.encryption_required {
        EncryptionPolicy::Required
    } else {
        EncryptionPolicy::Optional
    };
    let opened = envelope::open(&bytes, api_key, policy)?;
    let entries = opened.raw.entries();
    if let Some(entry) = entries.iter().find(|e| !KEYS.contains(&e.key())) {
        return Err(Rejection::invalid_parameter(entry.key()).into());
    }
    let get = |name: &str| entries.iter().find(|e| e.key() == name).map(|e| &e.value);
    let missing: Vec<String> = KEYS
        .iter()
        .filter(|k| get(k).is_none_or(|v| v.as_text().is_some_and(|s| s.trim().is_empty())))
        .map(|k| (*k).to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(Rejection::missing(missing).into());
    }
    let data = match get("data") {
        Some(RawField::Other(Value::Object(map))) if map.is_empty() => {
            return Err(Rejection::missing(vec!["data".into()]).into());
        }
        // Parsed again for document order and refused duplicates, as a body is.
        Some(RawField::Other(Value::Object(_))) => data_entries(opened.plain(&bytes))?,
        _ => return Err(Rejection::invalid_format("data").into()),
    };
    let admin = get("admin").and_then(RawField::as_text).unwrap_or_default();
    if kyc_core::types::Email::parse(admin.trim()).is_none() {
        return Err(Rejection::invalid_format("admin").into());
    }
    let fields = validate_fields(&data, &CORRECTABLE, kyc_core::submission::today_utc())?;
    if project.disabled {
        return Err(ApiError::code(ErrorCode::InvalidProject));
    }
    let admin = check_admin(&app, &project, "admin", admin).await?;
    // An id that is not a UUID is no submission of anyone's: like an unknown one.
    let submission_id = get("submissionId")
        .and_then(RawField::as_text)
        .and_then(|s| Uuid::parse_str(s.trim()).ok())
        .ok_or(ApiError::code(ErrorCode::InvalidSubmission))?;
    let correction = Correction {
        project_id: project.id,
        submission_id,
        admin: &admin,
        fields,
    };
    match app
        .directory
        .store()
        .correct(&correction, &app.data_key)
        .await
    {
        Ok(corrected) => {
            if !corrected.changed.is_empty() {
                app.outbox.notify_one();
            }
        }
        Err(CorrectError::Unknown) => return Err(ApiError::code(ErrorCode::InvalidSubmission)),
        Err(CorrectError::InvalidFormat(field)) => {
            return Err(Rejection::invalid_format(field).into());
        }
        Err(CorrectError::Store(e)) => return Err(ApiError::lookup("correction", e)),
    }
    Ok(respond(
        StatusCode::OK,
        &CorrectedBody { message: "success" },
        opened.was_encrypted.then_some(api_key),
    ))
}

/// The `data` object's entries in document order, duplicates refused.
fn data_entries(plain: &[u8]) -> Result<Vec<Entry>, Rejection> {
    #[derive(serde::Deserialize)]
    struct Outer {
        data: kyc_core::submission::RawSubmission,
    }
    let outer: Outer =
        serde_json::from_slice(plain).map_err(|_| Rejection::new(ErrorCode::InvalidPayload))?;
    Ok(outer.data.entries().to_vec())
}
