//! `GET /v3/submission/migration/{submissionId}` (`docs/api.md` §6).

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use kyc_core::ErrorCode;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// A processed submission's result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultBody {
    /// The submission asked about.
    pub submission_id: Uuid,
    /// `accepted` or `rejected`.
    pub status: &'static str,
    /// Why it was rejected; absent when accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub error_code: Option<ErrorCode>,
    /// The error message of `docs/api.md` §3; absent when accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the intake received it.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: OffsetDateTime,
    /// When a worker stored the outcome.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub processed_at: OffsetDateTime,
    /// When it was erased (`docs/api.md` §15); absent unless it was.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<OffsetDateTime>,
    /// The kinds of image stored for it (`docs/api.md` §16), in the API's order.
    #[schema(value_type = Vec<String>)]
    pub images: Vec<kyc_core::wire::ImageKind>,
}

/// The caller's own submission, or 404 `not_found` — also for another project's
/// id and for ids that are not UUIDs, so ids of other tenants cannot be probed.
pub async fn get_result(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ResultBody>, ApiError> {
    let (project, _) = app.authenticate(&headers).await?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::code(ErrorCode::NotFound))?;
    let found = app
        .directory
        .store()
        .find_result(project.id, id)
        .await
        .map_err(|e| ApiError::lookup("result", e))?;
    let stored = found.ok_or(ApiError::code(ErrorCode::NotFound))?;
    let images = app
        .directory
        .store()
        .image_kinds(stored.id)
        .await
        .map_err(|e| ApiError::lookup("images", e))?;
    Ok(Json(ResultBody {
        submission_id: stored.id,
        status: if stored.verdict.accepted {
            "accepted"
        } else {
            "rejected"
        },
        error_code: stored.verdict.error_code,
        message: stored.verdict.message,
        received_at: stored.received_at,
        processed_at: stored.processed_at,
        deleted_at: stored.deleted_at,
        images,
    }))
}
