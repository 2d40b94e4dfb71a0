//! `GET /openapi.json`: the contract as OpenAPI 3.1 (spec §9).

use crate::routes::result::ResultBody;
use crate::routes::submit::{AcceptedBody, SuccessBody};
use utoipa::OpenApi;

/// The request body: every value is a string (spec §2). Documentation only: the
/// rules live in `kyc-core`, which parses the raw JSON itself.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[schema(as = SubmissionRequest)]
struct SubmissionRequest {
    /// Administrator e-mail registered for the project.
    admin: String,
    email: String,
    /// 1–200 characters.
    #[schema(rename = "fullName")]
    full_name: String,
    /// `YYYY-MM-DD`, not in the future.
    #[schema(rename = "birthDate")]
    birth_date: String,
    /// `approved` or `rejected`.
    #[schema(rename = "kycStatus")]
    kyc_status: String,
    #[schema(rename = "firstName")]
    first_name: Option<String>,
    #[schema(rename = "lastName")]
    last_name: Option<String>,
    /// `drivers_license` (alias `drvlic`), `government_id`, `passport`,
    /// `residence_permit`, `vehicle_registration_certificate`, `visa`, `aadhaar`, `pancard`.
    #[schema(rename = "idType")]
    id_type: Option<String>,
    /// ISO 3166-1 alpha-3.
    #[schema(rename = "issuingCountry")]
    issuing_country: Option<String>,
    /// ISO 3166-1 alpha-3.
    nationality: Option<String>,
    /// `female` or `male`.
    gender: Option<String>,
    #[schema(rename = "issueDate")]
    issue_date: Option<String>,
    /// Not before `issueDate`.
    #[schema(rename = "expireDate")]
    expire_date: Option<String>,
    /// IPv4 or IPv6 literal.
    #[schema(rename = "ipAddress")]
    ip_address: Option<String>,
    /// Stored encrypted.
    #[schema(rename = "identityNumber")]
    identity_number: Option<String>,
    /// Stored encrypted.
    #[schema(rename = "documentNumber")]
    document_number: Option<String>,
    address_city: Option<String>,
    address_country: Option<String>,
    address_state: Option<String>,
    address_street: Option<String>,
    address_full: Option<String>,
    cf1: Option<String>,
    cf2: Option<String>,
    cf3: Option<String>,
    userid: Option<String>,
}

/// `{"errorCode", "message", "parameters"?}`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[schema(as = ErrorBody)]
struct ErrorBodyDoc {
    /// One of the codes of spec §3.
    #[schema(rename = "errorCode")]
    error_code: String,
    message: String,
    parameters: Option<Vec<String>>,
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "kyc-ingest submission migration API", version = "3"),
    paths(submit_doc, result_doc),
    components(schemas(SubmissionRequest, SuccessBody, AcceptedBody, ResultBody, ErrorBodyDoc))
)]
pub struct ApiDoc;

/// Submit one record.
#[allow(dead_code)]
#[utoipa::path(
    post,
    path = "/v3/submission/migration",
    request_body = SubmissionRequest,
    params(
        ("x-api-key" = String, Header, description = "Project API key"),
        ("Idempotency-Key" = Option<String>, Header, description = "≤ 200 characters; same key, same submission id"),
        ("wait" = Option<u32>, Query, description = "1–30 seconds: wait until persisted"),
    ),
    responses(
        (status = 200, description = "Durably queued (or persisted with ?wait)", body = SuccessBody),
        (status = 202, description = "?wait ran out; still queued", body = AcceptedBody),
        (status = 400, description = "invalid_payload, missing_data, invalid_parameter, invalid_format, invalid_project, invalid_admin", body = ErrorBodyDoc),
        (status = 403, description = "forbidden", body = ErrorBodyDoc),
        (status = 413, description = "payload_too_large", body = ErrorBodyDoc),
        (status = 429, description = "rate_limited", body = ErrorBodyDoc),
        (status = 503, description = "unavailable", body = ErrorBodyDoc),
    )
)]
fn submit_doc() {}

/// A processed submission's result.
#[allow(dead_code)]
#[utoipa::path(
    get,
    path = "/v3/submission/migration/{submissionId}",
    params(
        ("submissionId" = String, Path, description = "The id returned on submission"),
        ("x-api-key" = String, Header, description = "Project API key"),
    ),
    responses(
        (status = 200, description = "Processed", body = ResultBody),
        (status = 404, description = "not_found", body = ErrorBodyDoc),
        (status = 403, description = "forbidden", body = ErrorBodyDoc),
    )
)]
fn result_doc() {}
