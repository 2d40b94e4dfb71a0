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
use crate::fields::{Parsed, submission_fields};
use crate::types::{CountryAlpha3, Email, Gender, IdType, IsoDate, KycStatus};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

pub use crate::fields::{FieldSpec, FieldValue, Rule};

// The one table of the contract's fields (`docs/api.md` §2). Everything else — the typed
// `Submission`, `FIELDS`, parsing into the struct, serialisation, the store's
// columns and the OpenAPI request schema — is derived from it, so adding a field
// is adding a row here (and a migration for its column).
//
// Row: `rust_name: "jsonName", required|optional, Rule, plain|sealed "column";`
submission_fields! {
    /// Administrator e-mail registered for the project.
    admin: "admin", required, Email, plain "admin";
    /// The subject's e-mail address.
    email: "email", required, Email, plain "email";
    /// The subject's full name.
    full_name: "fullName", required, Text { max: 200 }, plain "full_name";
    /// `YYYY-MM-DD`, not in the future.
    birth_date: "birthDate", required, PastDate, plain "birth_date";
    /// The outcome of the identity check being migrated.
    kyc_status: "kycStatus", required, KycStatus, plain "kyc_status";
    /// The subject's given name.
    first_name: "firstName", optional, Text { max: 100 }, plain "first_name";
    /// The subject's family name.
    last_name: "lastName", optional, Text { max: 100 }, plain "last_name";
    /// The kind of identity document (`drvlic` is an alias of `drivers_license`).
    id_type: "idType", optional, IdType, plain "id_type";
    /// ISO 3166-1 alpha-3, any case; stored upper-case.
    issuing_country: "issuingCountry", optional, Country, plain "issuing_country";
    /// ISO 3166-1 alpha-3, any case; stored upper-case.
    nationality: "nationality", optional, Country, plain "nationality";
    /// `female` or `male`.
    gender: "gender", optional, Gender, plain "gender";
    /// `YYYY-MM-DD`.
    issue_date: "issueDate", optional, Date, plain "issue_date";
    /// `YYYY-MM-DD`, not before `issueDate`.
    expire_date: "expireDate", optional, Date, plain "expire_date";
    /// IPv4 or IPv6 literal.
    ip_address: "ipAddress", optional, Ip, plain "ip_address";
    /// The subject's identity (e.g. national id) number.
    identity_number: "identityNumber", optional, Text { max: 100 }, sealed "identity_number_enc";
    /// The identity document's number.
    document_number: "documentNumber", optional, Text { max: 100 }, sealed "document_number_enc";
    /// Address: city.
    address_city: "address_city", optional, Text { max: 200 }, plain "address_city";
    /// Address: country, free text.
    address_country: "address_country", optional, Text { max: 200 }, plain "address_country";
    /// Address: state or region.
    address_state: "address_state", optional, Text { max: 200 }, plain "address_state";
    /// Address: street and number.
    address_street: "address_street", optional, Text { max: 200 }, plain "address_street";
    /// Address: the whole address on one line.
    address_full: "address_full", optional, Text { max: 500 }, plain "address_full";
    /// Client-defined custom field 1, stored as sent.
    cf1: "cf1", optional, Text { max: 1000 }, plain "cf1";
    /// Client-defined custom field 2, stored as sent.
    cf2: "cf2", optional, Text { max: 1000 }, plain "cf2";
    /// Client-defined custom field 3, stored as sent.
    cf3: "cf3", optional, Text { max: 1000 }, plain "cf3";
    /// The client's own id for the subject; echoed in result events.
    userid: "userid", optional, Text { max: 200 }, plain "userid";
}

/// Looks up a field by its wire name.
pub fn field_spec(name: &str) -> Option<(usize, &'static FieldSpec)> {
    FIELD_POSITIONS
        .get(name)
        .map(|&index| (index, &FIELDS[index]))
}

/// Each field's position in [`FIELDS`] by name: every key of every record is
/// looked up here. A fixed-seed hasher is enough: the table never grows, so
/// no choice of keys can make lookups degrade.
static FIELD_POSITIONS: std::sync::LazyLock<
    std::collections::HashMap<&'static str, usize, foldhash::fast::FixedState>,
