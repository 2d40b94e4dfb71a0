//! The component schemas of the OpenAPI document: the request body derived from
//! the field table, the error body and the encrypted request and response forms.

use kyc_core::submission::{FIELDS, FieldSpec, Rule};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};

/// The request body, built from the field table of `kyc-core` (every value is a
/// string, `docs/api.md` §2): one property per field with its rule — `maxLength` for
/// text, `enum` for the closed sets, `format` for e-mail addresses, dates and IP
/// addresses, a `pattern` for country codes — and the required fields. The rules
/// themselves live in `kyc-core`, which parses the raw JSON; this is their
/// description.
pub(super) struct SubmissionRequest;

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
pub(super) fn field_schema(spec: &FieldSpec) -> Schema {
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

/// `{"errorCode", "message", "parameters"?}`: every error answer (`docs/api.md` §3).
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[schema(as = ErrorBody)]
pub(super) struct ErrorBodyDoc {
    /// One of the codes of `docs/api.md` §3.
    #[schema(rename = "errorCode")]
    error_code: String,
    message: String,
    /// The fields the error concerns (`missing_data`, `invalid_parameter`,
    /// `invalid_format`); absent otherwise.
    parameters: Option<Vec<String>>,
}

/// `{"body": "<base64>"}`: a record encrypted with the project's key (`docs/api.md` §7).
pub(super) struct EncryptedRequestDoc;

impl utoipa::PartialSchema for EncryptedRequestDoc {
    fn schema() -> RefOr<Schema> {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(
                    "The record of SubmissionRequest encrypted with AES-256-GCM under the \
                     SHA-256 of the API key: standard Base64 of nonce ‖ ciphertext ‖ tag.",
                ))
                .property(
                    "body",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_encoding("base64"),
                )
                .required("body")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                .build(),
        )
        .into()
    }
}

impl utoipa::ToSchema for EncryptedRequestDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "EncryptedRequest".into()
    }
}

/// `{"isEncrypted": true, "data": "<base64>"}`: a success body for an encrypted
/// request (`docs/api.md` §7); `data` decrypts to the plain body.
pub(super) struct EncryptedResponseDoc;

impl utoipa::PartialSchema for EncryptedResponseDoc {
    fn schema() -> RefOr<Schema> {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(
                    "The plain success body, encrypted as the request was: standard Base64 \
                     of nonce ‖ ciphertext ‖ tag.",
                ))
                .property(
                    "isEncrypted",
                    ObjectBuilder::new()
                        .schema_type(Type::Boolean)
                        .enum_values(Some([true])),
                )
                .property(
                    "data",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_encoding("base64"),
                )
                .required("isEncrypted")
                .required("data")
                .build(),
        )
        .into()
    }
}

impl utoipa::ToSchema for EncryptedResponseDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "EncryptedResponse".into()
    }
}
