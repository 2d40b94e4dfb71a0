//! `PUT /v3/submission/image` and `GET /v3/submission/migration/{id}/images/{kind}`
//! (`docs/api.md` §16, "Images").
//!
//! The upload is a claim check: after the checks of §16 (authentication, rate
//! limit, size, multipart, missing parts, formats, project and admin, the
//! submission stored for this project), each image is sealed under the data
//! key (`kyc_images::ImageKeys`), written to the image store under a random
//! object key, and only a small transit-sealed reference is published to the
//! workers, with a confirm. 200 comes after every reference of the call is
//! confirmed. An object whose reference was not confirmed is deleted at once
//! (best effort; `kycctl images gc` removes what a crash leaves behind).
//! Image bytes and file names are never logged.

use crate::error::{ApiError, Unavailable};
use crate::routes::submit::read_limited;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use kyc_bus::{Outgoing, headers, persistent};
use kyc_core::transit::SealedIds;
use kyc_core::types::IdType;
use kyc_core::wire::{
    IMAGE_REFERENCE_TYPE, IMAGE_ROUTING_KEY, ImageKind, ImageReferenceV1, SubmissionHeadersV2,
    TRANSIT_CONTENT_TYPE,
};
use kyc_core::{ErrorCode, Rejection};
use kyc_images::{ImageKeys, ImageStore};
use serde::Serialize;
use time::OffsetDateTime;
use tracing::Instrument;
use uuid::Uuid;

/// The image store, the keys that seal into it, and the limits of an upload.
#[derive(Debug, Clone)]
pub struct Images {
    /// Where sealed images are written.
    pub store: ImageStore,
    /// The data keyring as images use it.
    pub keys: ImageKeys,
    /// One image, decoded (`KYC__IMAGES__MAX_IMAGE_BYTES`).
    pub max_image_bytes: usize,
    /// One request body (`KYC__IMAGES__MAX_REQUEST_BYTES`).
    pub max_request_bytes: usize,
}

/// `200 {"message": "complete to update image."}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImageUpdatedBody {
    /// `complete to update image.`
    pub message: &'static str,
}

/// What the multipart body held.
#[derive(Debug, Default)]
struct Form {
    submission_id: Option<String>,
    admin: Option<String>,
    id_type: Option<String>,
    images: Vec<(ImageKind, Bytes)>,
}

/// One image of the call, checked and ready to store.
struct Upload {
    kind: ImageKind,
    plain: Bytes,
    content_type: &'static str,
    digest: String,
}

/// `PUT /v3/submission/image`: add or overwrite images of one stored submission.
pub async fn put_image(
    State(app): State<AppState>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (project, _) = app.authenticate(&request_headers).await?;
    if !app.rate_limit.allow(project.id) {
        return Err(ApiError::code(ErrorCode::RateLimited));
    }
    let boundary = request_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or(ApiError::code(ErrorCode::InvalidPayload))?;
    let images = &app.images;
    let bytes = read_limited(body, images.max_request_bytes, app.body_timeout).await?;
    let form = parse_form(bytes, boundary, images.max_image_bytes).await?;

    // Missing parts, all named; then the formats.
    let mut missing = Vec::new();
    if form.submission_id.as_deref().is_none_or(str::is_empty) {
        missing.push("submissionId".to_owned());
    }
    if form.admin.as_deref().is_none_or(str::is_empty) {
        missing.push("admin".to_owned());
    }
    let id_document = form.images.iter().any(|(k, _)| k.is_id_document());
    if id_document && form.id_type.as_deref().is_none_or(str::is_empty) {
        missing.push("idType".to_owned());
    }
    if !missing.is_empty() {
        return Err(Rejection::missing(missing).into());
    }
    if form.images.is_empty() {
        return Err(ApiError::code(ErrorCode::InvalidData));
    }
    if let Some(id_type) = form.id_type.as_deref().filter(|t| !t.is_empty())
        && IdType::parse(id_type).is_none()
    {
        return Err(Rejection {
            code: ErrorCode::InvalidIdType,
            parameters: vec!["idType".to_owned()],
        }
        .into());
    }
    let mut uploads = Vec::with_capacity(form.images.len());
    for (kind, plain) in form.images {
        let content_type = kyc_images::sniff(&plain).ok_or_else(|| Rejection {
            code: ErrorCode::InvalidData,
            parameters: vec![kind.as_str().to_owned()],
        })?;
        let digest = images.keys.digest(&plain);
        uploads.push(Upload {
            kind,
            plain,
            content_type,
            digest,
        });
    }
    // Not a UUID cannot be a stored submission: the same answer as unknown.
    let submission_id = form
        .submission_id
        .as_deref()
        .and_then(|id| Uuid::try_parse(id).ok())
        .ok_or(ApiError::code(ErrorCode::InvalidSubmission))?;
    let admin = form.admin.unwrap_or_default();

    let span =
        tracing::info_span!("images", submission_id = %submission_id, project_id = %project.id);
    async move {
        if project.disabled {
            return Err(ApiError::code(ErrorCode::InvalidProject));
        }
        let is_admin = app
            .directory
            .is_admin(project.id, &admin)
            .await
            .map_err(|e| ApiError::lookup("admin", e))?;
        if !is_admin {
            return Err(ApiError::code(ErrorCode::InvalidAdmin));
        }
        let stored = app
            .directory
            .store()
            .image_upload_target(project.id, submission_id)
            .await
            .map_err(|e| ApiError::lookup("submission", e))?
            .ok_or(ApiError::code(ErrorCode::InvalidSubmission))?;
        // The same image of the same kind again: nothing to write or publish.
        uploads.retain(|u| !stored.contains(&(u.kind, u.digest.clone())));
        let received_at = OffsetDateTime::now_utc();
        store_all(&app, project.id, submission_id, received_at, uploads).await?;
        let json = [(header::CONTENT_TYPE, "application/json")];
        let body = serde_json::to_vec(&ImageUpdatedBody {
            message: "complete to update image.",
        })
        .unwrap_or_default();
        Ok((StatusCode::OK, json, body).into_response())
    }
    .instrument(span)
    .await
}

