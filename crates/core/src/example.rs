//! The contract's example record: one valid submission using all 25 fields, in
//! the field order of `docs/api.md` §2, in the spirit of the public ARGOS request example.
//!
//! It is written here once and used everywhere an example is needed: the
//! contract's own tests, the end-to-end tests and benches (through
//! `kyc-testkit`), and the request `kycctl dev` prints. Every value is already
//! in its normalised form, so the record is stored exactly as sent.
//!
//! A `serde_json::Value` object does not keep key order (that depends on a Cargo
//! feature), so where document order matters use [`FIELDS`] or [`full_json`].

/// The administrator the example names; a project receiving it must have
/// registered this address.
pub const ADMIN: &str = "admin@example.com";

/// The five required fields, in `docs/api.md` §2 order.
pub const REQUIRED: [&str; 5] = ["admin", "email", "fullName", "birthDate", "kycStatus"];

/// The example's fields and values, in `docs/api.md` §2 order.
pub const FIELDS: [(&str, &str); 25] = [
    ("admin", ADMIN),
    ("email", "jane.doe@example.com"),
    ("fullName", "Jane Doe"),
    ("birthDate", "1990-05-17"),
    ("kycStatus", "approved"),
    ("firstName", "Jane"),
    ("lastName", "Doe"),
    ("idType", "passport"),
    ("issuingCountry", "USA"),
    ("nationality", "USA"),
    ("gender", "female"),
    ("issueDate", "2020-01-15"),
    ("expireDate", "2030-01-15"),
    ("ipAddress", "203.0.113.7"),
    ("identityNumber", "123-45-6789"),
    ("documentNumber", "X12345678"),
    ("address_city", "Springfield"),
    ("address_country", "United States"),
    ("address_state", "IL"),
    ("address_street", "742 Evergreen Terrace"),
    (
        "address_full",
        "742 Evergreen Terrace, Springfield, IL 62704, USA",
    ),
    ("cf1", "legacy-id-4711"),
    ("cf2", "migrated from system A"),
    ("cf3", "batch 2024-03"),
    ("userid", "user-000123"),
];

/// The full example as a JSON object.
pub fn full_record() -> serde_json::Value {
    object(FIELDS.iter())
}

/// Only the required fields of the example: the smallest valid record.
pub fn minimal_record() -> serde_json::Value {
    object(FIELDS.iter().filter(|(key, _)| REQUIRED.contains(key)))
}

/// The full example as JSON text, keys in `docs/api.md` §2 order.
pub fn full_json() -> String {
    let members: Vec<String> = FIELDS
        .iter()
        .map(|(key, value)| {
            format!(
                "{}:{}",
                serde_json::Value::from(*key),
                serde_json::Value::from(*value)
            )
        })
        .collect();
    format!("{{{}}}", members.join(","))
}

fn object<'a>(fields: impl Iterator<Item = &'a (&'a str, &'a str)>) -> serde_json::Value {
    serde_json::Value::Object(
        fields
            .map(|(key, value)| ((*key).to_owned(), serde_json::Value::from(*value)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_is_valid_and_complete() {
        let today = time::macros::date!(2024 - 06 - 15);
        for (name, body) in [
            ("full", full_json().into_bytes()),
            ("full value", full_record().to_string().into_bytes()),
            ("minimal", minimal_record().to_string().into_bytes()),
        ] {
            let valid = crate::RawSubmission::from_slice(&body).and_then(|raw| raw.validate(today));
            assert!(valid.is_ok(), "{name}: {valid:?}");
        }
        assert_eq!(full_record().as_object().map(|o| o.len()), Some(25));
        assert_eq!(minimal_record().as_object().map(|o| o.len()), Some(5));
        let parsed: serde_json::Value = serde_json::from_str(&full_json()).unwrap_or_default();
        assert_eq!(parsed, full_record());
    }
}
