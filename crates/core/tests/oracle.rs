//! Property tests against an independent oracle: a small reference validator
//! written here from the contract's rule table (docs/api.md §2, order of checks
//! §3), not from `kyc_core::submission::FIELDS`. Generated records are mostly
//! valid, with one to three targeted changes, so that every rule is reached:
//! every field, dates on both sides of every boundary, lengths at and over each
//! limit in Unicode scalar values, Unicode white space and multi-byte
//! characters, empty and blank values, values that are not strings, unknown
//! keys and document order.
//!
//! For every record the implementation's verdict (accepted, or the error code
//! with its fields) must equal the oracle's, and an accepted record must hold
//! exactly the values the oracle normalised.

#![allow(clippy::unwrap_used)]

use kyc_core::{ErrorCode, RawSubmission};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

/// "Today" for `birthDate`'s rule, passed to the implementation as well.
const TODAY: (i32, u32, u32) = (2024, 6, 15);

// ---------------------------------------------------------------------------
// The oracle: docs/api.md §2, written out again
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    Email,
    Text(usize),
    Date,
    /// A date not after today.
    BirthDate,
    KycStatus,
    IdType,
    Country,
    Gender,
    Ip,
}

/// The rule table, in its order (which is also the order `missing_data` lists
/// the missing fields in).
const TABLE: [(&str, bool, Rule); 25] = [
    ("admin", true, Rule::Email),
    ("email", true, Rule::Email),
    ("fullName", true, Rule::Text(200)),
    ("birthDate", true, Rule::BirthDate),
    ("kycStatus", true, Rule::KycStatus),
    ("firstName", false, Rule::Text(100)),
    ("lastName", false, Rule::Text(100)),
    ("idType", false, Rule::IdType),
    ("issuingCountry", false, Rule::Country),
    ("nationality", false, Rule::Country),
    ("gender", false, Rule::Gender),
    ("issueDate", false, Rule::Date),
    ("expireDate", false, Rule::Date),
    ("ipAddress", false, Rule::Ip),
    ("identityNumber", false, Rule::Text(100)),
    ("documentNumber", false, Rule::Text(100)),
    ("address_city", false, Rule::Text(200)),
    ("address_country", false, Rule::Text(200)),
    ("address_state", false, Rule::Text(200)),
    ("address_street", false, Rule::Text(200)),
    ("address_full", false, Rule::Text(500)),
    ("cf1", false, Rule::Text(1000)),
    ("cf2", false, Rule::Text(1000)),
    ("cf3", false, Rule::Text(1000)),
    ("userid", false, Rule::Text(200)),
];

const ID_TYPES: [&str; 8] = [
    "drivers_license",
    "government_id",
    "passport",
    "residence_permit",
    "vehicle_registration_certificate",
    "visa",
    "aadhaar",
    "pancard",
];

/// Country codes the generators use whose status the oracle knows: officially
/// assigned ones, and reserved or made-up ones that are refused.
const ASSIGNED: [&str; 8] = ["USA", "DEU", "FRA", "GBR", "JPN", "BRA", "IND", "ZAF"];
const NOT_ASSIGNED: [&str; 6] = ["UKK", "XKX", "XXX", "AAA", "ZZZ", "EUR"];

fn rule_of(name: &str) -> Option<(bool, Rule)> {
    TABLE
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, r, rule)| (r, rule))
}

/// What the oracle expects: the normalised values (accepted) or the code and its
/// fields.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Accepted(Vec<(String, String)>),
    Rejected(ErrorCode, Vec<String>),
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// `YYYY-MM-DD`, ten characters, a day that exists.
fn date(s: &str) -> Option<(i32, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| {
        b[r.clone()]
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| s[r].parse::<u32>().unwrap())
    };
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let y = y as i32;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days).contains(&d).then_some((y, m, d))
}