/// Writes every upload's sealed object, then publishes every reference; on any
/// failure deletes the objects whose reference was not confirmed.
async fn store_all(
    app: &AppState,
    project_id: Uuid,
    submission_id: Uuid,
    received_at: OffsetDateTime,
    uploads: Vec<Upload>,
) -> Result<(), ApiError> {
    let images = &app.images;
    let (references, sealed): (Vec<ImageReferenceV1>, Vec<Vec<u8>>) = uploads
        .into_iter()
        .map(|u| {
            let object_key = kyc_images::new_object_key();
            let sealed = images
                .keys
                .seal(&object_key, submission_id, u.kind, &u.plain);
            let reference = ImageReferenceV1 {
                submission_id,
                project_id,
                kind: u.kind,
                object_key,
                digest: u.digest,
                size: u.plain.len() as u64,
                content_type: u.content_type.to_owned(),
                key_id: images.keys.id().to_owned(),
                received_at,
            };
            (reference, sealed)
        })
        .unzip();
    let written = futures_util::future::join_all(
        references
            .iter()
            .zip(sealed)
            .map(|(r, sealed)| images.store.put(&r.object_key, sealed)),
    )
    .await;
    if let Some(Err(e)) = written.iter().find(|w| w.is_err()) {
        tracing::warn!(error = %e, "image store write failed");
        let unavailable = ApiError::Unavailable(Unavailable::Images(e.to_string()));
        for (r, w) in references.iter().zip(&written) {
            if w.is_ok() {
                images.store.delete_best_effort(&r.object_key).await;
            }
        }
        return Err(unavailable);
    }
    let published =
        futures_util::future::join_all(references.iter().map(|r| publish(app, r))).await;
    let mut failure = None;
    for (r, outcome) in references.iter().zip(published) {
        if let Err(e) = outcome {
            images.store.delete_best_effort(&r.object_key).await;
            failure.get_or_insert(e);
        }
    }
    match failure {
        Some(e) => Err(e),
        None => {
            metrics::counter!("kyc_intake_images_total").increment(references.len() as u64);
            Ok(())
        }
    }
}

/// Publishes one reference, transit-sealed, persistent and mandatory, and waits
/// for the confirm.
async fn publish(app: &AppState, reference: &ImageReferenceV1) -> Result<(), ApiError> {
    let ids = SealedIds {
        submission_id: reference.submission_id,
        project_id: reference.project_id,
        received_at: reference.received_at,
        idempotency_key: None,
    };
    let plain = serde_json::to_vec(reference).unwrap_or_default();
    let sealed = app.transit.seal_image(&ids, &plain);
    let wire_headers = SubmissionHeadersV2 {
        submission_id: Some(ids.submission_id),
        project_id: Some(ids.project_id),
        transit_key_id: Some(&sealed.key_id),
        received_at: Some(ids.received_at),
        traceparent: crate::trace::current(),
        ..SubmissionHeadersV2::default()
    };
    let properties = persistent()
        .with_content_type(TRANSIT_CONTENT_TYPE.into())
        .with_type(IMAGE_REFERENCE_TYPE.into())
        .with_headers(headers::encode(&wire_headers));
    let exchange = app.topology.submissions_exchange();
    app.publisher
        .publish(Outgoing {
            exchange: &exchange,
            routing_key: IMAGE_ROUTING_KEY,
            payload: &sealed.body,
            properties,
            mandatory: true,
        })
        .await
        .map_err(ApiError::from)
}

