//! Reading a bulk file as a stream of records, without holding it in memory.
//!
//! JSON Lines: each non-blank line is one record, sent as is (a line that is not
//! a JSON object is still sent: the worker answers `invalid_payload` for it, so
//! every line gets a result from the same place). CSV: the header row names the
//! contract's fields; each row becomes a JSON object of its non-empty cells.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// One record to publish: its line in the file and the message body.
#[derive(Debug, Clone)]
pub struct Record {
    pub line: u64,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// A header row of field names, one record per row.
    Csv,
}

impl Format {
    /// By extension: `.csv` is CSV, anything else JSON Lines.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Jsonl,
        }
    }
}

/// Reads `path` on the calling (blocking) thread and hands each record to `emit`;
/// stops early if `emit` returns `false`.
pub fn read(path: &Path, format: Format, emit: impl FnMut(Record) -> bool) -> std::io::Result<()> {
    read_from(File::open(path)?, format, emit)
}

/// [`read`] over any byte source (a file, a pipe, bytes in memory).
pub fn read_from(
    source: impl Read,
    format: Format,
    emit: impl FnMut(Record) -> bool,
) -> std::io::Result<()> {
    let reader = BufReader::with_capacity(1 << 20, source);
    match format {
        Format::Jsonl => read_jsonl(reader, emit),
        Format::Csv => read_csv(reader, emit),
    }
}

fn read_jsonl(
    mut reader: impl BufRead,
    mut emit: impl FnMut(Record) -> bool,
) -> std::io::Result<()> {
    let mut buffer = Vec::with_capacity(4096);
    let mut line = 0u64;
    loop {
        buffer.clear();
        if reader.read_until(b'\n', &mut buffer)? == 0 {
            return Ok(());
        }
        line += 1;
        let body = buffer.trim_ascii();
        // Blank lines (a trailing newline, spacing) are not records.
        if body.is_empty() {
            continue;
        }
        if !emit(Record {
            line,
            body: body.to_vec(),
        }) {
            return Ok(());
        }
    }
}

fn read_csv(source: impl Read, mut emit: impl FnMut(Record) -> bool) -> std::io::Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(source);
    let headers = reader.headers().map_err(std::io::Error::other)?.clone();
    let mut record = csv::StringRecord::new();
    loop {
        let line_before = reader.position().line();
        let body = match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => row_to_json(&headers, &record),
            // A row that is not CSV (unbalanced quotes, wrong number of cells) is
            // sent as a body that is not JSON, so its result is `invalid_payload`.
            Err(e)
                if matches!(
                    e.kind(),
                    csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }
                ) =>
            {
                b"not a CSV row".to_vec()
            }
            Err(e) => return Err(std::io::Error::other(e)),
        };
        let line = record.position().map_or(line_before, |p| p.line());
        if !emit(Record { line, body }) {
            return Ok(());
        }
    }
}

/// The row as a JSON object of its non-empty cells, in column order (so "the first
/// bad field" means the first column, as it would for a JSON line).
fn row_to_json(headers: &csv::StringRecord, row: &csv::StringRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.as_slice().len() + 16 * row.len());
    out.push(b'{');
    for (name, value) in headers.iter().zip(row.iter()) {
        // An empty cell is an absent field (`docs/api.md` §2: "" counts as absent).
        if value.is_empty() {
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, name)
            .expect("a &str written as JSON into a Vec cannot fail");
        out.push(b':');
        serde_json::to_writer(&mut out, value)
            .expect("a &str written as JSON into a Vec cannot fail");
    }
    out.push(b'}');
    out
}

/// Counts the records a file will yield (for the progress bar's length): one
/// fast pass over the bytes.
pub fn count(path: &Path, format: Format) -> std::io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut lines = 0u64;
    let mut last_blank = true;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        last_blank = chunk.last() == Some(&b'\n');
        let n = chunk.len();
        reader.consume(n);
    }
    if !last_blank {
        lines += 1;
    }
    Ok(match format {
        Format::Jsonl => lines,
        Format::Csv => lines.saturating_sub(1),
    })
}
