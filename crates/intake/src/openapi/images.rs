//! The image paths of the OpenAPI document (`docs/api.md` §16):
//! `PUT /v3/submission/image` and `GET /v3/submission/migration/{id}/images/{kind}`.

use super::answers::{JSON, api_key_header, common_errors, error, forbidden, schema_ref, string};
use kyc_core::ErrorCode;
use kyc_core::wire::ImageKind;
use utoipa::openapi::Required;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};

fn binary() -> ObjectBuilder {
    string().content_media_type("application/octet-stream")
}

/// `PUT /v3/submission/image`.
pub(super) fn put_image() -> Operation {
    let image = |what: &str| {
        string().description(Some(format!(
            "{what}: Base64 text of a JPEG or PNG, or a file part of the same name; at most \
             `KYC__IMAGES__MAX_IMAGE_BYTES` (default 5 MiB) decoded"
        )))
    };
    let mut form = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "submissionId",
            string().description(Some("An accepted, stored submission of the project")),
        )
        .property(
            "admin",
            string().description(Some("An administrator registered for the project")),
        )
        .property(
            "idType",
            string().description(Some(
                "An ID type code (`docs/api.md` §2); required with idImage or idBackImage",
            )),
        )
        .required("submissionId")
        .required("admin");
    for (kind, what) in [
        (ImageKind::IdImage, "The identity document's front"),
        (ImageKind::IdBackImage, "The identity document's back"),
        (ImageKind::SelfieImage, "The selfie"),
        (ImageKind::AddressImage, "A proof of address"),
    ] {
        form = form.property(kind.as_str(), image(what));
    }
    let request = RequestBodyBuilder::new()
        .required(Some(Required::True))
        .description(Some(
            "multipart/form-data, at most `KYC__IMAGES__MAX_REQUEST_BYTES` (default 24 MiB); \
             at least one image part; each part at most once (`docs/api.md` §16)",
        ))
        .content(
            "multipart/form-data",
            ContentBuilder::new().schema(Some(form)).build(),
        )
        .build();
    let responses = ResponsesBuilder::new()
        .response(
            "200",
            ResponseBuilder::new()
                .description(
                    "Every image of the call sealed, written to the image store, and its \
                     reference confirmed by the broker",
                )
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(schema_ref("ImageUpdatedBody")))
                        .build(),
                ),
        )
        .response(
            "400",
            error(
                &[
                    ErrorCode::InvalidPayload,
                    ErrorCode::MissingData,
                    ErrorCode::InvalidData,
                    ErrorCode::InvalidIdType,
                    ErrorCode::InvalidSubmission,
                    ErrorCode::InvalidProject,
                    ErrorCode::InvalidAdmin,
                ],
                "invalid_payload: not multipart, broken, a part twice or unreadable Base64; \
                 missing_data: submissionId, admin, or idType with an ID image; invalid_data: \
                 no image, or not JPEG/PNG by its bytes; invalid_idType; invalid_submission: \
                 unknown, another project's, not yet stored (still queued), erased; \
                 invalid_project; invalid_admin",
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
                "payload_too_large: the body or one image over its limit",
            ),
        );
    OperationBuilder::new()
        .operation_id(Some("putImage"))
        .summary(Some("Add or overwrite images of a stored submission"))
        .parameter(api_key_header())
        .request_body(Some(request))
        .responses(common_errors(responses))
        .build()
}

/// `GET /v3/submission/migration/{submissionId}/images/{kind}`.
pub(super) fn get_image() -> Operation {
    let id = ParameterBuilder::new()
        .name("submissionId")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(string()))
        .build();
    let kind = ParameterBuilder::new()
        .name("kind")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(
            string().enum_values(Some(ImageKind::ALL.map(|k| k.as_str()))),
        ))
        .build();
    let responses = ResponsesBuilder::new()
        .response(
            "200",
            ResponseBuilder::new()
                .description("The image, opened")
                .content(
                    "image/jpeg",
                    ContentBuilder::new().schema(Some(binary())).build(),
                )
                .content(
                    "image/png",
                    ContentBuilder::new().schema(Some(binary())).build(),
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
                "not_found: no such image of a submission of this project",
            ),
        );
    OperationBuilder::new()
        .operation_id(Some("getImage"))
        .summary(Some("One stored image of a submission"))
        .parameter(api_key_header())
        .parameter(id)
        .parameter(kind)
        .responses(common_errors(responses))
        .build()
}
