//! The field table: every row reaches the typed `Submission`, its values and its
//! serialisation, and the table agrees with the spec's required list.

#![allow(clippy::unwrap_used)]

mod common;

use common::{REQUIRED, TODAY, full_record, to_json};
use kyc_core::RawSubmission;
use kyc_core::submission::{FIELDS, FieldValue, Rule};
use kyc_core::types::{Gender, IdType, KycStatus};
use std::collections::HashSet;

#[test]
fn names_and_columns_are_unique() {
    let names: HashSet<_> = FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(names.len(), FIELDS.len(), "JSON names");
    let columns: HashSet<_> = FIELDS.iter().map(|f| f.column).collect();
    assert_eq!(columns.len(), FIELDS.len(), "columns");
}

#[test]
fn required_fields_are_those_of_the_spec() {
    let required: Vec<_> = FIELDS
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    assert_eq!(required, REQUIRED);
}

#[test]
fn only_the_two_numbers_are_sealed() {
    let sealed: Vec<_> = FIELDS.iter().filter(|f| f.sealed).map(|f| f.name).collect();
    assert_eq!(sealed, ["identityNumber", "documentNumber"]);
}

/// A record with every field set yields a value for every row, of the row's
/// kind, and serialises every row under its JSON name.
#[test]
fn every_field_of_a_full_record_comes_through() {
    let record = full_record();
    assert_eq!(record.len(), FIELDS.len(), "the fixture sets every field");
    let submission = RawSubmission::from_slice(&to_json(&record))
        .unwrap()
        .validate(TODAY)
        .unwrap();
    let values = submission.values();
    for (spec, value) in FIELDS.iter().zip(values) {
        let value = value.unwrap_or_else(|| panic!("{}: has a value", spec.name));
        let kind_matches = matches!(
            (spec.rule, value),
            (Rule::Email, FieldValue::Email(_))
                | (Rule::Text { .. }, FieldValue::Text(_))
                | (Rule::Date | Rule::PastDate, FieldValue::Date(_))
                | (Rule::KycStatus, FieldValue::KycStatus(_))
                | (Rule::IdType, FieldValue::IdType(_))
                | (Rule::Country, FieldValue::Country(_))
                | (Rule::Gender, FieldValue::Gender(_))
                | (Rule::Ip, FieldValue::Ip(_))
        );
        assert!(
            kind_matches,
            "{}: {:?} is a {value:?}",
            spec.name, spec.rule
        );
        let sent = record
            .iter()
            .find(|(k, _)| k == spec.name)
            .unwrap()
            .1
            .as_str()
            .unwrap();
        // The fixture's values are already canonical (upper-case countries, no alias).
        assert_eq!(value.to_text(), sent, "{}: wire form", spec.name);
    }

    let serialised = serde_json::to_value(&submission).unwrap();
    let keys: HashSet<&str> = serialised
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let names: HashSet<&str> = FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(keys, names, "serialised under every JSON name");
}

/// A rule, its parser (does it accept a string?) and how many strings it accepts.
type ClosedRule = (Rule, fn(&str) -> bool, usize);

#[test]
fn closed_rules_list_exactly_what_they_accept() {
    let cases: [ClosedRule; 3] = [
        (
            Rule::KycStatus,
            |s| KycStatus::parse(s).is_some(),
            KycStatus::ALL.len(),
        ),
        (
            Rule::IdType,
            |s| IdType::parse(s).is_some(),
            IdType::ALL.len() + 1,
        ),
        (
            Rule::Gender,
            |s| Gender::parse(s).is_some(),
            Gender::ALL.len(),
        ),
    ];
    for (rule, parses, count) in cases {
        let values = rule.accepted_values().unwrap();
        assert_eq!(values.len(), count, "{rule:?}: every value and alias");
        for value in values {
            assert!(parses(value), "{rule:?}: {value} parses");
        }
    }
    assert_eq!(Rule::Text { max: 1 }.accepted_values(), None);
}

#[test]
fn field_values_do_not_print_personal_data() {
    let record = full_record();
    let submission = RawSubmission::from_slice(&to_json(&record))
        .unwrap()
        .validate(TODAY)
        .unwrap();
    for value in submission.values().into_iter().flatten() {
        let printed = format!("{value:?}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}