> = std::sync::LazyLock::new(|| {
    FIELDS
        .iter()
        .enumerate()
        .map(|(index, spec)| (spec.name, index))
        .collect()
});

/// The position of a field in [`FIELDS`], checked when compiling: a name that is
/// not in the table stops the build.
const fn field_index(name: &str) -> usize {
    let mut i = 0;
    while i < FIELDS.len() {
        if str_eq(FIELDS[i].name, name) {
            return i;
        }
        i += 1;
    }
    panic!("no such field in FIELDS")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A JSON object with its keys in document order, not yet checked.
///
/// Parsing keeps every key, so "the first unknown key" and "the first bad value"
/// can be named exactly. A key that occurs twice makes the document ambiguous
/// and is refused as `invalid_payload` rather than silently taking one value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawSubmission {
    entries: Vec<Entry>,
}

/// One key of an object and its value, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    key: Key,
    /// The value as read.
    pub value: RawField,
}

/// A key: the position of a field of [`FIELDS`] (no copy of the name is made),
/// or a key the contract does not have.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Field(usize),
    Unknown(String),
}

impl Entry {
    /// The key as sent.
    pub fn key(&self) -> &str {
        match &self.key {
            Key::Field(index) => FIELDS[*index].name,
            Key::Unknown(key) => key,
        }
    }
}

/// A value as read. Every field of the contract takes a string ("string data
/// only"); any other value is kept as it was read, to be refused as a bad value
/// (or, for a correction's `data`, to be looked at as an object).
///
/// A string is a string only when the document has a string there: an object
/// is never read as one, whatever its keys (`serde_json::Value`, with the
/// `raw_value` feature this crate turns on, reads an object whose only key is
/// serde_json's private raw-value token as the string inside it).
#[derive(Debug, Clone, PartialEq)]
pub enum RawField {
    /// A JSON string.
    Text(String),
    /// Any other JSON value: a number, `true`/`false`, `null`, an array or an object.
    Other(Value),
}

impl RawField {
    /// The string, if the value is one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            RawField::Text(s) => Some(s),
            RawField::Other(_) => None,
        }
    }
}

impl RawSubmission {
    /// Parses bytes that must hold one JSON object (and nothing after it).
    pub fn from_slice(bytes: &[u8]) -> Result<RawSubmission, Rejection> {
        // UTF-8 checked once for the whole body, rather than string by string
        // as `serde_json::from_slice` does.
        let text =
            std::str::from_utf8(bytes).map_err(|_| Rejection::new(ErrorCode::InvalidPayload))?;
        let object: RawObject =
            serde_json::from_str(text).map_err(|_| Rejection::new(ErrorCode::InvalidPayload))?;
        Ok(RawSubmission { entries: object.0 })
    }