fn email(s: &str) -> bool {
    if !s.is_ascii() || s.len() > 254 {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels.last().unwrap().len() >= 2;
    local_ok && domain_ok
}

/// A present, non-blank, trimmed value under its rule: the stored form, or
/// `None` when it breaks the rule.
fn check(rule: Rule, s: &str) -> Option<String> {
    if s.contains('\0') {
        return None;
    }
    let ok = |b: bool| b.then(|| s.to_owned());
    match rule {
        Rule::Email => ok(email(s)),
        Rule::Text(max) => ok(s.chars().count() <= max),
        Rule::Date => ok(date(s).is_some()),
        Rule::BirthDate => ok(date(s).is_some_and(|d| d <= TODAY)),
        Rule::KycStatus => ok(s == "approved" || s == "rejected"),
        Rule::Gender => ok(s == "female" || s == "male"),
        Rule::IdType if s == "drvlic" => Some("drivers_license".to_owned()),
        Rule::IdType => ok(ID_TYPES.contains(&s)),
        Rule::Country => {
            let upper = s.to_ascii_uppercase();
            if ASSIGNED.contains(&upper.as_str()) {
                Some(upper)
            } else {
                assert!(
                    NOT_ASSIGNED.contains(&upper.as_str())
                        || upper.chars().count() != 3
                        || !upper.chars().all(|c| c.is_ascii_alphabetic()),
                    "the oracle does not know country code {s:?}"
                );
                None
            }
        }
        Rule::Ip => ok(s.parse::<std::net::IpAddr>().is_ok()),
    }
}

fn oracle(entries: &[(String, Value)]) -> Verdict {
    // Unknown keys, first in document order.
    if let Some((key, _)) = entries.iter().find(|(k, _)| rule_of(k).is_none()) {
        return Verdict::Rejected(ErrorCode::InvalidParameter, vec![key.clone()]);
    }
    let value_of = |name: &str| entries.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    // Missing: required and absent, or a string that is blank after trimming.
    let missing: Vec<String> = TABLE
        .iter()
        .filter(|(name, required, _)| {
            *required
                && match value_of(name) {
                    None => true,
                    Some(Value::String(s)) => s.trim().is_empty(),
                    Some(_) => false,
                }
        })
        .map(|(name, _, _)| (*name).to_owned())
        .collect();
    if !missing.is_empty() {
        return Verdict::Rejected(ErrorCode::MissingData, missing);
    }
    // Values in document order; blank optional values count as absent.
    let mut stored = Vec::new();
    let mut bad = Vec::new();
    for (key, value) in entries {
        let (_, rule) = rule_of(key).unwrap();
        match value {
            Value::String(s) if s.trim().is_empty() => {}
            Value::String(s) => match check(rule, s.trim()) {
                Some(v) => stored.push((key.clone(), v)),
                None => bad.push(key.clone()),
            },
            _ => bad.push(key.clone()),
        }
    }
    // expireDate not before issueDate, when both are valid: expireDate's own rule.
    let valid_date = |name: &str| {
        stored
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| date(v))
    };
    if let (Some(issue), Some(expire)) = (valid_date("issueDate"), valid_date("expireDate"))
        && expire < issue
    {
        bad.push("expireDate".to_owned());
    }
    // The first bad value in document order.
    if let Some((key, _)) = entries.iter().find(|(k, _)| bad.contains(k)) {
        return Verdict::Rejected(ErrorCode::InvalidFormat, vec![key.clone()]);
    }
    stored.sort();
    Verdict::Accepted(stored)
}

// ---------------------------------------------------------------------------
// The implementation's verdict in the same terms
// ---------------------------------------------------------------------------

fn to_json(entries: &[(String, Value)]) -> Vec<u8> {
    let members: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
        .collect();
    format!("{{{}}}", members.join(",")).into_bytes()
}

fn implementation(entries: &[(String, Value)]) -> Verdict {
    let today = time::Date::from_calendar_date(
        TODAY.0,
        time::Month::try_from(TODAY.1 as u8).unwrap(),
        TODAY.2 as u8,
    )
    .unwrap();
    let result = RawSubmission::from_slice(&to_json(entries)).and_then(|raw| raw.validate(today));
    match result {
        Ok(submission) => {
            let Value::Object(map) = serde_json::to_value(&submission).unwrap() else {
                panic!("a submission serialises as an object");
            };
            let mut stored: Vec<(String, String)> = map
                .into_iter()
                .map(|(k, v)| (k, v.as_str().expect("stored values are strings").to_owned()))
                .collect();
            stored.sort();
            Verdict::Accepted(stored)
        }
        Err(rejection) => Verdict::Rejected(rejection.code, rejection.parameters),
    }
}

