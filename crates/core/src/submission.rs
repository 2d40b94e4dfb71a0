//! Spec §2 and the check order of §3: from a JSON object to a typed [`Submission`].
//!
//! The order is fixed by the contract and implemented as three passes over the
//! object's keys *in document order*:
//!
//! 1. unknown keys → `invalid_parameter` naming the first one;
//! 2. required fields absent or empty (after trimming) → `missing_data` listing all;
//! 3. each present value parsed by its rule → `invalid_format` naming the first bad
//!    one (a non-string value is a bad value).
//!
//! Project and admin checks come after these and need the database; they are the
//! services' job.

use crate::error::{ErrorCode, Rejection};
use crate::types::{CountryAlpha3, Email, Gender, IdType, IsoDate, KycStatus};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::net::IpAddr;

/// The rule a field's (trimmed, non-empty) value must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Email,
    /// Length in characters (Unicode scalar values), inclusive.
    Text {
        max: usize,
    },
    Date,
    KycStatus,
    IdType,
    Country,
    Gender,
    Ip,
}

/// One row of the spec §2 table.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub required: bool,
    pub rule: Rule,
}

const fn field(name: &'static str, required: bool, rule: Rule) -> FieldSpec {
    FieldSpec {
        name,
        required,
        rule,
    }
}

/// Every field of the contract, in the order of spec §2.
pub const FIELDS: [FieldSpec; 25] = [
    field("admin", true, Rule::Email),
    field("email", true, Rule::Email),
    field("fullName", true, Rule::Text { max: 200 }),
    field("birthDate", true, Rule::Date),
    field("kycStatus", true, Rule::KycStatus),
    field("firstName", false, Rule::Text { max: 100 }),
    field("lastName", false, Rule::Text { max: 100 }),
    field("idType", false, Rule::IdType),
    field("issuingCountry", false, Rule::Country),
    field("nationality", false, Rule::Country),
    field("gender", false, Rule::Gender),
    field("issueDate", false, Rule::Date),
    field("expireDate", false, Rule::Date),
    field("ipAddress", false, Rule::Ip),
    field("identityNumber", false, Rule::Text { max: 100 }),
    field("documentNumber", false, Rule::Text { max: 100 }),
    field("address_city", false, Rule::Text { max: 200 }),
    field("address_country", false, Rule::Text { max: 200 }),
    field("address_state", false, Rule::Text { max: 200 }),
    field("address_street", false, Rule::Text { max: 200 }),
    field("address_full", false, Rule::Text { max: 500 }),
    field("cf1", false, Rule::Text { max: 1000 }),
    field("cf2", false, Rule::Text { max: 1000 }),
    field("cf3", false, Rule::Text { max: 1000 }),
    field("userid", false, Rule::Text { max: 200 }),
];

/// Looks up a field by its wire name.
pub fn field_spec(name: &str) -> Option<(usize, &'static FieldSpec)> {
    FIELDS.iter().enumerate().find(|(_, f)| f.name == name)
}

/// A JSON object with its keys in document order, not yet checked.
///
/// Parsing keeps every key, so "the first unknown key" and "the first bad value"
/// can be named exactly. A key that occurs twice makes the document ambiguous
/// and is refused as `invalid_payload` rather than silently taking one value.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSubmission {
    entries: Vec<(String, Value)>,
}

impl RawSubmission {
    /// Parses bytes that must hold one JSON object (and nothing after it).
    pub fn from_slice(bytes: &[u8]) -> Result<RawSubmission, Rejection> {
        let object: RawObject =
            serde_json::from_slice(bytes).map_err(|_| Rejection::new(ErrorCode::InvalidPayload))?;
        Ok(RawSubmission { entries: object.0 })
    }

    /// Builds one from already separated entries (used by the CSV reader).
    pub fn from_entries(entries: Vec<(String, Value)>) -> RawSubmission {
        RawSubmission { entries }
    }

    pub fn entries(&self) -> &[(String, Value)] {
        &self.entries
    }

