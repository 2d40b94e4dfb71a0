//! The image reference: what the intake publishes once an image is sealed and
//! written to the object store (`docs/api.md`, "Images"). A claim check: the
//! image itself never travels through the broker, only where it lies.
//!
//! The body is this JSON, transit-sealed (`crate::transit`,
//! [`TransitKeyring::seal_image`](crate::transit::TransitKeyring::seal_image))
//! with the submission id, project id and receive time of its headers bound.
//! Nothing in it is personal data: ids, the image kind, a random object key, a
//! keyed digest, a size and a content type.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Routing key of image references on the submissions exchange.
pub const IMAGE_ROUTING_KEY: &str = "image.v1";
/// The AMQP `type` property of an image reference.
pub const IMAGE_REFERENCE_TYPE: &str = "kyc.image-reference.v1";
/// The event announcing a stored image, and the start of its routing key
/// (`submission.image_stored.<projectId>`).
pub const IMAGE_STORED_EVENT: &str = "submission.image_stored";

/// The four images a submission can have, by their ARGOS part names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ImageKind {
    /// The front of the identity document.
    #[serde(rename = "idImage")]
    IdImage,
    /// The back of the identity document.
    #[serde(rename = "idBackImage")]
    IdBackImage,
    /// The person's selfie.
    #[serde(rename = "selfieImage")]
    SelfieImage,
    /// A proof of address.
    #[serde(rename = "addressImage")]
    AddressImage,
}

impl ImageKind {
    /// Every kind, in the order the API lists them.
    pub const ALL: [ImageKind; 4] = [
        ImageKind::IdImage,
        ImageKind::IdBackImage,
        ImageKind::SelfieImage,
        ImageKind::AddressImage,
    ];

    /// The part name (`idImage`, …), also the value stored and announced.
    pub const fn as_str(self) -> &'static str {
        match self {
            ImageKind::IdImage => "idImage",
            ImageKind::IdBackImage => "idBackImage",
            ImageKind::SelfieImage => "selfieImage",
            ImageKind::AddressImage => "addressImage",
        }
    }

    /// The kind a part name names.
    pub fn parse(name: &str) -> Option<ImageKind> {
        ImageKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the kind is an image of the identity document (which needs `idType`).
    pub const fn is_id_document(self) -> bool {
        matches!(self, ImageKind::IdImage | ImageKind::IdBackImage)
    }
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One image written to the object store, as the worker is to record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReferenceV1 {
    /// The submission the image belongs to (stored, of `project_id`).
    pub submission_id: Uuid,
    /// The project the intake authenticated the upload for.
    pub project_id: Uuid,
    /// Which image.
    pub kind: ImageKind,
    /// Where the sealed image lies in the object store (`images/<uuid>`).
    pub object_key: String,
    /// The keyed digest of the plain image, lowercase hex (HMAC-SHA256 under a
    /// key derived from the data key).
    pub digest: String,
    /// The plain image's size in bytes.
    pub size: u64,
    /// `image/jpeg` or `image/png`, from the image's bytes.
    pub content_type: String,
    /// The id of the data key the object is sealed under.
    pub key_id: String,
    /// When the intake received the upload; a reference older than the stored
    /// image of its kind does not replace it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: time::OffsetDateTime,
}

/// `submission.image_stored`: ids and the kind, never the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStoredEventV1 {
    /// Always [`IMAGE_STORED_EVENT`].
    pub event: String,
    /// The submission.
    pub submission_id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// Which image was stored (added or replaced).
    pub kind: ImageKind,
    /// When the worker committed it, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

impl ImageStoredEventV1 {
    /// The event of `reference`, stored at `at`.
    pub fn new(reference: &ImageReferenceV1, at: time::OffsetDateTime) -> ImageStoredEventV1 {
        ImageStoredEventV1 {
            event: IMAGE_STORED_EVENT.to_owned(),
            submission_id: reference.submission_id,
            project_id: reference.project_id,
            kind: reference.kind,
            at,
        }
    }

    /// `submission.image_stored.<projectId>`.
    pub fn routing_key(&self) -> String {
        format!("{IMAGE_STORED_EVENT}.{}", self.project_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_part_names() {
        for kind in ImageKind::ALL {
            assert_eq!(ImageKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::from(kind.as_str()))
            );
        }
        assert_eq!(ImageKind::parse("idimage"), None);
    }
}
