//! `POST /v3/submission/migration/batch` in the OpenAPI document.

use super::answers::{JSON, api_key_header, common_errors, error, forbidden, one_of, string};
use kyc_core::ErrorCode;
use utoipa::openapi::Required;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};

/// The NDJSON media type the endpoint also takes.
const NDJSON: &str = "application/x-ndjson";

pub(super) fn submit_batch() -> utoipa::openapi::path::Operation {
    let records = ArrayBuilder::new()
        .items(super::answers::schema_ref("SubmissionRequest"))
        .min_items(Some(1))
        .max_items(Some(1_000));
    let request = RequestBodyBuilder::new()
        .required(Some(Required::True))
        .description(Some(
            "A JSON array of records (`docs/api.md` §2), or NDJSON (one record per line), or \
             either in the encryption envelope (`docs/api.md` §7) as a whole. A lone JSON \
             object that is not the envelope is `invalid_payload` unless sent as \
             `application/x-ndjson`. At most \
             `KYC__HTTP__BATCH_MAX_RECORDS` (default 1000) records and \
             `KYC__HTTP__BATCH_BODY_LIMIT_BYTES` (default 4194304) bytes.",
        ))
        .content(
            JSON,
            ContentBuilder::new()
                .schema(Some(
                    OneOfBuilder::new()
                        .item(records)
                        .item(super::answers::schema_ref("EncryptedRequest")),
                ))
                .build(),
        )
        .content(
            NDJSON,
            ContentBuilder::new()
                .schema(Some(string().description(Some("One record per line"))))
                .build(),
        )
        .build();
    let idempotency_key = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "1–200 printable ASCII characters; record i is named by `<key>:<i>`, so the same \
             request again names the same submissions (`docs/api.md` §5a)",
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
            "1–30: wait up to this many seconds for the worker's verdict on every queued record",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(30)),
        ))
        .build();
    let answered = |description: &str| {
        ResponseBuilder::new().description(description).content(
            JSON,
            ContentBuilder::new()
                .schema(Some(one_of(&["BatchResponse", "EncryptedResponse"])))
                .build(),
        )
    };
    let responses = ResponsesBuilder::new()
        .response(
            "200",
            answered(
                "One result per record, in input order: `submissionId` for each record durably \
                 queued, the error for each refused at the edge (with ?wait: every queued \
                 record's verdict); encrypted when the request was",
            ),
        )
        .response(
            "202",
            answered("?wait ran out for some record (`status: pending`): still queued"),
        )
        .response(
            "400",
            error(
                &[
                    ErrorCode::InvalidPayload,
                    ErrorCode::InvalidFormat,
                    ErrorCode::InvalidProject,
                ],
                "The body is no array or NDJSON of records, the envelope does not open (or is \
                 required), an option is malformed, or the project is disabled",
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
                "payload_too_large: the body is over the byte limit or has too many records",
            ),
        );
    OperationBuilder::new()
        .operation_id(Some("submitBatch"))
        .summary(Some("Submit many records"))
        .parameter(api_key_header())
        .parameter(idempotency_key)
        .parameter(wait)
        .request_body(Some(request))
        .responses(common_errors(responses))
        .build()
}
