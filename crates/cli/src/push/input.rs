//! Reading a bulk file as a stream of records, without holding it in memory.
//!
//! JSON Lines: each non-blank line is one record, sent as is (a line that is not
//! a JSON object is still sent: the worker answers `invalid_payload` for it, so
//! every line gets a result from the same place). CSV: the header row names the
//! contract's fields; each row becomes a JSON object of its non-empty cells.
//!
//! Image columns (`idImage`, `idBackImage`, `selfieImage`, `addressImage`, as
//! `@relative/path.jpg` or Base64 text) are not submission fields: they are taken
//! out of the record into [`RecordImages`] and uploaded once the record is
//! accepted (`super::images`).

use kyc_core::wire::ImageKind;
use serde::de::{MapAccess, Visitor};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// One record to publish: its line in the file, its idempotency key and the
/// message body. The key and the check that the body is JSON are made as the
/// record is read, on the reader's thread, not on the thread that publishes.
#[derive(Debug, Clone)]
pub struct Record {
    pub line: u64,
    /// [`message_id`] of the line number and the body.
    pub key: String,
    pub body: Vec<u8>,
    /// The body as a member of a batch message when it is not one JSON value:
    /// a JSON string of its text (which the worker answers `invalid_payload`).
    /// `None` when the body is JSON and goes in as it is.
    pub not_json: Option<Vec<u8>>,
    /// The record's image columns, if it has any.
    pub images: Option<Box<RecordImages>>,
}

impl Record {
    /// A record of the file's `line`, named by the body it is sent with (image
    /// members already taken out, as keys have always been made).
    pub fn new(line: u64, body: Vec<u8>, images: Option<Box<RecordImages>>) -> Record {
        let not_json = match kyc_core::wire::submission_value(&body) {
            Cow::Borrowed(_) => None,
            Cow::Owned(text) => Some(text),
        };
        Record {
            line,
            key: message_id(line, &body),
            body,
            not_json,
            images,
        }
    }

    /// The body as it goes into a batch message: one JSON value.
    pub fn batch_member(&self) -> &[u8] {
        self.not_json.as_deref().unwrap_or(&self.body)
    }
}

/// The idempotency key of a record: its line number and a digest of its content.
/// Stable across reruns of the same file; an edited line gets a new key (it is a
/// different record), while untouched lines keep theirs.
pub fn message_id(line: u64, body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut id = line.to_string();
    id.push(':');
    kyc_core::hex::push(&mut id, &digest[..16]);
    id
}

/// The image columns of a record, and the two fields an upload repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordImages {
    /// The record's `admin` (the upload's `admin` part).
    pub admin: Option<String>,
    /// The record's `idType` (needed with `idImage` and `idBackImage`).
    pub id_type: Option<String>,
    /// Each image as written: `@path` (relative to the input file) or Base64.
    pub images: Vec<(ImageKind, String)>,
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
        let (body, images) = split_images(body);
        if !emit(Record::new(line, body, images)) {
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
        let (body, images) = match reader.read_record(&mut record) {
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
                (b"not a CSV row".to_vec(), None)
            }
            Err(e) => return Err(std::io::Error::other(e)),
        };
        let line = record.position().map_or(line_before, |p| p.line());
        if !emit(Record::new(line, body, images)) {
            return Ok(());
        }
    }
}

/// The row as a JSON object of its non-empty cells, in column order (so "the first
/// bad field" means the first column, as it would for a JSON line), and its
/// image columns apart.
fn row_to_json(
    headers: &csv::StringRecord,
    row: &csv::StringRecord,
) -> (Vec<u8>, Option<Box<RecordImages>>) {
    let mut out = Vec::with_capacity(row.as_slice().len() + 16 * row.len());
    let mut images = RecordImages::default();
    out.push(b'{');
    for (name, value) in headers.iter().zip(row.iter()) {
        // An empty cell is an absent field (`docs/api.md` §2: "" counts as absent).
        if value.is_empty() {
            continue;
        }
        if let Some(kind) = ImageKind::parse(name) {
            images.images.push((kind, value.to_owned()));
            continue;
        }
        match name {
            "admin" => images.admin = Some(value.to_owned()),
            "idType" => images.id_type = Some(value.to_owned()),
            _ => {}
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
    let images = (!images.images.is_empty()).then(|| Box::new(images));
    (out, images)
}

/// A JSON line's body without its image members, and those members. A line
/// that names no image (the common case, found by a scan for `Image"`) is kept
/// byte for byte; so is one that is not a JSON object, or whose image members
/// are not strings (the worker then rejects it as it would any unknown member).
/// Members keep their order, so "the first bad field" stays the first.
fn split_images(body: &[u8]) -> (Vec<u8>, Option<Box<RecordImages>>) {
    let unchanged = || (body.to_vec(), None);
    // Built once: a searcher made per call costs more than the search.
    static IMAGE_MEMBER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"Image\""));
    if IMAGE_MEMBER.find(body).is_none() {
        return unchanged();
    }
    let Ok(Members(members)) = serde_json::from_slice::<Members>(body) else {
        return unchanged();
    };
    let mut images = RecordImages::default();
    let mut kept = Vec::with_capacity(members.len());
    for (name, value) in members {
        match (ImageKind::parse(&name), value) {
            (Some(kind), serde_json::Value::String(text)) => images.images.push((kind, text)),
            (_, value) => {
                match (name.as_str(), &value) {
                    ("admin", serde_json::Value::String(v)) => images.admin = Some(v.clone()),
                    ("idType", serde_json::Value::String(v)) => images.id_type = Some(v.clone()),
                    _ => {}
                }
                kept.push((name, value));
            }
        }
    }
    if images.images.is_empty() {
        return unchanged();
    }
    let mut out = Vec::with_capacity(body.len());
    out.push(b'{');
    for (i, (name, value)) in kept.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, name).expect("writing JSON into a Vec cannot fail");
        out.push(b':');
        serde_json::to_writer(&mut out, value).expect("writing JSON into a Vec cannot fail");
    }
    out.push(b'}');
    (out, Some(Box::new(images)))
}

