//! The building blocks of the paths: content types, schema references, the
//! error answers and the headers several operations share.

use kyc_core::ErrorCode;
use kyc_core::wire::HEADER_API_KEY;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::{Ref, RefOr, Required};

pub(super) const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

pub(super) fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// `oneOf` the named component schemas.
pub(super) fn one_of(names: &[&str]) -> RefOr<Schema> {
    let mut one_of = OneOfBuilder::new();
    for name in names {
        one_of = one_of.item(schema_ref(name));
    }
    Schema::OneOf(one_of.build()).into()
}

pub(super) fn string() -> ObjectBuilder {
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
/// 403 `forbidden`: the answer of every authenticated operation to a missing,
/// empty or unknown `x-api-key`.
pub(super) fn forbidden() -> utoipa::openapi::response::Response {
    error(
        &[ErrorCode::Forbidden],
        "forbidden: x-api-key missing, empty or unknown",
    )
}

pub(super) fn error(codes: &[ErrorCode], description: &str) -> utoipa::openapi::response::Response {
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
pub(super) fn common_errors(responses: ResponsesBuilder) -> ResponsesBuilder {
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

pub(super) fn api_key_header() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(HEADER_API_KEY)
        .parameter_in(ParameterIn::Header)
        .required(Required::True)
        .description(Some("Project API key (`docs/api.md` §1)"))
        .schema(Some(string()))
        .build()
}

pub(super) fn plain_text(description: &str, example: &str) -> utoipa::openapi::response::Response {
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