// ---------------------------------------------------------------------------
// Generators: a valid record, then one to three targeted changes
// ---------------------------------------------------------------------------

/// A valid value for every field (not the crate's example record).
fn valid_base() -> Vec<(String, Value)> {
    [
        ("admin", "ops@corp.example"),
        ("email", "ann.lee@mail.example.org"),
        ("fullName", "Ann Lee"),
        ("birthDate", "1985-02-28"),
        ("kycStatus", "rejected"),
        ("firstName", "Ann"),
        ("lastName", "Lee"),
        ("idType", "visa"),
        ("issuingCountry", "fra"),
        ("nationality", "JPN"),
        ("gender", "male"),
        ("issueDate", "2019-03-01"),
        ("expireDate", "2029-02-28"),
        ("ipAddress", "2001:db8::7"),
        ("identityNumber", "AB 12 34"),
        ("documentNumber", "P-778"),
        ("address_city", "Lyon"),
        ("address_country", "France"),
        ("address_state", "Rhône"),
        ("address_street", "1 Rue Neuve"),
        ("address_full", "1 Rue Neuve, 69001 Lyon"),
        ("cf1", "a"),
        ("cf2", "b"),
        ("cf3", "c"),
        ("userid", "u-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
    .collect()
}

/// `n` characters cycling through `unit` (which may be multi-byte).
fn repeat_chars(unit: &str, n: usize) -> String {
    unit.chars().cycle().take(n).collect()
}

/// Values aimed at a text rule with limit `max`: at and over the limit, in
/// ASCII, multi-byte and astral characters, with white space around (trimmed
/// before counting) and inside.
fn text_value(max: usize) -> BoxedStrategy<String> {
    (
        select(vec!["x", "é", "日本", "😀", "a b"]),
        select(vec![max - 1, max, max + 1]),
        select(vec!["", " ", "\u{3000}", "\t\n", "\u{a0}"]),
    )
        .prop_map(|(unit, n, pad)| format!("{pad}{}{pad}", repeat_chars(unit, n)))
        .boxed()
}

/// Dates on both sides of every boundary: leap days, month ends, impossible
/// days and months, wrong shapes, today and the days around it.
fn date_value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(vec![
            "2024-02-29", "2023-02-29", "2000-02-29", "1900-02-29", "2023-02-28",
            "2023-04-30", "2023-04-31", "2023-06-31", "2023-12-31", "2023-12-32",
            "2023-13-01", "2023-00-10", "2023-01-00", "2023-1-01", "23-01-01",
            "+2023-01-01", "2023-01-01T00:00:00", "2023/01/01", " 2023-01-01 ",
            "2024-06-14", "2024-06-15", "2024-06-16", "2024-07-01", "2025-01-01",
            "0000-01-01", "9999-12-31", "２０２３-01-01",
        ])
        .prop_map(str::to_owned),
        1 => (1000..3000i32, 0..14u32, 0..33u32)
            .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
    ]
    .boxed()
}

fn email_value() -> BoxedStrategy<String> {
    let long_local = format!("{}@b.co", "a".repeat(64));
    let too_long_local = format!("{}@b.co", "a".repeat(65));
    let label = "d".repeat(63);
    // 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254 characters, then 255.
    let longest = format!("{}@{label}.{label}.{}", "a".repeat(64), "e".repeat(61));
    let too_long = format!("{}@{label}.{label}.{}", "a".repeat(64), "e".repeat(62));
    prop_oneof![
        3 => select(vec![
            "a@b.co".to_owned(), "A.B+tag@Example.COM".to_owned(),
            "x!#$%&'*+/=?^_`{|}~-@ex-ample.org".to_owned(), "a@b".to_owned(),
            "a@b.c".to_owned(), ".a@b.co".to_owned(), "a.@b.co".to_owned(),
            "a..b@b.co".to_owned(), "\"a\"@b.co".to_owned(), "a b@b.co".to_owned(),
            "é@b.co".to_owned(), "a@é.co".to_owned(), "a@-b.co".to_owned(), "a@b-.co".to_owned(),
            "@b.co".to_owned(), "a@".to_owned(), "a@b..co".to_owned(), "a@@b.co".to_owned(),
            "a@b_c.co".to_owned(), format!("a@{}x.co", label), long_local, too_long_local,
            longest, too_long, " a@b.co\u{2003}".to_owned(),
        ]),
        1 => "[a-z.+-]{0,5}@[a-z0-9.-]{0,8}",
    ]
    .boxed()
}

