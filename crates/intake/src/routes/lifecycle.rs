//! What the lifecycle endpoints (`docs/api.md` §15) share: the caller and its
//! budget, query strings, ARGOS time stamps, and answers sealed for projects
//! that require encryption.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kyc_core::envelope::{EncryptedResponse, EnvelopeKey};
use kyc_core::{ErrorCode, Rejection};
use kyc_store::Project;
use serde::Serialize;
use time::PrimitiveDateTime;
use time::macros::format_description;

/// The caller's project and API key, after authentication and the project's
/// rate limit — the same gate as submissions.
pub async fn caller<'h>(
    app: &AppState,
    headers: &'h HeaderMap,
) -> Result<(Project, &'h str), ApiError> {
    let (project, key) = app.authenticate(headers).await?;
    if !app.rate_limit.allow(project.id) {
        return Err(ApiError::code(ErrorCode::RateLimited));
    }
    Ok((project, key))
}

/// `body` as JSON with `status`, or — when `sealed` — inside the response
/// envelope of `docs/api.md` §7 (`{"isEncrypted": true, "data": …}`).
pub fn respond<T: Serialize>(status: StatusCode, body: &T, sealed: Option<&str>) -> Response {
    let json = serde_json::to_vec(body).unwrap_or_default();
    match sealed {
        Some(api_key) => {
            let envelope = EncryptedResponse {
                is_encrypted: true,
                data: EnvelopeKey::from_api_key(api_key).encrypt_to_base64(&json),
            };
            (status, Json(envelope)).into_response()
        }
        None => (status, [(header::CONTENT_TYPE, "application/json")], json).into_response(),
    }
}

/// The query string's pairs, decoded; a name given twice is `invalid_parameter`
/// naming it, and so is a name not in `known`.
pub fn query_pairs(
    query: Option<&str>,
    known: &[&str],
) -> Result<Vec<(String, String)>, Rejection> {
    let pairs: Vec<(String, String)> = match query {
        None => Vec::new(),
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|_| Rejection::new(ErrorCode::InvalidParameter))?,
    };
    for (i, (name, _)) in pairs.iter().enumerate() {
        if !known.contains(&name.as_str()) || pairs[..i].iter().any(|(n, _)| n == name) {
            return Err(Rejection::invalid_parameter(name));
        }
    }
    Ok(pairs)
}

/// The value of `name` in `pairs`, if given.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// ARGOS's time stamp, `YYYY-MM-DD-HH-MM-SS-ZZZ` (UTC, milliseconds).
const STAMP: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]-[hour]-[minute]-[second]-[subsecond digits:3]");

/// A UTC time as ARGOS writes it.
pub fn stamp(at: PrimitiveDateTime) -> String {
    at.format(&STAMP).unwrap_or_default()
}

/// An ARGOS time stamp read back; `None` if it is not one.
pub fn parse_stamp(s: &str) -> Option<PrimitiveDateTime> {
    PrimitiveDateTime::parse(s, &STAMP).ok()
}

/// The administrator named in a lifecycle request: an e-mail address
/// (`invalid_format` naming `field`) registered for the project (`invalid_admin`).
pub async fn check_admin(
    app: &AppState,
    project: &Project,
    field: &str,
    admin: &str,
) -> Result<String, ApiError> {
    let email = kyc_core::types::Email::parse(admin.trim())
        .ok_or_else(|| Rejection::invalid_format(field))?;
    let is_admin = app
        .directory
        .is_admin(project.id, email.as_str())
        .await
        .map_err(|e| ApiError::lookup("admin", e))?;
    if !is_admin {
        return Err(ApiError::code(ErrorCode::InvalidAdmin));
    }
    Ok(email.as_str().to_owned())
}
