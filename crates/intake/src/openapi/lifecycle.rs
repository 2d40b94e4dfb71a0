//! The lifecycle paths of the OpenAPI document (`docs/api.md` §15):
//! `GET`, `PATCH`, `DELETE /v3/submission` and `DELETE /v3/submission/partial`.

use super::answers::{JSON, api_key_header, common_errors, error, one_of, string};
use super::schemas::field_schema;
use kyc_core::ErrorCode;
use kyc_core::submission::{CORRECTABLE, field_spec};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{
    Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, Required};

/// The body of `PATCH /v3/submission`, built from the field table like the
/// submission's: `data` holds the correctable fields, each with its rule.
pub(super) struct CorrectionRequest;

impl utoipa::PartialSchema for CorrectionRequest {
    fn schema() -> RefOr<Schema> {
        let mut data = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The fields to correct, under the rules of the migration endpoint; an empty \
                 value clears an optional field. At least one.",
            ))
            .min_properties(Some(1))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        for name in CORRECTABLE {
            if let Some((_, spec)) = field_spec(name) {
                data = data.property(name, field_schema(spec));
            }
        }
        let object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "submissionId",
                string().description(Some("A stored submission of the project")),
            )
            .property(
                "admin",
                string().description(Some("An administrator registered for the project")),
            )
            .property("data", data)
            .required("submissionId")
            .required("admin")
            .required("data")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        Schema::Object(object.build()).into()
    }
}

impl utoipa::ToSchema for CorrectionRequest {}

fn query(name: &str, required: bool, description: &str, schema: ObjectBuilder) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn ok(description: &str, schema: &str) -> utoipa::openapi::response::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            JSON,
            ContentBuilder::new()
                .schema(Some(one_of(&[schema, "EncryptedResponse"])))
                .build(),
        )
        .build()
}

fn forbidden() -> utoipa::openapi::response::Response {
    error(
        &[ErrorCode::Forbidden],
        "forbidden: x-api-key missing, empty or unknown",
    )
}

/// `GET /v3/submission`.
pub(super) fn list() -> Operation {
    let date = || string().description(Some("YYYY-MM-DD, UTC"));
    let responses = ResponsesBuilder::new()
        .response(
            "200",
            ok(
                "A page of the project's stored submissions, newest first; sealed for a \
                 project that requires encryption",
                "ListBody",
            ),
        )
        .response(
            "400",
            error(
                &[
                    ErrorCode::InvalidDate,
                    ErrorCode::InvalidFormat,
                    ErrorCode::InvalidParameter,
                    ErrorCode::MissingData,
                    ErrorCode::InvalidPayload,
                ],
                "A parameter was refused (`docs/api.md` §15)",
            ),
        )
        .response("403", forbidden());
    OperationBuilder::new()
        .operation_id(Some("listSubmissions"))
        .summary(Some("List the project's stored submissions"))
        .parameter(api_key_header())
        .parameter(query(
            "submission_id",
            false,
            "Only this submission",
            string(),
        ))
        .parameter(query("userid", false, "Only this userid", string()))
        .parameter(query("email", false, "Only this e-mail address", string()))
        .parameter(query(
            "start_date",
            false,
            "Created on or after this day",
            date(),
        ))
        .parameter(query(
            "end_date",
            false,
            "Created on or before this day",
            date(),
        ))
        .parameter(query(
            "count",
            false,
            "Items per page: default 50, at most 500 (more is answered with 500)",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        ))
        .parameter(query(
            "nextpage_id",
            false,
            "nextpageKey.id of the previous page",
            string(),
        ))
        .parameter(query(
            "nextpage_date",
            false,
            "nextpageKey.created_at of the previous page (YYYY-MM-DD-HH-MM-SS-ZZZ)",
            string(),
        ))
        .responses(common_errors(responses))
        .build()
}

/// `PATCH /v3/submission`.
pub(super) fn correct() -> Operation {
    let request = RequestBodyBuilder::new()
        .required(Some(Required::True))
        .description(Some(
            "A correction (`docs/api.md` §15), or the same in the encryption envelope \
             (`docs/api.md` §7)",
        ))
        .content(
            JSON,
            ContentBuilder::new()
                .schema(Some(one_of(&["CorrectionRequest", "EncryptedRequest"])))
                .build(),
        )
        .build();
    let responses = ResponsesBuilder::new()
        .response(
            "200",
            ok("Committed; encrypted when the request was", "CorrectedBody"),
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
                    ErrorCode::InvalidSubmission,
                ],
                "The correction was refused (`docs/api.md` §15 check order)",
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
        .operation_id(Some("correctSubmission"))
        .summary(Some("Correct fields of a stored submission"))
        .parameter(api_key_header())
        .request_body(Some(request))
        .responses(common_errors(responses))
        .build()
}

fn erase_operation(id: &str, summary: &str, partial: bool) -> Operation {
    let mut codes = vec![
        ErrorCode::MissingData,
        ErrorCode::InvalidParameter,
        ErrorCode::InvalidFormat,
        ErrorCode::InvalidAdmin,
        ErrorCode::InvalidSubmission,
        ErrorCode::InvalidPayload,
    ];
    codes.sort_by_key(|c| c.as_str());
    let responses = ResponsesBuilder::new()
        .response(
            "200",
            ok(
                "Erased and committed; sealed for a project that requires encryption",
                "DeletedBody",
            ),
        )
        .response(
            "400",
            error(
                &codes,
                "invalid_submission: unknown, another project's, deleted or not a UUID (a full \
                 erasure still records the id, `docs/api.md` §15); or a parameter was refused",
            ),
        )
        .response("403", forbidden());
    let mut operation = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .parameter(api_key_header())
        .parameter(query("submission_id", true, "The submission", string()))
        .parameter(query(
            "admin_name",
            false,
            "An administrator registered for the project, named in the event",
            string(),
        ));
    if partial {
        operation = operation.parameter(query(
            "fields",
            true,
            "Comma-separated groups: data, email, userid, id_image, selfie_image",
            string(),
        ));
    }
    operation.responses(common_errors(responses)).build()
}

/// `DELETE /v3/submission`.
pub(super) fn erase() -> Operation {
    erase_operation(
        "deleteSubmission",
        "Erase a submission's personal data",
        false,
    )
}

/// `DELETE /v3/submission/partial`.
pub(super) fn erase_partial() -> Operation {
    erase_operation(
        "deleteSubmissionPartially",
        "Erase named groups of a submission's data",
        true,
    )
}
