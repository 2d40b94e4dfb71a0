//! Bulk pushes of the fault tests: the input file, the push's arguments, and
//! its results file checked against what was stored.

use kyc_cli::push::{self, PushArgs, ResultLine};
use kyc_testkit::{TestEnv, record};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Writes `records` valid records (`userid` `bulk-<n>`) as JSON Lines into a
/// directory of the test's own; returns the file.
pub fn write_bulk_file(env: &TestEnv, records: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(&env.db_name);
    std::fs::create_dir_all(&dir).expect("a directory for the bulk file");
    let file = dir.join("bulk.jsonl");
    let lines: Vec<String> = (0..records)
        .map(|i| record(&format!("bulk-{i}")).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("write the bulk file");
    file
}

/// `kycctl push FILE --api-key KEY --window 1000 --idle-timeout SECONDS`
/// (batch messages of the default size).
pub fn push_args(file: &Path, key: &str, idle_timeout: u64) -> PushArgs {
    PushArgs {
        file: file.to_owned(),
        api_key: Some(key.to_owned()),
        api_key_file: None,
        results: None,
        resume: false,
        encrypt: false,
        format: None,
        window: 1000,
        batch_size: push::DEFAULT_BATCH_SIZE,
        no_compress: false,
        idle_timeout,
        images: Default::default(),
    }
}

/// The results file at `path`, by input line; fails on a line with two
/// results, or if one of the lines `1..=records` has none.
pub fn results_by_line(path: &Path, records: usize) -> HashMap<u64, ResultLine> {
    let text = std::fs::read_to_string(path).expect("the push's results file");
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
    assert!(
        (1..=records as u64).all(|n| results.contains_key(&n)),
        "every input line 1..={records} has its result"
    );
    results
}

/// Checks that the results file of the push of `file` (`records` lines, all
/// valid) holds exactly one result per input line, each accepted and naming a
/// stored row of its own, and that those rows are all of `stored` that came
/// from the push (`stored` may hold other rows too, e.g. from HTTP).
pub fn assert_one_accepted_result_per_line(file: &Path, records: usize, stored: &HashSet<Uuid>) {
    let results = results_by_line(&push::default_results_path(file), records);
    assert_eq!(results.len(), records, "one result line per input line");
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
