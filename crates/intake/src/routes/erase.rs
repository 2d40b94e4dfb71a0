//! `DELETE /v3/submission` and `DELETE /v3/submission/partial`
//! (`docs/api.md` §15): erasure of a submission's personal data, durably, with
//! a `submission.deleted` event.
//!
//! A full erasure of an id with no stored submission of the project answers
//! `invalid_submission` — and still records the erasure, so that a create of
//! that id still in the queue is never stored (`docs/api.md` §15, "Erasing a
//! submission not stored yet").

use super::lifecycle::{caller, check_admin, param, query_pairs, respond};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kyc_core::{ErrorCode, Rejection};
use kyc_store::Project;
use kyc_store::lifecycle::erase::{EraseError, Erasure, Group};
use serde::Serialize;
use uuid::Uuid;

/// `{"message": "success", "content": "Submission ID deleted successfully.", "statusCode": 200}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedBody {
    /// `success`.
    pub message: &'static str,
    /// `Submission ID deleted successfully.`
    pub content: &'static str,
    /// `200`.
    pub status_code: u16,
}

/// Erases a whole submission: `?submission_id=ID[&admin_name=E]`.
pub async fn erase(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (project, api_key) = caller(&app, &headers).await?;
    let pairs = query_pairs(query.as_deref(), &["submission_id", "admin_name"])?;
    run(&app, &project, api_key, &pairs, None).await
}

/// Erases named groups of a submission:
/// `?submission_id=ID&fields=data,email,…[&admin_name=E]`.
pub async fn erase_partial(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (project, api_key) = caller(&app, &headers).await?;
    let pairs = query_pairs(query.as_deref(), &["submission_id", "fields", "admin_name"])?;
    let fields = param(&pairs, "fields").unwrap_or_default();
    let mut groups = Vec::new();
    for name in fields.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let group = Group::parse(name).ok_or_else(|| Rejection::invalid_parameter(name))?;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    if groups.is_empty() {
        return Err(Rejection::missing(vec!["fields".into()]).into());
    }
    run(&app, &project, api_key, &pairs, Some(groups)).await
}

async fn run(
    app: &AppState,
    project: &Project,
    api_key: &str,
    pairs: &[(String, String)],
    groups: Option<Vec<Group>>,
) -> Result<Response, ApiError> {
    let id = param(pairs, "submission_id")
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| Rejection::missing(vec!["submission_id".into()]))?;
    let admin = match param(pairs, "admin_name").filter(|v| !v.trim().is_empty()) {
        Some(admin) => Some(check_admin(app, project, "admin_name", admin).await?),
        None => None,
    };
    // Not a UUID: no submission of anyone's, answered like an unknown id.
    let submission_id =
        Uuid::parse_str(id.trim()).map_err(|_| ApiError::code(ErrorCode::InvalidSubmission))?;
    let erasure = Erasure {
        project_id: project.id,
        submission_id,
        admin: admin.as_deref(),
        groups,
    };
    match app.directory.store().erase_returning_images(&erasure).await {
        Ok(objects) => {
            app.outbox.notify_one();
            // After the commit: no row points at them any more.
            for key in objects {
                app.images.store.delete_best_effort(&key).await;
            }
        }
        Err(EraseError::Unknown) => return Err(ApiError::code(ErrorCode::InvalidSubmission)),
        Err(EraseError::Store(e)) => return Err(ApiError::lookup("erasure", e)),
    }
    let body = DeletedBody {
        message: "success",
        content: "Submission ID deleted successfully.",
        status_code: 200,
    };
    Ok(respond(
        StatusCode::OK,
        &body,
        project.encryption_required.then_some(api_key),
    ))
}