/// Values for a field's own rule: mostly near its boundaries.
fn value_for(rule: Rule) -> BoxedStrategy<String> {
    match rule {
        Rule::Email => email_value(),
        Rule::Text(max) => text_value(max),
        Rule::Date | Rule::BirthDate => date_value(),
        Rule::KycStatus => select(vec![
            "approved", "rejected", "Approved", "approve", "pending",
        ])
        .prop_map(str::to_owned)
        .boxed(),
        Rule::Gender => select(vec!["female", "male", "Female", "other", "f"])
            .prop_map(str::to_owned)
            .boxed(),
        Rule::IdType => {
            let mut pool: Vec<&str> = ID_TYPES.to_vec();
            pool.extend(["drvlic", "Passport", "DRVLIC", "id_card", "passport "]);
            select(pool).prop_map(str::to_owned).boxed()
        }
        Rule::Country => {
            let mut pool: Vec<String> = ASSIGNED.iter().map(|s| (*s).to_owned()).collect();
            pool.extend(NOT_ASSIGNED.iter().map(|s| (*s).to_owned()));
            pool.extend(["usa", "dEu", "US", "USAA", "U S"].map(str::to_owned));
            select(pool).boxed()
        }
        Rule::Ip => select(vec![
            "192.0.2.1",
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "1.2.3",
            "::1",
            "2001:db8::1",
            "::ffff:192.0.2.1",
            "[::1]",
            "192.0.2.1:80",
            "10.0.0.0/8",
            "fe80::1%eth0",
            "2001:db8:::1",
            "localhost",
        ])
        .prop_map(str::to_owned)
        .boxed(),
    }
}

/// Values that are not strings, and blank or NUL-bearing strings.
fn odd_value() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        Just(Value::Bool(true)),
        Just(Value::from(42)),
        Just(Value::from(1.5)),
        Just(serde_json::json!(["a"])),
        Just(serde_json::json!({"a": "b"})),
        Just(Value::from("")),
        Just(Value::from("   ")),
        Just(Value::from("\u{2003}\t")),
        Just(Value::from("a\u{0}b")),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
enum Change {
    /// Remove the field at this index of the table.
    Remove(usize),
    /// Set the field to a value aimed at its rule.
    Set(usize, String),
    /// Set the field to an odd value.
    Odd(usize, Value),
    /// Insert an unknown key at a position (modulo the length).
    Unknown(String, usize),
    /// issueDate and expireDate together.
    Dates(String, String),
}

fn change() -> impl Strategy<Value = Change> {
    let field = 0..TABLE.len();
    prop_oneof![
        2 => field.clone().prop_map(Change::Remove),
        8 => field.clone().prop_flat_map(|i| value_for(TABLE[i].2).prop_map(move |v| Change::Set(i, v))),
        2 => (field, odd_value()).prop_map(|(i, v)| Change::Odd(i, v)),
        1 => (select(vec!["FullName", "user_id", "", "photo", "adress_city"]), any::<usize>())
            .prop_map(|(k, p)| Change::Unknown(k.to_owned(), p)),
        2 => (date_value(), date_value()).prop_map(|(a, b)| Change::Dates(a, b)),
    ]
}

fn set(entries: &mut Vec<(String, Value)>, name: &str, value: Value) {
    match entries.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value,
        None => entries.push((name.to_owned(), value)),
    }
}

