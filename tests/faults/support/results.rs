//! The results file of `kycctl push`, checked against what was stored.

use kyc_cli::push::{self, ResultLine};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use uuid::Uuid;

/// Checks that the results file of the push of `file` (`records` lines, all
/// valid) holds exactly one result per input line, each accepted and naming a
/// stored row of its own, and that those rows are all of `stored` that came
/// from the push (`stored` may hold other rows too, e.g. from HTTP).
pub fn assert_one_accepted_result_per_line(file: &Path, records: usize, stored: &HashSet<Uuid>) {
    let text =
        std::fs::read_to_string(push::default_results_path(file)).expect("the push's results file");
    let mut results: HashMap<u64, ResultLine> = HashMap::new();
    for line in text.lines() {
        let result: ResultLine = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("results file line {line:?}: {e}"));
        let n = result.line;
        assert!(
            results.insert(n, result).is_none(),
            "input line {n} has more than one result"
        );
    }
    assert_eq!(results.len(), records, "one result line per input line");
    assert!(
        (1..=records as u64).all(|n| results.contains_key(&n)),
        "every input line 1..={records} has its result"
    );
    let mut named = HashSet::new();
    for result in results.values() {
        assert!(result.accepted(), "line {}: {result:?}", result.line);
        assert!(
            stored.contains(&result.submission_id),
            "line {}: accepted submission {} has no row",
            result.line,
            result.submission_id
        );
        assert!(
            named.insert(result.submission_id),
            "line {}: submission {} named by two lines",
            result.line,
            result.submission_id
        );
    }
}