    /// Applies spec §2 in the order of spec §3, judging "the future" by `today`.
    pub fn validate(&self, today: time::Date) -> Result<Submission, Rejection> {
        // 1. Unknown keys, first in document order.
        let mut slots: [Option<&Value>; FIELDS.len()] = [None; FIELDS.len()];
        let mut order: Vec<usize> = Vec::with_capacity(self.entries.len());
        for (key, value) in &self.entries {
            let (index, _) = field_spec(key).ok_or_else(|| Rejection::invalid_parameter(key))?;
            slots[index] = Some(value);
            order.push(index);
        }

        // 2. Required fields absent, or strings that are empty after trimming.
        let missing: Vec<String> = FIELDS
            .iter()
            .zip(&slots)
            .filter(|(spec, value)| {
                spec.required
                    && value.is_none_or(|v| v.as_str().is_some_and(|s| s.trim().is_empty()))
            })
            .map(|(spec, _)| spec.name.to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(Rejection::missing(missing));
        }

        // 3. Values, each parsed by its own rule; the first failure in document order.
        let mut parsed: [Option<Parsed>; FIELDS.len()] = std::array::from_fn(|_| None);
        let mut failed: [bool; FIELDS.len()] = [false; FIELDS.len()];
        for &index in &order {
            let spec = &FIELDS[index];
            let Some(value) = slots[index] else { continue };
            match parse_value(spec, value, today) {
                Ok(p) => parsed[index] = p,
                Err(()) => failed[index] = true,
            }
        }
        // The one rule between two fields: expireDate not before issueDate. It is
        // expireDate's rule, so it fails at expireDate's position (and only when
        // issueDate itself parsed; a bad issueDate is reported at its own place).
        if let (Some(Parsed::Date(issue)), Some(Parsed::Date(expire))) =
            (&parsed[ISSUE_DATE], &parsed[EXPIRE_DATE])
            && expire < issue
        {
            failed[EXPIRE_DATE] = true;
        }
        if let Some(&index) = order.iter().find(|&&i| failed[i]) {
            return Err(Rejection::invalid_format(FIELDS[index].name));
        }

        // Every required slot was checked non-empty in step 2 and parsed in step 3,
        // so `None` here would be a bug in this function, not bad input.
        Submission::from_parsed(parsed).ok_or_else(|| Rejection::new(ErrorCode::InvalidPayload))
    }
}

const ISSUE_DATE: usize = 11;
const EXPIRE_DATE: usize = 12;

/// A field value after its rule was applied.
#[derive(Debug, Clone)]
enum Parsed {
    Email(Email),
    Text(String),
    Date(IsoDate),
    KycStatus(KycStatus),
    IdType(IdType),
    Country(CountryAlpha3),
    Gender(Gender),
    Ip(IpAddr),
}

/// `Ok(None)`: absent (an optional field sent as `""` or white space).
fn parse_value(spec: &FieldSpec, value: &Value, today: time::Date) -> Result<Option<Parsed>, ()> {
    // "String data only": numbers, booleans, null, arrays and objects are bad values.
    let raw = value.as_str().ok_or(())?;
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    // PostgreSQL text cannot hold NUL; refusing it here keeps such a record from
    // ever becoming a poison message.
    if s.contains('\0') {
        return Err(());
    }
    let parsed = match spec.rule {
        Rule::Email => Email::parse(s).map(Parsed::Email),
        Rule::Text { max } => (s.chars().count() <= max).then(|| Parsed::Text(s.to_owned())),
        Rule::Date => IsoDate::parse(s)
            .filter(|d| spec.name != "birthDate" || d.0 <= today)
            .map(Parsed::Date),
        Rule::KycStatus => KycStatus::parse(s).map(Parsed::KycStatus),
        Rule::IdType => IdType::parse(s).map(Parsed::IdType),
        Rule::Country => CountryAlpha3::parse(s).map(Parsed::Country),
        Rule::Gender => Gender::parse(s).map(Parsed::Gender),
        Rule::Ip => s.parse::<IpAddr>().ok().map(Parsed::Ip),
    };
    parsed.map(Some).ok_or(())
}

