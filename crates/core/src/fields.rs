//! The machinery behind the one field table of [`crate::submission`]: what a row
//! says ([`FieldSpec`], [`Rule`]), what a parsed value is ([`FieldValue`]), and the
//! `submission_fields!` macro that turns the table into the typed
//! [`Submission`](crate::Submission), the const [`FIELDS`](crate::submission::FIELDS)
//! and the accessors parsing, serialisation, the store and the OpenAPI document
//! are derived from.

use crate::types::{CountryAlpha3, Email, Gender, IdType, IsoDate, KycStatus};
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

/// The rule a field's (trimmed, non-empty) value must satisfy. The rule also fixes
/// the field's Rust type in [`Submission`](crate::Submission) and its SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// [`Email::parse`].
    Email,
    /// Free text; length in characters (Unicode scalar values), inclusive.
    Text {
        /// The most characters a value may have.
        max: usize,
    },
    /// [`IsoDate::parse`].
    Date,
    /// [`IsoDate::parse`], and not after "today".
    PastDate,
    /// [`KycStatus::parse`].
    KycStatus,
    /// [`IdType::parse`].
    IdType,
    /// [`CountryAlpha3::parse`].
    Country,
    /// [`Gender::parse`].
    Gender,
    /// An IPv4 or IPv6 literal.
    Ip,
}

impl Rule {
    /// The strings a closed-set rule accepts (aliases included), or `None` for
    /// the open rules.
    pub fn accepted_values(self) -> Option<Vec<&'static str>> {
        match self {
            Rule::KycStatus => Some(KycStatus::ALL.iter().map(|k| k.as_str()).collect()),
            Rule::IdType => Some(
                IdType::ALL
                    .iter()
                    .map(|t| t.as_str())
                    // The alias `IdType::parse` also accepts.
                    .chain(std::iter::once("drvlic"))
                    .collect(),
            ),
            Rule::Gender => Some(Gender::ALL.iter().map(|g| g.as_str()).collect()),
            Rule::Email
            | Rule::Text { .. }
            | Rule::Date
            | Rule::PastDate
            | Rule::Country
            | Rule::Ip => None,
        }
    }
}

/// One row of the `docs/api.md` §2 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The JSON (wire) name, e.g. `fullName`.
    pub name: &'static str,
    /// Whether the field must be present and non-empty.
    pub required: bool,
    /// The rule its value must satisfy.
    pub rule: Rule,
    /// Personal data sealed at rest (`docs/api.md` §7): stored encrypted under the data key.
    pub sealed: bool,
    /// The column of `submissions` that holds it.
    pub column: &'static str,
    /// What the field is, for people (the OpenAPI description); may be empty.
    pub doc: &'static str,
}

/// A field value after its rule was applied (private to parsing).
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    Email(Email),
    Text(String),
    Date(IsoDate),
    KycStatus(KycStatus),
    IdType(IdType),
    Country(CountryAlpha3),
    Gender(Gender),
    Ip(IpAddr),
}

/// A present field of a [`Submission`](crate::Submission), borrowed and typed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// An e-mail address.
    Email(&'a Email),
    /// Free text.
    Text(&'a str),
    /// A calendar date.
    Date(IsoDate),
    /// `approved` / `rejected`.
    KycStatus(KycStatus),
    /// A document type.
    IdType(IdType),
    /// An ISO 3166-1 alpha-3 code.
    Country(&'a CountryAlpha3),
    /// `female` / `male`.
    Gender(Gender),
    /// An IP address.
    Ip(IpAddr),
}

impl<'a> FieldValue<'a> {
    /// The value as a borrowed string, for every kind stored as text (all but
    /// dates and IP addresses).
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            FieldValue::Email(e) => Some(e.as_str()),
            FieldValue::Text(s) => Some(s),
            FieldValue::KycStatus(k) => Some(k.as_str()),
            FieldValue::IdType(t) => Some(t.as_str()),
            FieldValue::Country(c) => Some(c.as_str()),
            FieldValue::Gender(g) => Some(g.as_str()),
            FieldValue::Date(_) | FieldValue::Ip(_) => None,
        }
    }

    /// The canonical wire form: what the value serialises to.
    pub fn to_text(&self) -> Cow<'a, str> {
        match self.as_str() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(self.to_string()),
        }
    }
}

impl fmt::Debug for FieldValue<'_> {
    // Personal data: `{:?}` names only the kind, so a stray debug log cannot leak it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            FieldValue::Email(_) => "Email",
            FieldValue::Text(_) => "Text",
            FieldValue::Date(_) => "Date",
            FieldValue::KycStatus(_) => "KycStatus",
            FieldValue::IdType(_) => "IdType",
            FieldValue::Country(_) => "Country",
            FieldValue::Gender(_) => "Gender",
            FieldValue::Ip(_) => "Ip",
        };
        write!(f, "FieldValue::{kind}(<redacted>)")
    }
}

impl fmt::Display for FieldValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Date(d) => d.fmt(f),
            FieldValue::Ip(ip) => ip.fmt(f),
            other => f.write_str(other.as_str().unwrap_or_default()),
        }
    }
}

impl Serialize for FieldValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_str() {
            Some(text) => s.serialize_str(text),
            None => s.collect_str(self),
        }
    }
}

