//! `GET /openapi.json`: the contract as OpenAPI 3.1 (`docs/api.md` §9).
//!
//! Every route of the public listener (and of the operator listener, which is the
//! same listener unless `KYC__HTTP__OPERATOR_ADDR` is set) with its headers,
//! parameters, request body (plain or in the envelope of `docs/api.md` §7) and every
//! answer it can give: each error status with the error body and the codes that
//! status carries on that route. The paths are built here rather than with
//! `#[utoipa::path]`, so that the error answers come from one table.

use crate::routes::result::ResultBody;
use crate::routes::submit::{AcceptedBody, SuccessBody};
use kyc_core::ErrorCode;
use kyc_core::wire::HEADER_API_KEY;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::{Ref, RefOr, Required};
use utoipa::{Modify, OpenApi};

mod schemas;

use schemas::{EncryptedRequestDoc, EncryptedResponseDoc, ErrorBodyDoc, SubmissionRequest};

/// The OpenAPI document served at `/openapi.json`.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "kyc-ingest submission migration API", version = "3"),
    components(schemas(
        SubmissionRequest,
        EncryptedRequestDoc,
        SuccessBody,
        AcceptedBody,
        EncryptedResponseDoc,
        ResultBody,
        ErrorBodyDoc
    )),
    modifiers(&Paths)
)]
pub struct ApiDoc;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// `oneOf` the named component schemas.
fn one_of(names: &[&str]) -> RefOr<Schema> {
    let mut one_of = OneOfBuilder::new();
    for name in names {
        one_of = one_of.item(schema_ref(name));
    }
    Schema::OneOf(one_of.build()).into()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// `Retry-After: 1` (`docs/api.md` §11), on 429 and 503.
fn retry_after() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(string().pattern(Some("^[0-9]+$"))))
        .description(Some("Seconds to wait before retrying (always 1)."))
        .build()
}

/// An error answer: the error body with `errorCode` one of `codes`.
fn error(codes: &[ErrorCode], description: &str) -> utoipa::openapi::response::Response {
    let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    let body = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("errorCode", string().enum_values(Some(names)))
        .property("message", string())
        .property(
            "parameters",
            ArrayBuilder::new().items(string()).min_items(Some(1)),
        )
        .required("errorCode")
        .required("message")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    let status = codes.first().map_or(500, |c| c.http_status());
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(JSON, ContentBuilder::new().schema(Some(body)).build());
    if status == 429 || status == 503 {
        response = response.header("Retry-After", retry_after());
    }
    response.build()
}

/// The errors every route can answer, whatever it does.
fn common_errors(responses: ResponsesBuilder) -> ResponsesBuilder {
    responses
        .response(
            "429",
            error(
                &[ErrorCode::RateLimited],
                "rate_limited: this client address (or, for submissions, the project) is over \
                 its rate",
            ),
        )
        .response(
            "500",
            error(
                &[ErrorCode::ProcessingError],
                "A handler failed; the body says `Internal error` and nothing more",
            ),
        )
        .response(
            "503",
            error(
                &[ErrorCode::Unavailable],
                "unavailable: the broker or the database could not be reached in time, or the \
                 request was not answered within the request timeout; retry (with the same \
                 Idempotency-Key)",
            ),
        )
}

fn api_key_header() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(HEADER_API_KEY)
        .parameter_in(ParameterIn::Header)
        .required(Required::True)
        .description(Some("Project API key (`docs/api.md` §1)"))
        .schema(Some(string()))
        .build()
}

fn plain_text(description: &str, example: &str) -> utoipa::openapi::response::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            TEXT,
            ContentBuilder::new()
                .schema(Some(string()))
                .example(Some(example.into()))
                .build(),
        )
        .build()
}

/// What another method on any of these paths gets.
const OTHER_METHODS: &str = "Any other method on this path is answered 405 `method_not_allowed` \
     (error body) with an `Allow` header; an unknown path is 404 `not_found`.";