    /// The keys and their values, in document order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Applies `docs/api.md` §2 in the order of `docs/api.md` §3, judging "the
    /// future" by `today`. The values move into the [`Submission`]; nothing is
    /// copied that need not be.
    pub fn validate(self, today: time::Date) -> Result<Submission, Rejection> {
        // 1. Unknown keys, first in document order. Keys are unique (parsing
        // refuses duplicates), so there are at most as many as fields.
        let mut slots: [Option<RawField>; FIELDS.len()] = std::array::from_fn(|_| None);
        let mut order = [0usize; FIELDS.len()];
        let mut count = 0;
        for Entry { key, value } in self.entries {
            let index = match key {
                Key::Field(index) => index,
                Key::Unknown(key) => return Err(Rejection::invalid_parameter(&key)),
            };
            slots[index] = Some(value);
            order[count] = index;
            count += 1;
        }
        let order = &order[..count];

        // 2. Required fields absent, or strings that are empty after trimming.
        let missing: Vec<String> = FIELDS
            .iter()
            .zip(&slots)
            .filter(|(spec, value)| {
                spec.required
                    && value
                        .as_ref()
                        .is_none_or(|v| v.as_text().is_some_and(|s| s.trim().is_empty()))
            })
            .map(|(spec, _)| spec.name.to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(Rejection::missing(missing));
        }

        // 3. Values, each parsed by its own rule; the first failure in document order.
        let mut parsed: [Option<Parsed>; FIELDS.len()] = std::array::from_fn(|_| None);
        let mut failed: [bool; FIELDS.len()] = [false; FIELDS.len()];
        for &index in order {
            let spec = &FIELDS[index];
            let Some(value) = slots[index].take() else {
                continue;
            };
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

// The two fields of the one rule between fields.
const ISSUE_DATE: usize = field_index("issueDate");
const EXPIRE_DATE: usize = field_index("expireDate");

/// `Ok(None)`: absent (an optional field sent as `""` or white space).
fn parse_value(spec: &FieldSpec, value: RawField, today: time::Date) -> Result<Option<Parsed>, ()> {
    // "String data only": numbers, booleans, null, arrays and objects are bad values.
    let RawField::Text(raw) = value else {
        return Err(());
    };
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
        Rule::Text { max } => {
            // No more characters than bytes: counting only when the bytes exceed.
            let fits = s.len() <= max || s.chars().count() <= max;
            fits.then(|| Parsed::Text(trimmed(raw)))
        }
        Rule::Date => IsoDate::parse(s).map(Parsed::Date),
        Rule::PastDate => IsoDate::parse(s).filter(|d| d.0 <= today).map(Parsed::Date),
        Rule::KycStatus => KycStatus::parse(s).map(Parsed::KycStatus),
        Rule::IdType => IdType::parse(s).map(Parsed::IdType),
        Rule::Country => CountryAlpha3::parse(s).map(Parsed::Country),
        Rule::Gender => Gender::parse(s).map(Parsed::Gender),
        Rule::Ip => s.parse::<IpAddr>().ok().map(Parsed::Ip),
    };
    parsed.map(Some).ok_or(())
}

/// The string without its surrounding white space, reusing it when it has none.
fn trimmed(raw: String) -> String {
    let s = raw.trim();
    if s.len() == raw.len() {
        raw
    } else {
        s.to_owned()
    }
}

impl Submission {
    /// Parses and validates plain JSON bytes, judging "the future" by today (UTC).
    pub fn parse(bytes: &[u8]) -> Result<Submission, Rejection> {
        RawSubmission::from_slice(bytes)?.validate(today_utc())
    }
}

impl Serialize for Submission {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let values = self.values();
        let mut map = s.serialize_map(Some(values.iter().flatten().count()))?;
        for (spec, value) in FIELDS.iter().zip(values) {
            if let Some(value) = value {
                map.serialize_entry(spec.name, &value)?;
            }
        }
        map.end()
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

/// At most this many keys in one object (`docs/api.md` §2, "Shape of the document"). The
/// contract has 25 fields, so a longer object can never be valid; refusing it
/// while parsing bounds the work and memory one body can cost.
pub const MAX_KEYS: usize = 64;

/// At most this many bytes in one key. No field name comes near it; the bound
/// keeps an unknown key, which `invalid_parameter` names in its message (and so
/// in stored results and events), from carrying a large part of the body along.
pub const MAX_KEY_BYTES: usize = 256;

/// A JSON object read with its keys in document order and duplicates refused.
struct RawObject(Vec<Entry>);

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut entries: Vec<Entry> =
                    Vec::with_capacity(map.size_hint().unwrap_or(FIELDS.len()).min(MAX_KEYS));
                // Known keys seen so far, one bit per field; unknown keys in a hash
                // set, so the duplicate check costs the same for every key (linear
                // in the body, whatever its keys).
                const _: () = assert!(FIELDS.len() <= 64);
                let mut known = 0u64;
                let mut unknown: HashSet<String> = HashSet::new();
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    if entries.len() == MAX_KEYS {
                        return Err(de::Error::custom("too many keys"));
                    }
                    let duplicate = match &key {
                        Key::Field(i) => {
                            let bit = 1u64 << i;
                            let seen = known & bit != 0;
                            known |= bit;
                            seen
                        }
                        Key::Unknown(key) => !unknown.insert(key.clone()),
                    };
                    if duplicate {
                        return Err(de::Error::custom("duplicate key"));
                    }
                    let value = map.next_value_seed(FieldSeed)?;
                    entries.push(Entry { key, value });
                }
                Ok(RawObject(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads a key: a field's name becomes its position, any other key is kept
/// (up to [`MAX_KEY_BYTES`]).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        if key.len() > MAX_KEY_BYTES {
            return Err(E::custom("key too long"));
        }
        Ok(match field_spec(key) {
            Some((index, _)) => Key::Field(index),
            None => Key::Unknown(key.to_owned()),
        })
    }
}

/// Reads a value: a string as [`RawField::Text`], anything else as it is.
struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = RawField;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawField, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = RawField;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<RawField, E> {
        Ok(RawField::Text(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<RawField, E> {
        Ok(RawField::Text(s))
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<RawField, E> {
        Ok(RawField::Other(Value::Bool(b)))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<RawField, E> {
        Ok(RawField::Other(Value::from(n)))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<RawField, E> {
        Ok(RawField::Other(Value::from(n)))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<RawField, E> {
        Ok(RawField::Other(Value::from(n)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawField, E> {
        Ok(RawField::Other(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawField, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(RawField::Other(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawField, A::Error> {
        // Entry by entry rather than through `Value`'s own visitor, which would
        // read an object keyed by serde_json's raw-value token as a string.
        let mut object = serde_json::Map::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        Ok(RawField::Other(Value::Object(object)))
    }
}

/// The fields a correction (`PATCH /v3/submission`, `docs/api.md` §15) may change.
pub const CORRECTABLE: [&str; 13] = [
    "kycStatus",
    "idType",
    "issuingCountry",
    "fullName",
    "firstName",
    "lastName",
    "gender",
    "birthDate",
    "nationality",
    "issueDate",
    "expireDate",
    "identityNumber",
    "documentNumber",
];

/// A correction's `data` object checked by the rules of the migration endpoint
/// (`docs/api.md` §2–§3), field by field, in document order: a key that is not
/// in `allowed` (or no field at all) is `invalid_parameter` naming it; a value
/// that breaks its field's rule is `invalid_format` naming it; an empty value
/// clears an optional field and is `invalid_format` for a required one. Returns
/// each field with its canonical wire text (`None`: cleared). The one rule
/// between fields (expireDate not before issueDate) is checked here when both
/// are present; against a stored value it is the caller's to check.
pub fn validate_fields(
    entries: &[Entry],
    allowed: &[&str],
    today: time::Date,
) -> Result<Vec<(&'static FieldSpec, Option<String>)>, Rejection> {
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        if !allowed.contains(&entry.key()) || !matches!(entry.key, Key::Field(_)) {
            return Err(Rejection::invalid_parameter(entry.key()));
        }
    }
    let (mut issue, mut expire) = (None, None);
    for entry in entries {
        let Key::Field(index) = entry.key else {
            return Err(Rejection::invalid_parameter(entry.key()));
        };
        let spec = &FIELDS[index];
        let parsed = parse_value(spec, entry.value.clone(), today)
            .map_err(|()| Rejection::invalid_format(spec.name))?;
        if parsed.is_none() && spec.required {
            return Err(Rejection::invalid_format(spec.name));
        }
        if let Some(Parsed::Date(d)) = &parsed {
            if index == ISSUE_DATE {
                issue = Some(d.0);
            } else if index == EXPIRE_DATE {
                expire = Some(d.0);
            }
        }
        out.push((spec, parsed.as_ref().map(parsed_text)));
    }
    if let (Some(issue), Some(expire)) = (issue, expire)
        && expire < issue
    {
        return Err(Rejection::invalid_format(FIELDS[EXPIRE_DATE].name));
    }
    Ok(out)
}

/// A parsed value's canonical wire text, as it is stored and serialised.
fn parsed_text(parsed: &Parsed) -> String {
    match parsed {
        Parsed::Email(e) => e.as_str().to_owned(),
        Parsed::Text(s) => s.clone(),
        Parsed::Date(d) => d.to_string(),
        Parsed::KycStatus(k) => k.as_str().to_owned(),
        Parsed::IdType(t) => t.as_str().to_owned(),
        Parsed::Country(c) => c.as_str().to_owned(),
        Parsed::Gender(g) => g.as_str().to_owned(),
        Parsed::Ip(ip) => ip.to_string(),
    }
}

/// A nested object read like a body: keys in document order, duplicates refused
/// (the `data` object of a correction).
impl<'de> Deserialize<'de> for RawSubmission {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawObject::deserialize(d).map(|o| RawSubmission { entries: o.0 })
    }
}