/// The Rust type of a field's value: taken out of a [`Parsed`] and lent out as a
/// [`FieldValue`]. Implemented once per rule's type, so the table's rows need only
/// name the rule.
pub(crate) trait FieldType: Sized {
    /// `None` if the parsed value is of another kind (a bug, never bad input).
    fn from_parsed(parsed: Parsed) -> Option<Self>;
    fn value(&self) -> FieldValue<'_>;
}

macro_rules! field_type {
    ($ty:ty, $parsed:ident, |$v:ident| $value:expr) => {
        impl FieldType for $ty {
            fn from_parsed(parsed: Parsed) -> Option<Self> {
                match parsed {
                    Parsed::$parsed(v) => Some(v),
                    _ => None,
                }
            }
            fn value(&self) -> FieldValue<'_> {
                let $v = self;
                $value
            }
        }
    };
}

field_type!(Email, Email, |v| FieldValue::Email(v));
field_type!(String, Text, |v| FieldValue::Text(v));
field_type!(IsoDate, Date, |v| FieldValue::Date(*v));
field_type!(KycStatus, KycStatus, |v| FieldValue::KycStatus(*v));
field_type!(IdType, IdType, |v| FieldValue::IdType(*v));
field_type!(CountryAlpha3, Country, |v| FieldValue::Country(v));
field_type!(Gender, Gender, |v| FieldValue::Gender(*v));
field_type!(IpAddr, Ip, |v| FieldValue::Ip(*v));

/// Declares the submission's fields, once. Each row:
///
/// ```text
/// /// Documentation (struct field doc and OpenAPI description).
/// rust_name: "jsonName", required|optional, Rule [{ max: N }], plain|sealed "column";
/// ```
///
/// and the macro generates the `Submission` struct (a required field is `T`, an
/// optional one `Option<T>`, `T` following from the rule), `FIELDS` in row order,
/// `Submission::from_parsed` (per-field parse results → struct) and
/// `Submission::values` (struct → per-field values in row order).
macro_rules! submission_fields {
    // The Rust type a rule parses to.
    (@type Email) => { $crate::types::Email };
    (@type Text) => { ::std::string::String };
    (@type Date) => { $crate::types::IsoDate };
    (@type PastDate) => { $crate::types::IsoDate };
    (@type KycStatus) => { $crate::types::KycStatus };
    (@type IdType) => { $crate::types::IdType };
    (@type Country) => { $crate::types::CountryAlpha3 };
    (@type Gender) => { $crate::types::Gender };
    (@type Ip) => { ::std::net::IpAddr };

    (@field_type required $t:ty) => { $t };
    (@field_type optional $t:ty) => { ::std::option::Option<$t> };

    (@required required) => { true };
    (@required optional) => { false };
    (@sealed plain) => { false };
    (@sealed sealed) => { true };

    (@rule Text { max: $max:literal }) => { $crate::fields::Rule::Text { max: $max } };
    (@rule $rule:ident) => { $crate::fields::Rule::$rule };

    // A slot of `validate`'s results into the struct field; `?` in a required
    // field makes `from_parsed` return `None`.
    (@take required $slot:expr) => { $crate::fields::FieldType::from_parsed($slot?)? };
    (@take optional $slot:expr) => { $slot.and_then($crate::fields::FieldType::from_parsed) };

    (@value required $field:expr) => { Some($crate::fields::FieldType::value(&$field)) };
    (@value optional $field:expr) => { $field.as_ref().map($crate::fields::FieldType::value) };

    ($(
        $(#[doc = $doc:literal])*
        $ident:ident: $json:literal, $presence:ident, $rule:ident $({ max: $max:literal })?,
            $storage:ident $column:literal;
    )*) => {
        /// A submission that satisfies every rule of `docs/api.md` §2: one field per row of
        /// [`FIELDS`].
        ///
        /// `Debug` prints only the status and document type: the values are
        /// personal data and must never reach a log. It serialises to the wire
        /// names with canonical values (absent optional fields omitted).
        #[derive(Clone, PartialEq, Eq)]
        pub struct Submission {
            $(
                $(#[doc = $doc])*
                pub $ident: $crate::fields::submission_fields!(
                    @field_type $presence $crate::fields::submission_fields!(@type $rule)
                ),
            )*
        }

        /// Every field of the contract, in the order of `docs/api.md` §2.
        pub const FIELDS: [$crate::fields::FieldSpec; [$(stringify!($ident)),*].len()] = [$(
            $crate::fields::FieldSpec {
                name: $json,
                required: $crate::fields::submission_fields!(@required $presence),
                rule: $crate::fields::submission_fields!(@rule $rule $({ max: $max })?),
                sealed: $crate::fields::submission_fields!(@sealed $storage),
                column: $column,
                doc: concat!($($doc, "\n",)* ""),
            },
        )*];

        impl Submission {
            /// Builds the typed record from the per-field results of `validate`,
            /// in [`FIELDS`] order. Returns `None` only if a required slot is
            /// empty (or holds another kind of value), which `validate` rules out.
            fn from_parsed(
                slots: [Option<$crate::fields::Parsed>; FIELDS.len()],
            ) -> Option<Submission> {
                let [$($ident),*] = slots;
                Some(Submission {
                    $($ident: $crate::fields::submission_fields!(@take $presence $ident),)*
                })
            }

            /// Every field's value, in [`FIELDS`] order (`None`: absent).
            pub fn values(&self) -> [Option<$crate::fields::FieldValue<'_>>; FIELDS.len()] {
                [$($crate::fields::submission_fields!(@value $presence self.$ident)),*]
            }
        }
    };
}

pub(crate) use submission_fields;
