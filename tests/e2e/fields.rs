//! The field table of `kyc-core` reaches every place it is used: each field sent
//! over HTTP is stored in its column (sealed ones opened with the store's own
//! reader), and each appears in `/openapi.json`'s request schema with its rule.
//! A row added to the table but missed in one of those places fails here.

use kyc_core::submission::{FIELDS, Rule};
use kyc_store::DataKey;
use kyc_testkit::{ADMIN, Api, TEST_DATA_KEY, TestEnv};
use secrecy::SecretString;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

/// Every field: what is sent, and its stored (canonical) form. Values differ from
/// each other, so a value landing in another field's column is caught.
const VALUES: [(&str, &str, &str); 25] = [
    ("admin", ADMIN, ADMIN),
    ("email", "  Jane.Doe@Example.com ", "Jane.Doe@Example.com"),
    ("fullName", "Jane Q. Doe", "Jane Q. Doe"),
    ("birthDate", "1990-04-12", "1990-04-12"),
    ("kycStatus", "rejected", "rejected"),
    ("firstName", "Jane", "Jane"),
    ("lastName", "Doe", "Doe"),
    ("idType", "drvlic", "drivers_license"),
    ("issuingCountry", "usa", "USA"),
    ("nationality", "Deu", "DEU"),
    ("gender", "female", "female"),
    ("issueDate", "2020-01-15", "2020-01-15"),
    ("expireDate", "2030-02-16", "2030-02-16"),
    ("ipAddress", "2001:DB8::7", "2001:db8::7"),
    ("identityNumber", "ID-998877", "ID-998877"),
    ("documentNumber", "DOC-112233", "DOC-112233"),
    ("address_city", "Köln", "Köln"),
    ("address_country", "Germany", "Germany"),
    (
        "address_state",
        "Nordrhein-Westfalen",
        "Nordrhein-Westfalen",
    ),
    ("address_street", "Domkloster 4", "Domkloster 4"),
    (
        "address_full",
        "Domkloster 4, 50667 Köln",
        "Domkloster 4, 50667 Köln",
    ),
    ("cf1", "custom one", "custom one"),
    ("cf2", "custom two", "custom two"),
    ("cf3", "custom three", "custom three"),
    ("userid", "user-42", "user-42"),
];

#[test]
fn the_values_cover_the_table() {
    let table: BTreeSet<&str> = FIELDS.iter().map(|f| f.name).collect();
    let here: BTreeSet<&str> = VALUES.iter().map(|v| v.0).collect();
    assert_eq!(here, table, "one value per field of the table");
    let stored: HashSet<&str> = VALUES.iter().map(|v| v.2).collect();
    assert_eq!(stored.len(), VALUES.len(), "stored values are distinct");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_round_trips_to_its_column() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let record: Map<String, Value> = VALUES
        .iter()
        .map(|(name, sent, _)| ((*name).to_owned(), Value::from(*sent)))
        .collect();
    let reply = api.submit(&key, &Value::Object(record)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.submission_id();
    let status = env.await_row(id, Duration::from_secs(10)).await;
    assert_eq!(status, "accepted");
    let result = api.result(&key, id).await;
    assert_eq!(result.status, 200, "{:?}", result.body);
    assert_eq!(result.body["status"], "accepted");

    let data_key = DataKey::from_base64("test", &SecretString::from(TEST_DATA_KEY)).unwrap();
    let stored = env
        .store
        .read_fields(id, &data_key)
        .await
        .unwrap()
        .expect("the row");
    assert_eq!(stored.len(), FIELDS.len(), "the reader reads every field");
    for (spec, value) in stored {
        let expected = VALUES.iter().find(|v| v.0 == spec.name).unwrap().2;
        assert_eq!(
            value.as_deref(),
            Some(expected),
            "{} in column {}",
            spec.name,
            spec.column
        );
    }

    // Sealed columns hold ciphertext, not the value, and name the data key.
    for spec in FIELDS.iter().filter(|f| f.sealed) {
        let sql = format!("SELECT {} FROM submissions WHERE id = $1", spec.column);
        let (sealed,): (Vec<u8>,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
        let plain = VALUES.iter().find(|v| v.0 == spec.name).unwrap().2;
        assert!(
            !sealed.windows(plain.len()).any(|w| w == plain.as_bytes()),
            "{}: sealed",
            spec.name
        );
    }
    let (key_id,): (Option<String>,) =
        sqlx::query_as("SELECT pii_key_id FROM submissions WHERE id = $1")
            .bind(id)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(key_id.as_deref(), Some("test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_request_schema_has_every_field_with_its_rule() {
    let env = TestEnv::new().await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());

    let reply = api.get("/openapi.json", None).await;
    assert_eq!(reply.status, 200);
    let schema = &reply.body["components"]["schemas"]["SubmissionRequest"];
    assert_eq!(schema["type"], "object", "{schema}");
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown keys are refused"
    );
    let properties = schema["properties"].as_object().expect("properties");
    let names: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
    let table: BTreeSet<&str> = FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(names, table, "one property per field");

    for spec in &FIELDS {
        let property = &properties[spec.name];
        let case = format!("{}: {property}", spec.name);
        assert_eq!(property["type"], "string", "{case}");
        match spec.rule {
            Rule::Text { max } => assert_eq!(property["maxLength"], max, "{case}"),
            Rule::Email => assert_eq!(property["format"], "email", "{case}"),
            Rule::Date | Rule::PastDate => assert_eq!(property["format"], "date", "{case}"),
            Rule::Ip => assert_eq!(property["format"], "ip", "{case}"),
            Rule::Country => assert_eq!(property["pattern"], "^[A-Za-z]{3}$", "{case}"),
            Rule::KycStatus | Rule::IdType | Rule::Gender => {
                let values: Vec<&str> = property["enum"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{case}: an enum"))
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert_eq!(Some(values), spec.rule.accepted_values(), "{case}");
            }
        }
        if spec.sealed {
            let description = property["description"].as_str().unwrap_or_default();
            assert!(description.contains("encrypted"), "{case}");
        }
    }
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .expect("a required list")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = FIELDS
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    assert_eq!(required, expected, "required = the required fields");
    let expected: BTreeSet<&str> = ["admin", "email", "fullName", "birthDate", "kycStatus"].into();
    assert_eq!(required, expected, "required fields of `docs/api.md` §2");
}