/// A mostly valid record: the base (all fields, or only the required ones), in
/// a shuffled document order, with one to three changes.
fn record() -> impl Strategy<Value = Vec<(String, Value)>> {
    (
        any::<bool>(),
        Just(valid_base()).prop_shuffle(),
        prop::collection::vec(change(), 0..=3),
    )
        .prop_map(|(minimal, base, changes)| {
            let mut entries: Vec<(String, Value)> = base
                .into_iter()
                .filter(|(k, _)| !minimal || rule_of(k).unwrap().0)
                .collect();
            for change in changes {
                match change {
                    Change::Remove(i) => entries.retain(|(k, _)| k != TABLE[i].0),
                    Change::Set(i, v) => set(&mut entries, TABLE[i].0, Value::String(v)),
                    Change::Odd(i, v) => set(&mut entries, TABLE[i].0, v),
                    Change::Unknown(k, p) => {
                        if !entries.iter().any(|(e, _)| *e == k) {
                            let at = p % (entries.len() + 1);
                            entries.insert(at, (k, Value::from("x")));
                        }
                    }
                    Change::Dates(issue, expire) => {
                        set(&mut entries, "issueDate", Value::String(issue));
                        set(&mut entries, "expireDate", Value::String(expire));
                    }
                }
            }
            entries
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// The implementation decides every record as the oracle does, and an
    /// accepted record holds exactly the trimmed, normalised values.
    #[test]
    fn the_verdict_equals_the_oracles(entries in record()) {
        let expected = oracle(&entries);
        let actual = implementation(&entries);
        prop_assert_eq!(actual, expected, "record {}", String::from_utf8_lossy(&to_json(&entries)));
    }
}

/// The generators reach every outcome: each field is at some point the first
/// offending one, and every code of §2 and §3 that validation produces shows up.
#[test]
fn the_generators_reach_every_rule() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;
    let mut runner = TestRunner::deterministic();
    let strategy = record();
    let mut invalid_fields = BTreeSet::new();
    let mut missing_fields = BTreeSet::new();
    let mut codes = BTreeSet::new();
    let mut accepted = 0;
    for _ in 0..20_000 {
        let entries = strategy.new_tree(&mut runner).unwrap().current();
        match oracle(&entries) {
            Verdict::Accepted(_) => accepted += 1,
            Verdict::Rejected(code, fields) => {
                codes.insert(code.as_str());
                match code {
                    ErrorCode::InvalidFormat => {
                        invalid_fields.insert(fields[0].clone());
                    }
                    ErrorCode::MissingData => missing_fields.extend(fields),
                    _ => {}
                }
            }
        }
    }
    let all: BTreeSet<String> = TABLE.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    let required: BTreeSet<String> = TABLE
        .iter()
        .filter(|t| t.1)
        .map(|(n, _, _)| (*n).to_owned())
        .collect();
    assert_eq!(
        invalid_fields, all,
        "every field is the first bad one sometimes"
    );
    assert_eq!(
        missing_fields, required,
        "every required field goes missing"
    );
    assert_eq!(
        codes,
        ["invalid_format", "invalid_parameter", "missing_data"].into(),
    );
    assert!(
        accepted > 2_000,
        "mostly valid records: {accepted} accepted"
    );
}

/// The oracle's own boundaries, spelled out (so a mistake in it shows here
/// rather than as a disagreement of unclear origin).
#[test]
fn the_oracle_knows_the_boundaries() {
    assert!(date("2024-02-29").is_some() && date("2000-02-29").is_some());
    assert!(date("2023-02-29").is_none() && date("1900-02-29").is_none());
    assert!(date("2023-04-31").is_none() && date("2023-12-31").is_some());
    assert_eq!(
        check(Rule::BirthDate, "2024-06-15").as_deref(),
        Some("2024-06-15")
    );
    assert_eq!(check(Rule::BirthDate, "2024-06-16"), None);
    assert!(check(Rule::Text(200), &"é".repeat(200)).is_some());
    assert!(check(Rule::Text(200), &"é".repeat(201)).is_none());
    assert!(email(&format!(
        "{}@{}.{}.{}",
        "a".repeat(64),
        "d".repeat(63),
        "d".repeat(63),
        "e".repeat(61)
    )));
    assert!(!email(&format!(
        "{}@{}.{}.{}",
        "a".repeat(64),
        "d".repeat(63),
        "d".repeat(63),
        "e".repeat(62)
    )));
    assert_eq!(
        check(Rule::IdType, "drvlic").as_deref(),
        Some("drivers_license")
    );
    assert_eq!(check(Rule::Country, "dEu").as_deref(), Some("DEU"));
}
