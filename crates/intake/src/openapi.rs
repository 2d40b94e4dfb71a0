//! `GET /openapi.json`: the contract as OpenAPI 3.1 (spec §9).

use crate::routes::result::ResultBody;
use crate::routes::submit::{AcceptedBody, SuccessBody};
use kyc_core::submission::{FIELDS, FieldSpec, Rule};
use kyc_core::wire::HEADER_API_KEY;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, Required};
use utoipa::{Modify, OpenApi};

/// The request body, built from the field table of `kyc-core` (every value is a
/// string, spec §2): one property per field with its rule — `maxLength` for
/// text, `enum` for the closed sets, `format` for e-mail addresses, dates and IP
/// addresses, a `pattern` for country codes — and the required fields. The rules
/// themselves live in `kyc-core`, which parses the raw JSON; this is their
/// description.
struct SubmissionRequest;

impl utoipa::PartialSchema for SubmissionRequest {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "One record. Values are strings, trimmed before their rule is applied; \
                 an optional field sent empty counts as absent; any other key is refused.",
            ))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        for spec in &FIELDS {
            object = object.property(spec.name, field_schema(spec));
            if spec.required {
                object = object.required(spec.name);
            }
        }
        Schema::Object(object.build()).into()
    }
}

impl utoipa::ToSchema for SubmissionRequest {}

/// One field's property: a string with the field's rule.
fn field_schema(spec: &FieldSpec) -> Schema {
    let mut description: Vec<&str> = spec.doc.lines().map(str::trim).collect();
    let mut property = ObjectBuilder::new().schema_type(Type::String);
    property = match spec.rule {
        Rule::Text { max } => property.max_length(Some(max)),
        Rule::Email => property.format(Some(SchemaFormat::KnownFormat(KnownFormat::Email))),
        Rule::Date | Rule::PastDate => {
            property.format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        }
        // One format for either family: the field takes an IPv4 or IPv6 literal.
        Rule::Ip => property.format(Some(SchemaFormat::Custom("ip".to_owned()))),
        Rule::Country => property.pattern(Some("^[A-Za-z]{3}$")),
        Rule::KycStatus | Rule::IdType | Rule::Gender => {
            property.enum_values(spec.rule.accepted_values())
        }
    };
    if spec.sealed {
        description.push("Stored encrypted.");
    }
    description.retain(|line| !line.is_empty());
    if !description.is_empty() {
        property = property.description(Some(description.join(" ")));
    }
    Schema::Object(property.build())
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
    components(schemas(SubmissionRequest, SuccessBody, AcceptedBody, ResultBody, ErrorBodyDoc)),
    modifiers(&ApiKeyHeader)
)]
pub struct ApiDoc;

/// Adds the API key header, named by the wire schema, to every operation.
struct ApiKeyHeader;

impl Modify for ApiKeyHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                let header = ParameterBuilder::new()
                    .name(HEADER_API_KEY)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::True)
                    .description(Some("Project API key"))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build();
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .insert(0, header.into());
            }
        }
    }
}

/// Submit one record.
#[allow(dead_code)]
#[utoipa::path(
    post,
    path = "/v3/submission/migration",
    request_body = SubmissionRequest,
    params(
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
    ),
    responses(
        (status = 200, description = "Processed", body = ResultBody),
        (status = 404, description = "not_found", body = ErrorBodyDoc),
        (status = 403, description = "forbidden", body = ErrorBodyDoc),
    )
)]
fn result_doc() {}
