//! The record every bench sends: the contract's example (`kyc_core::example`),
//! valid, with all 25 fields, so our code does its full work (every rule
//! checked, every column written, both sensitive numbers sealed).

use std::io::Write;
use std::path::Path;

/// The administrator every bench project registers: the one the example names.
pub const ADMIN: &str = kyc_core::example::ADMIN;

/// The example with `userid` set: `userid` tells records apart.
pub fn full(userid: &str) -> serde_json::Value {
    let mut record = kyc_core::example::full_record();
    record["userid"] = userid.into();
    record
}

/// The bytes of [`full`] with a fixed `userid`: what the HTTP load and the
/// broker benches send.
pub fn body() -> bytes::Bytes {
    bytes::Bytes::from(full("user-42").to_string())
}

/// Writes `n` records (distinct `userid`s) as JSON Lines.
pub fn write_jsonl(path: &Path, n: u64) -> std::io::Result<()> {
    write_jsonl_tagged(path, "user", n)
}

/// Writes `n` records as JSON Lines, `userid`s `<tag>-<i>`: files with
/// different tags name different submissions. Each record is [`varied`], so
/// that what compression and the database see is not one record repeated.
pub fn write_jsonl_tagged(path: &Path, tag: &str, n: u64) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        serde_json::to_writer(&mut out, &varied(&format!("{tag}-{i}"), i))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// A valid record with all 25 fields whose values vary with `seed` as a
/// migration's would: names, e-mail, dates, document and identity numbers,
/// address, IP and legacy id drawn (deterministically) from small lists and
/// number ranges. The same seed gives the same record.
pub fn varied(userid: &str, seed: u64) -> serde_json::Value {
    const FIRST: [&str; 24] = [
        "Jane", "John", "Maria", "Wei", "Aisha", "Carlos", "Yuki", "Olga", "Ahmed", "Priya",
        "Lucas", "Emma", "Noah", "Sofia", "Liam", "Chen", "Fatima", "Ivan", "Anna", "Omar",
        "Minji", "Jonas", "Amara", "Mateo",
    ];
    const LAST: [&str; 24] = [
        "Doe", "Smith", "Garcia", "Wang", "Khan", "Silva", "Tanaka", "Ivanova", "Hassan", "Patel",
        "Muller", "Rossi", "Kim", "Nguyen", "Brown", "Lopez", "Cohen", "Novak", "Haddad", "Jensen",
        "Okafor", "Park", "Dubois", "Costa",
    ];
    const CITIES: [(&str, &str); 8] = [
        ("Springfield", "IL"),
        ("Riverside", "CA"),
        ("Franklin", "TN"),
        ("Greenville", "SC"),
        ("Bristol", "CT"),
        ("Salem", "OR"),
        ("Madison", "WI"),
        ("Georgetown", "TX"),
    ];
    const STREETS: [&str; 8] = [
        "Main St",
        "Oak Ave",
        "Pine Rd",
        "Maple Dr",
        "Cedar Ln",
        "Elm St",
        "Lake View",
        "Hill Rd",
    ];
    const COUNTRIES: [&str; 8] = ["USA", "KOR", "DEU", "FRA", "GBR", "JPN", "BRA", "IND"];
    const ID_TYPES: [&str; 4] = [
        "passport",
        "drivers_license",
        "government_id",
        "residence_permit",
    ];
    // splitmix64: a different, well-mixed number for each draw.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = move |below: u64| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % below
    };
    let mut pick = |list: &[&'static str]| list[next(list.len() as u64) as usize];
    let (first, last) = (pick(&FIRST), pick(&LAST));
    let (country, id_type, street) = (pick(&COUNTRIES), pick(&ID_TYPES), pick(&STREETS));
    let (city, state_code) = CITIES[next(CITIES.len() as u64) as usize];
    let date = |year: u64, next: &mut dyn FnMut(u64) -> u64| {
        format!("{year}-{:02}-{:02}", 1 + next(12), 1 + next(28))
    };
    let birth = date(1940 + next(66), &mut next);
    let issued = date(2012 + next(12), &mut next);
    let expires = date(2027 + next(9), &mut next);
    let house = 1 + next(9_999);
    let zip = 10_000 + next(90_000);
    let street = format!("{house} {street}");
    serde_json::json!({
        "admin": ADMIN,
        "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), next(1_000)),
        "fullName": format!("{first} {last}"),
        "birthDate": birth,
        "kycStatus": if next(10) < 8 { "approved" } else { "rejected" },
        "firstName": first,
        "lastName": last,
        "idType": id_type,
        "issuingCountry": country,
        "nationality": country,
        "gender": if next(2) == 0 { "female" } else { "male" },
        "issueDate": issued,
        "expireDate": expires,
        "ipAddress": format!("{}.{}.{}.{}", 1 + next(223), next(256), next(256), 1 + next(254)),
        "identityNumber": format!("{:03}-{:02}-{:04}", 100 + next(900), 10 + next(90), next(10_000)),
        "documentNumber": format!("X{:08}", next(100_000_000)),
        "address_city": city,
        "address_country": country,
        "address_state": state_code,
        "address_street": street,
        "address_full": format!("{street}, {city}, {state_code} {zip}, {country}"),
        "cf1": format!("legacy-id-{}", next(10_000_000)),
        "cf2": "migrated from system A",
        "cf3": format!("batch 2024-{:02}", 1 + next(12)),
        "userid": userid,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn varied_records_are_valid_complete_and_differ() {
        let today = kyc_core::submission::today_utc();
        let mut seen = std::collections::HashSet::new();
        for i in 0..2_000 {
            let record = super::varied(&format!("u-{i}"), i);
            assert_eq!(record.as_object().map(|o| o.len()), Some(25));
            let body = record.to_string();
            let valid = kyc_core::RawSubmission::from_slice(body.as_bytes())
                .and_then(|raw| raw.validate(today));
            assert!(valid.is_ok(), "{body}: {valid:?}");
            seen.insert(
                record["identityNumber"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        assert!(
            seen.len() > 1_900,
            "identity numbers repeat: {}",
            seen.len()
        );
        assert_eq!(super::varied("u", 7), super::varied("u", 7));
    }

    #[test]
    fn the_record_is_valid_and_has_25_fields() {
        let body = super::body();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(value.as_object().map(|o| o.len()), Some(25));
        let valid = kyc_core::RawSubmission::from_slice(&body)
            .and_then(|raw| raw.validate(kyc_core::submission::today_utc()));
        assert!(valid.is_ok(), "{valid:?}");
    }
}