/// `POST /v3/submission/migration`.
fn submit() -> utoipa::openapi::path::Operation {
    let request = RequestBodyBuilder::new()
        .required(Some(Required::True))
        .description(Some(
            "One record (`docs/api.md` §2), or the same record in the encryption envelope (`docs/api.md` §7). \
             At most `KYC__HTTP__BODY_LIMIT_BYTES` (default 65536) bytes, at most 64 keys.",
        ))
        .content(
            JSON,
            ContentBuilder::new()
                .schema(Some(one_of(&["SubmissionRequest", "EncryptedRequest"])))
                .build(),
        )
        .build();
    let idempotency_key = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "1–200 printable ASCII characters; the same key in the same project names the \
             same submission (`docs/api.md` §5)",
        ))
        .schema(Some(
            string()
                .min_length(Some(1))
                .max_length(Some(kyc_core::id::MAX_IDEMPOTENCY_KEY_CHARS))
                .pattern(Some("^[\\x20-\\x7E]+$")),
        ))
        .build();
    let wait = ParameterBuilder::new()
        .name("wait")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(
            "1–30: wait up to this many seconds for the worker's verdict (`docs/api.md` §5)",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(30)),
        ))
        .build();
    let responses = ResponsesBuilder::new()
        .response(
            "200",
            ResponseBuilder::new()
                .description(
                    "Durably queued (with ?wait: stored and accepted); encrypted when the \
                     request was",
                )
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(one_of(&["SuccessBody", "EncryptedResponse"])))
                        .build(),
                ),
        )
        .response(
            "202",
            ResponseBuilder::new()
                .description("?wait ran out: still queued; encrypted when the request was")
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(one_of(&["AcceptedBody", "EncryptedResponse"])))
                        .build(),
                ),
        )
        .response(
            "400",
            error(
                &[
                    ErrorCode::InvalidPayload,
                    ErrorCode::MissingData,
                    ErrorCode::InvalidParameter,
                    ErrorCode::InvalidFormat,
                    ErrorCode::InvalidProject,
                    ErrorCode::InvalidAdmin,
                    ErrorCode::ProcessingError,
                ],
                "The record, the envelope or an option was refused (`docs/api.md` §3 check order); \
                 with ?wait also the worker's rejection",
            ),
        )
        .response(
            "403",
            error(
                &[ErrorCode::Forbidden],
                "forbidden: x-api-key missing, empty or unknown",
            ),
        )
        .response(
            "408",
            error(
                &[ErrorCode::RequestTimeout],
                "request_timeout: the body did not arrive within the body timeout",
            ),
        )
        .response(
            "413",
            error(
                &[ErrorCode::PayloadTooLarge],
                "payload_too_large: the body is over the limit",
            ),
        );
    OperationBuilder::new()
        .operation_id(Some("submit"))
        .summary(Some("Submit one record"))
        .parameter(api_key_header())
        .parameter(idempotency_key)
        .parameter(wait)
        .request_body(Some(request))
        .responses(common_errors(responses))
        .build()
}

/// `GET /v3/submission/migration/{submissionId}`.
fn result() -> utoipa::openapi::path::Operation {
    let id = ParameterBuilder::new()
        .name("submissionId")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(
            "The id returned on submission; anything that is not one of the project's \
             processed submissions is 404",
        ))
        .schema(Some(string()))
        .build();
    let responses = ResponsesBuilder::new()
        .response(
            "200",
            ResponseBuilder::new()
                .description("Processed: accepted, or rejected with its code")
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(schema_ref("ResultBody")))
                        .build(),
                ),
        )
        .response(
            "400",
            error(
                &[ErrorCode::InvalidPayload],
                "invalid_payload: the path is not valid percent-encoded UTF-8",
            ),
        )
        .response(
            "403",
            error(
                &[ErrorCode::Forbidden],
                "forbidden: x-api-key missing, empty or unknown",
            ),
        )
        .response(
            "404",
            error(
                &[ErrorCode::NotFound],
                "not_found: not processed (yet), another project's, or not a UUID",
            ),
        );
    OperationBuilder::new()
        .operation_id(Some("getResult"))
        .summary(Some("A processed submission's result"))
        .parameter(api_key_header())
        .parameter(id)
        .responses(common_errors(responses))
        .build()
}

/// `GET` of an unauthenticated text or JSON endpoint.
fn plain_get(
    id: &str,
    summary: &str,
    ok: utoipa::openapi::response::Response,
    unavailable: Option<&str>,
) -> utoipa::openapi::path::Operation {
    let mut responses = common_errors(ResponsesBuilder::new().response("200", ok));
    if let Some(description) = unavailable {
        responses = responses.response("503", error(&[ErrorCode::Unavailable], description));
    }
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .responses(responses)
        .build()
}

fn item(method: HttpMethod, operation: utoipa::openapi::path::Operation) -> PathItem {
    let mut item = PathItem::new(method, operation);
    item.description = Some(OTHER_METHODS.to_owned());
    item
}

/// Every route, built from the functions above.
struct Paths;

impl Modify for Paths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let openapi_doc = ResponseBuilder::new()
            .description("This document (OpenAPI 3.1)")
            .content(
                JSON,
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                    .build(),
            )
            .build();
        openapi.paths = PathsBuilder::new()
            .path("/v3/submission/migration", item(HttpMethod::Post, submit()))
            .path(
                "/v3/submission/migration/{submissionId}",
                item(HttpMethod::Get, result()),
            )
            .path(
                "/healthz",
                item(
                    HttpMethod::Get,
                    plain_get(
                        "healthz",
                        "Liveness: the process serves HTTP",
                        plain_text("Alive", "ok"),
                        None,
                    ),
                ),
            )
            .path(
                "/readyz",
                item(
                    HttpMethod::Get,
                    plain_get(
                        "readyz",
                        "Readiness: broker link up, database answering, not draining \
                         (on the operator listener when that is apart)",
                        plain_text("Ready", "ready"),
                        Some(
                            "unavailable: draining, broker unavailable or database \
                             unavailable (which one is logged)",
                        ),
                    ),
                ),
            )
            .path(
                "/metrics",
                item(
                    HttpMethod::Get,
                    plain_get(
                        "metrics",
                        "Prometheus metrics, text format (on the operator listener when \
                         that is apart)",
                        plain_text("Metrics", "kyc_intake_requests_total 0"),
                        None,
                    ),
                ),
            )
            .path(
                "/openapi.json",
                item(
                    HttpMethod::Get,
                    plain_get("openapi", "This document", openapi_doc, None),
                ),
            )
            .build();
    }
}
