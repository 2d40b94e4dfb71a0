//! `GET /openapi.json`: the contract as OpenAPI 3.1 (`docs/api.md` §9).
//!
//! Every route of the public listener (and of the operator listener, which is the
//! same listener unless `KYC__HTTP__OPERATOR_ADDR` is set) with its headers,
//! parameters, request body (plain or in the envelope of `docs/api.md` §7) and every
//! answer it can give: each error status with the error body and the codes that
//! status carries on that route. The paths are built here rather than with
//! `#[utoipa::path]`, so that the error answers come from one table.

use crate::routes::batch::{BatchResponse, BatchResult};
use crate::routes::correct::CorrectedBody;
use crate::routes::erase::DeletedBody;
use crate::routes::images::ImageUpdatedBody;
use crate::routes::list::{ItemData, Kyc, ListBody, ListItem, NextPageKey};
use crate::routes::result::ResultBody;
use crate::routes::submit::{AcceptedBody, SuccessBody};
use kyc_core::ErrorCode;
use utoipa::openapi::Required;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::{Modify, OpenApi};

mod answers;
mod batch;
mod images;
mod lifecycle;
mod schemas;

use answers::{
    JSON, api_key_header, common_errors, error, forbidden, one_of, plain_text, schema_ref, string,
};

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
        ErrorBodyDoc,
        lifecycle::CorrectionRequest,
        CorrectedBody,
        DeletedBody,
        ListBody,
        ListItem,
        Kyc,
        ItemData,
        NextPageKey,
        BatchResponse,
        BatchResult,
        ImageUpdatedBody
    )),
    modifiers(&Paths)
)]
pub struct ApiDoc;

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
        .response("403", forbidden())
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
        .response("403", forbidden())
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
                "/v3/submission/migration/batch",
                item(HttpMethod::Post, batch::submit_batch()),
            )
            .path(
                "/v3/submission/migration/{submissionId}",
                item(HttpMethod::Get, result()),
            )
            .path(
                "/v3/submission/image",
                item(HttpMethod::Put, images::put_image()),
            )
            .path(
                "/v3/submission/migration/{submissionId}/images/{kind}",
                item(HttpMethod::Get, images::get_image()),
            )
            .path("/v3/submission", {
                let mut path = item(HttpMethod::Get, lifecycle::list());
                path.patch = Some(lifecycle::correct());
                path.delete = Some(lifecycle::erase());
                path
            })
            .path(
                "/v3/submission/partial",
                item(HttpMethod::Delete, lifecycle::erase_partial()),
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