/// Reads the parts: text parts `submissionId`, `admin`, `idType`; image parts
/// as Base64 text or as files. A part named twice, unreadable Base64 or a
/// broken body is `invalid_payload`; an image over `max_image` decoded bytes is
/// 413. Other parts are ignored.
async fn parse_form(bytes: Bytes, boundary: String, max_image: usize) -> Result<Form, ApiError> {
    let invalid = || ApiError::code(ErrorCode::InvalidPayload);
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(bytes) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut form = Form::default();
    let mut seen: Vec<String> = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(|_| invalid())? {
        let Some(name) = field.name().map(str::to_owned) else {
            continue;
        };
        if seen.contains(&name) {
            return Err(invalid());
        }
        seen.push(name.clone());
        let is_file = field.file_name().is_some();
        let data = field.bytes().await.map_err(|_| invalid())?;
        let text = |data: Bytes| String::from_utf8(data.to_vec()).map_err(|_| invalid());
        match name.as_str() {
            "submissionId" => form.submission_id = Some(text(data)?.trim().to_owned()),
            "admin" => form.admin = Some(text(data)?.trim().to_owned()),
            "idType" => form.id_type = Some(text(data)?.trim().to_owned()),
            other => {
                let Some(kind) = ImageKind::parse(other) else {
                    continue;
                };
                let plain = if is_file {
                    data
                } else {
                    decode_base64(&data, max_image)?
                };
                if plain.len() > max_image {
                    return Err(ApiError::code(ErrorCode::PayloadTooLarge));
                }
                form.images.push((kind, plain));
            }
        }
    }
    Ok(form)
}

/// Standard Base64 (white space ignored, an optional `data:…;base64,` prefix
/// dropped). Text that would decode to more than `max` bytes is 413 without
/// decoding it.
fn decode_base64(text: &[u8], max: usize) -> Result<Bytes, ApiError> {
    let invalid = || ApiError::code(ErrorCode::InvalidPayload);
    let mut text: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if text.starts_with(b"data:")
        && let Some(comma) = text.iter().position(|&b| b == b',')
        && text[..comma].ends_with(b";base64")
    {
        text.drain(..=comma);
    }
    if text.len() / 4 * 3 > max + 3 {
        return Err(ApiError::code(ErrorCode::PayloadTooLarge));
    }
    BASE64.decode(&text).map(Bytes::from).map_err(|_| invalid())
}

/// `GET /v3/submission/migration/{id}/images/{kind}`: the opened image, with
/// its content type, to the owning project; 404 `not_found` for anything else
/// (another project's, unknown, erased, no such image, not a kind).
pub async fn get_image(
    State(app): State<AppState>,
    request_headers: HeaderMap,
    Path((id, kind)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (project, _) = app.authenticate(&request_headers).await?;
    let not_found = || ApiError::code(ErrorCode::NotFound);
    let id = Uuid::try_parse(&id).map_err(|_| not_found())?;
    let kind = ImageKind::parse(&kind).ok_or_else(not_found)?;
    let stored = app
        .directory
        .store()
        .stored_image(project.id, id, kind)
        .await
        .map_err(|e| ApiError::lookup("image", e))?
        .ok_or_else(not_found)?;
    let sealed = app
        .images
        .store
        .get(&stored.object_key)
        .await
        .map_err(|e| {
            tracing::error!(object_key = %stored.object_key, error = %e, "image object unreadable");
            ApiError::Unavailable(Unavailable::Images(e.to_string()))
        })?;
    let plain = app
        .images
        .keys
        .open(&stored.key_id, &stored.object_key, id, kind, &sealed)
        .ok_or_else(|| {
            tracing::error!(object_key = %stored.object_key, key_id = %stored.key_id, "image object does not open with the data keyring");
            ApiError::Unavailable(Unavailable::Images("image does not open".to_owned()))
        })?;
    let content_type = HeaderValue::from_str(&stored.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        plain,
    )
        .into_response())
}
