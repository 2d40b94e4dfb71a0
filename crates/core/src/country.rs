//! The officially assigned ISO 3166-1 alpha-3 codes (249 of them, as published by
//! the ISO 3166 Maintenance Agency and mirrored by Debian's iso-codes /
//! Python's `pycountry` 26.2). Sorted, so membership is a binary search.

/// Every assigned alpha-3 code, sorted.
pub const ALPHA3: [[u8; 3]; 249] = [
    *b"ABW", *b"AFG", *b"AGO", *b"AIA", *b"ALA", *b"ALB", *b"AND", *b"ARE", *b"ARG", *b"ARM",
    *b"ASM", *b"ATA", *b"ATF", *b"ATG", *b"AUS", *b"AUT", *b"AZE", *b"BDI", *b"BEL", *b"BEN",
    *b"BES", *b"BFA", *b"BGD", *b"BGR", *b"BHR", *b"BHS", *b"BIH", *b"BLM", *b"BLR", *b"BLZ",
    *b"BMU", *b"BOL", *b"BRA", *b"BRB", *b"BRN", *b"BTN", *b"BVT", *b"BWA", *b"CAF", *b"CAN",
    *b"CCK", *b"CHE", *b"CHL", *b"CHN", *b"CIV", *b"CMR", *b"COD", *b"COG", *b"COK", *b"COL",
    *b"COM", *b"CPV", *b"CRI", *b"CUB", *b"CUW", *b"CXR", *b"CYM", *b"CYP", *b"CZE", *b"DEU",
    *b"DJI", *b"DMA", *b"DNK", *b"DOM", *b"DZA", *b"ECU", *b"EGY", *b"ERI", *b"ESH", *b"ESP",
    *b"EST", *b"ETH", *b"FIN", *b"FJI", *b"FLK", *b"FRA", *b"FRO", *b"FSM", *b"GAB", *b"GBR",
    *b"GEO", *b"GGY", *b"GHA", *b"GIB", *b"GIN", *b"GLP", *b"GMB", *b"GNB", *b"GNQ", *b"GRC",
    *b"GRD", *b"GRL", *b"GTM", *b"GUF", *b"GUM", *b"GUY", *b"HKG", *b"HMD", *b"HND", *b"HRV",
    *b"HTI", *b"HUN", *b"IDN", *b"IMN", *b"IND", *b"IOT", *b"IRL", *b"IRN", *b"IRQ", *b"ISL",
    *b"ISR", *b"ITA", *b"JAM", *b"JEY", *b"JOR", *b"JPN", *b"KAZ", *b"KEN", *b"KGZ", *b"KHM",
    *b"KIR", *b"KNA", *b"KOR", *b"KWT", *b"LAO", *b"LBN", *b"LBR", *b"LBY", *b"LCA", *b"LIE",
    *b"LKA", *b"LSO", *b"LTU", *b"LUX", *b"LVA", *b"MAC", *b"MAF", *b"MAR", *b"MCO", *b"MDA",
    *b"MDG", *b"MDV", *b"MEX", *b"MHL", *b"MKD", *b"MLI", *b"MLT", *b"MMR", *b"MNE", *b"MNG",
    *b"MNP", *b"MOZ", *b"MRT", *b"MSR", *b"MTQ", *b"MUS", *b"MWI", *b"MYS", *b"MYT", *b"NAM",
    *b"NCL", *b"NER", *b"NFK", *b"NGA", *b"NIC", *b"NIU", *b"NLD", *b"NOR", *b"NPL", *b"NRU",
    *b"NZL", *b"OMN", *b"PAK", *b"PAN", *b"PCN", *b"PER", *b"PHL", *b"PLW", *b"PNG", *b"POL",
    *b"PRI", *b"PRK", *b"PRT", *b"PRY", *b"PSE", *b"PYF", *b"QAT", *b"REU", *b"ROU", *b"RUS",
    *b"RWA", *b"SAU", *b"SDN", *b"SEN", *b"SGP", *b"SGS", *b"SHN", *b"SJM", *b"SLB", *b"SLE",
    *b"SLV", *b"SMR", *b"SOM", *b"SPM", *b"SRB", *b"SSD", *b"STP", *b"SUR", *b"SVK", *b"SVN",
    *b"SWE", *b"SWZ", *b"SXM", *b"SYC", *b"SYR", *b"TCA", *b"TCD", *b"TGO", *b"THA", *b"TJK",
    *b"TKL", *b"TKM", *b"TLS", *b"TON", *b"TTO", *b"TUN", *b"TUR", *b"TUV", *b"TWN", *b"TZA",
    *b"UGA", *b"UKR", *b"UMI", *b"URY", *b"USA", *b"UZB", *b"VAT", *b"VCT", *b"VEN", *b"VGB",
    *b"VIR", *b"VNM", *b"VUT", *b"WLF", *b"WSM", *b"YEM", *b"ZAF", *b"ZMB", *b"ZWE",
];

/// Whether `code` (upper-case ASCII) is an assigned alpha-3 code.
pub fn is_assigned(code: &[u8; 3]) -> bool {
    ALPHA3.binary_search(code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_unique_so_binary_search_is_sound() {
        assert!(ALPHA3.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn well_known_codes_are_assigned_and_reserved_ones_are_not() {
        for code in [b"DEU", b"USA", b"GBR", b"FRA", b"ALA", b"SSD", b"BES"] {
            assert!(is_assigned(code), "{}", String::from_utf8_lossy(code));
        }
        // Transitionally or exceptionally reserved, or never assigned.
        for code in [b"UKK", b"ANT", b"YUG", b"XKX", b"EUR", b"AAA", b"ZZZ"] {
            assert!(!is_assigned(code), "{}", String::from_utf8_lossy(code));
        }
    }
}
