//! Parsed field values ("parse, don't validate"): once a string has become one of
//! these types, the rule of `docs/api.md` §2 holds and nobody checks it again.
//!
//! Each parser takes an already trimmed, non-empty string and returns `None` when
//! the value breaks its rule; the caller turns that into `invalid_format: <field>`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An e-mail address with plausible syntax (see [`Email::parse`]). Kept as given
/// (after trimming); [`Email::normalized`] is what admin lookups compare.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain` where
    /// - the whole address is at most 254 characters, ASCII, with no white space;
    /// - the local part is 1–64 characters of RFC 5322 `atext` and dots, with no
    ///   leading, trailing or doubled dot (quoted local parts are refused);
    /// - the domain has at least two dot-separated labels of 1–63 letters, digits
    ///   or hyphens, not starting or ending with a hyphen, the last at least two
    ///   characters long.
    pub fn parse(s: &str) -> Option<Email> {
        if s.len() > 254 || !s.is_ascii() {
            return None;
        }
        let (local, domain) = s.split_once('@')?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.bytes().all(|b| {
                b.is_ascii_alphanumeric() || b == b'.' || b"!#$%&'*+/=?^_`{|}~-".contains(&b)
            });
        if !local_ok {
            return None;
        }
        let (mut labels, mut last) = (0, "");
        for label in domain.split('.') {
            let label_ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !label_ok {
                return None;
            }
            labels += 1;
            last = label;
        }
        (labels >= 2 && last.len() >= 2).then(|| Email(s.to_owned()))
    }

    /// The address as sent (case kept).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lower-cased form: addresses are compared case-insensitively.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Debug for Email {
    // Personal data: never printed by `{:?}`, so a stray debug log cannot leak it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

/// A real calendar date written `YYYY-MM-DD` (four-digit year, no sign, no time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoDate(pub time::Date);

impl IsoDate {
    /// Parses `YYYY-MM-DD`; `None` for any other form or a date that does not exist.
    pub fn parse(s: &str) -> Option<IsoDate> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            b[r].iter().try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        let year = i32::try_from(digits(0..4)?).ok()?;
        let month = time::Month::try_from(u8::try_from(digits(5..7)?).ok()?).ok()?;
        let day = u8::try_from(digits(8..10)?).ok()?;
        time::Date::from_calendar_date(year, month, day)
            .ok()
            .map(IsoDate)
    }
}

impl fmt::Display for IsoDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        )
    }
}

impl Serialize for IsoDate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An ISO 3166-1 alpha-3 country code, stored upper-case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryAlpha3([u8; 3]);

impl CountryAlpha3 {
    /// Case-insensitive; accepts exactly the officially assigned codes of
    /// [`crate::country::ALPHA3`].
    pub fn parse(s: &str) -> Option<CountryAlpha3> {
        let b = s.as_bytes();
        if b.len() != 3 {
            return None;
        }
        let code = [
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
            b[2].to_ascii_uppercase(),
        ];
        crate::country::is_assigned(&code).then_some(CountryAlpha3(code))
    }

    /// The upper-case three-letter code.
    pub fn as_str(&self) -> &str {
        // The bytes come from the ASCII table in `country`, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for CountryAlpha3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryAlpha3({})", self.as_str())
    }
}

impl Serialize for CountryAlpha3 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Declares a closed set of wire strings as an enum with `parse`/`as_str`.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[doc = concat!("`", $wire, "`.")] #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every value, in the order of the spec.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// The kind of identity document.
    IdType {
        DriversLicense = "drivers_license",
        GovernmentId = "government_id",
        Passport = "passport",
        ResidencePermit = "residence_permit",
        VehicleRegistrationCertificate = "vehicle_registration_certificate",
        Visa = "visa",
        Aadhaar = "aadhaar",
        Pancard = "pancard",
    }
);

impl IdType {
    /// Exact, case-sensitive codes, plus the `drvlic` alias of the public example.
    pub fn parse(s: &str) -> Option<IdType> {
        if s == "drvlic" {
            return Some(IdType::DriversLicense);
        }
        IdType::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

wire_enum!(
    /// The outcome of the identity check being migrated.
    KycStatus {
        Approved = "approved",
        Rejected = "rejected",
    }
);

impl KycStatus {
    /// Exact, case-sensitive codes.
    pub fn parse(s: &str) -> Option<KycStatus> {
        KycStatus::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

wire_enum!(
    /// The subject's gender, as the contract spells it.
    Gender {
        Female = "female",
        Male = "male",
    }
);

impl Gender {
    /// Exact, case-sensitive codes.
    pub fn parse(s: &str) -> Option<Gender> {
        Gender::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}