/// A submission that satisfies every rule of spec §2.
///
/// `Debug` prints only which optional fields are present: the values are personal
/// data and must never reach a log.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Submission {
    pub admin: Email,
    pub email: Email,
    #[serde(rename = "fullName")]
    pub full_name: String,
    #[serde(rename = "birthDate")]
    pub birth_date: IsoDate,
    #[serde(rename = "kycStatus")]
    pub kyc_status: KycStatus,
    #[serde(rename = "firstName", skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(rename = "lastName", skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(rename = "idType", skip_serializing_if = "Option::is_none")]
    pub id_type: Option<IdType>,
    #[serde(rename = "issuingCountry", skip_serializing_if = "Option::is_none")]
    pub issuing_country: Option<CountryAlpha3>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nationality: Option<CountryAlpha3>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<Gender>,
    #[serde(rename = "issueDate", skip_serializing_if = "Option::is_none")]
    pub issue_date: Option<IsoDate>,
    #[serde(rename = "expireDate", skip_serializing_if = "Option::is_none")]
    pub expire_date: Option<IsoDate>,
    #[serde(rename = "ipAddress", skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<IpAddr>,
    #[serde(rename = "identityNumber", skip_serializing_if = "Option::is_none")]
    pub identity_number: Option<String>,
    #[serde(rename = "documentNumber", skip_serializing_if = "Option::is_none")]
    pub document_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_street: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_full: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cf1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cf2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cf3: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
}

impl Submission {
    /// Parses and validates plain JSON bytes, judging "the future" by today (UTC).
    pub fn parse(bytes: &[u8]) -> Result<Submission, Rejection> {
        RawSubmission::from_slice(bytes)?.validate(today_utc())
    }

    /// Builds the typed record from the per-field results of `validate`. Returns
    /// `None` only if a required slot is empty, which `validate` has ruled out.
    fn from_parsed(mut p: [Option<Parsed>; FIELDS.len()]) -> Option<Submission> {
        let mut take = |i: usize| p[i].take();
        let text = |v: Option<Parsed>| match v {
            Some(Parsed::Text(s)) => Some(s),
            _ => None,
        };
        let email = |v: Option<Parsed>| match v {
            Some(Parsed::Email(e)) => Some(e),
            _ => None,
        };
        let date = |v: Option<Parsed>| match v {
            Some(Parsed::Date(d)) => Some(d),
            _ => None,
        };
        let country = |v: Option<Parsed>| match v {
            Some(Parsed::Country(c)) => Some(c),
            _ => None,
        };
        Some(Submission {
            admin: email(take(0))?,
            email: email(take(1))?,
            full_name: text(take(2))?,
            birth_date: date(take(3))?,
            kyc_status: match take(4) {
                Some(Parsed::KycStatus(k)) => k,
                _ => return None,
            },
            first_name: text(take(5)),
            last_name: text(take(6)),
            id_type: match take(7) {
                Some(Parsed::IdType(t)) => Some(t),
                _ => None,
            },
            issuing_country: country(take(8)),
            nationality: country(take(9)),
            gender: match take(10) {
                Some(Parsed::Gender(g)) => Some(g),
                _ => None,
            },
            issue_date: date(take(ISSUE_DATE)),
            expire_date: date(take(EXPIRE_DATE)),
            ip_address: match take(13) {
                Some(Parsed::Ip(ip)) => Some(ip),
                _ => None,
            },
            identity_number: text(take(14)),
            document_number: text(take(15)),
            address_city: text(take(16)),
            address_country: text(take(17)),
            address_state: text(take(18)),
            address_street: text(take(19)),
            address_full: text(take(20)),
            cf1: text(take(21)),
            cf2: text(take(22)),
            cf3: text(take(23)),
            userid: text(take(24)),
        })
    }
}

impl fmt::Debug for Submission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submission")
            .field("kyc_status", &self.kyc_status)
            .field("id_type", &self.id_type)
            .finish_non_exhaustive()
    }
}

/// Today's date in UTC, the reference for "not in the future".
pub fn today_utc() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// A JSON object read with its keys in document order and duplicates refused.
struct RawObject(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut entries: Vec<(String, Value)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(FIELDS.len()));
                // Known keys seen so far, one bit per field; only unknown keys are
                // compared with the earlier ones.
                const _: () = assert!(FIELDS.len() <= 64);
                let mut known = 0u64;
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    let duplicate = match field_spec(&key) {
                        Some((i, _)) => {
                            let bit = 1u64 << i;
                            let seen = known & bit != 0;
                            known |= bit;
                            seen
                        }
                        None => entries.iter().any(|(k, _)| *k == key),
                    };
                    if duplicate {
                        return Err(de::Error::custom("duplicate key"));
                    }
                    entries.push((key, value));
                }
                Ok(RawObject(entries))
            }
        }
        d.deserialize_map(V)
    }
}