/// A JSON object's members in their order, duplicates kept.
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(entry) = map.next_entry()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Ordered)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str, format: Format) -> Vec<Record> {
        let mut out = Vec::new();
        read_from(text.as_bytes(), format, |r| {
            out.push(r);
            true
        })
        .expect("reading from memory");
        out
    }

    #[test]
    fn keys_name_the_line_and_the_sent_body_and_a_line_that_is_not_json_is_sent_as_a_string() {
        // The key's form is part of idempotency: a newer kycctl pushing a file
        // an older one pushed must name the same submissions. SHA-256 of "{}"
        // starts 44136fa3…, and line 2 of this text is `{}`.
        let read = records(
            "{}\n{\"userid\":\"u1\",\"idImage\":\"@a.jpg\"}\nnot json\n",
            Format::Jsonl,
        );
        assert_eq!(read[0].key, "1:44136fa355b3678a1146ad16f7e8649e");
        assert_eq!(read[0].batch_member(), b"{}");
        // Named by the body it is sent with, image members taken out.
        assert_eq!(read[1].body, br#"{"userid":"u1"}"#);
        assert_eq!(read[1].key, "2:589027dcb7ddfc826f41a8ca3cf0f49c");
        // Sent alone as it is, in a batch as a JSON string the worker rejects.
        assert_eq!(read[2].body, b"not json");
        assert_eq!(read[2].batch_member(), br#""not json""#);
        assert_eq!(read[2].key, message_id(3, b"not json"));
    }

    #[test]
    fn image_members_leave_the_body_in_order_and_other_lines_stay_byte_for_byte() {
        let text = concat!(
            r#"{"userid":"u1","idImage":"@front.jpg","admin":"a@x.io","idType":"passport","selfieImage":"iVBOR"}"#,
            "\n",
            r#"{"userid":"u2",  "admin":"a@x.io"}"#,
            "\n",
            r#"{"userid":"u3","idImage":42}"#,
            "\n",
            r#"not json but "Image""#,
            "\n",
        );
        let got = records(text, Format::Jsonl);
        assert_eq!(
            got[0].body,
            br#"{"userid":"u1","admin":"a@x.io","idType":"passport"}"#
        );
        let images = got[0].images.as_deref().expect("images");
        assert_eq!(images.admin.as_deref(), Some("a@x.io"));
        assert_eq!(images.id_type.as_deref(), Some("passport"));
        assert_eq!(
            images.images,
            [
                (ImageKind::IdImage, "@front.jpg".to_owned()),
                (ImageKind::SelfieImage, "iVBOR".to_owned())
            ]
        );
        assert_eq!(got[1].body, br#"{"userid":"u2",  "admin":"a@x.io"}"#);
        assert!(got[1].images.is_none());
        // Not a string: left for the worker to reject as an unknown member.
        assert_eq!(got[2].body, br#"{"userid":"u3","idImage":42}"#);
        assert!(got[2].images.is_none());
        assert_eq!(got[3].body, br#"not json but "Image""#);
    }

    #[test]
    fn image_columns_of_csv_are_taken_apart_and_empty_cells_are_absent() {
        let text =
            "userid,admin,idType,idImage,selfieImage\nu1,a@x.io,passport,@f.jpg,\nu2,a@x.io,,,\n";
        let got = records(text, Format::Csv);
        assert_eq!(
            got[0].body,
            br#"{"userid":"u1","admin":"a@x.io","idType":"passport"}"#
        );
        assert_eq!(
            got[0].images.as_deref().expect("images").images,
            [(ImageKind::IdImage, "@f.jpg".to_owned())]
        );
        assert_eq!(got[1].body, br#"{"userid":"u2","admin":"a@x.io"}"#);
        assert!(got[1].images.is_none());
    }
}
