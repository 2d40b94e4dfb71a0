//! The record every bench sends: valid, with all 25 fields of the contract, so
//! our code does its full work (every rule checked, every column written, both
//! sensitive numbers sealed).

use std::io::Write;
use std::path::Path;

/// The administrator every bench project registers, named in every record.
pub const ADMIN: &str = "bench-admin@example.com";

/// A valid record using all 25 fields; `userid` tells records apart.
pub fn full(userid: &str) -> serde_json::Value {
    serde_json::json!({
        "admin": ADMIN,
        "email": "jane.doe@example.com",
        "fullName": "Jane Q. Doe",
        "birthDate": "1990-04-12",
        "kycStatus": "approved",
        "firstName": "Jane",
        "lastName": "Doe",
        "idType": "drvlic",
        "issuingCountry": "usa",
        "nationality": "DEU",
        "gender": "female",
        "issueDate": "2020-01-15",
        "expireDate": "2030-01-15",
        "ipAddress": "203.0.113.7",
        "identityNumber": "ID-998877",
        "documentNumber": "DOC-112233",
        "address_city": "Berlin",
        "address_country": "Germany",
        "address_state": "Berlin",
        "address_street": "Unter den Linden 1",
        "address_full": "Unter den Linden 1, 10117 Berlin",
        "cf1": "custom one",
        "cf2": "custom two",
        "cf3": "custom three",
        "userid": userid
    })
}

/// The bytes of [`full`] with a fixed `userid`: what the HTTP load and the
/// broker benches send.
pub fn body() -> bytes::Bytes {
    bytes::Bytes::from(full("user-42").to_string())
}

/// Writes `n` records (distinct `userid`s) as JSON Lines.
pub fn write_jsonl(path: &Path, n: u64) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        serde_json::to_writer(&mut out, &full(&format!("user-{i}")))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
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
