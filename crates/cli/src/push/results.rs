//! The results file: one JSON line per input line, written as results arrive
//! (for a line with images, once its images are uploaded too).

use kyc_core::wire::{EventKind, ImageKind, ResultEventV1};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use uuid::Uuid;

/// One line of the results file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResultLine {
    pub line: u64,
    pub submission_id: Uuid,
    /// `accepted` or `rejected`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What became of each image column of an accepted line (none for a line
    /// without images, or a rejected one: its images are not sent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<ImageKind, ImageResult>,
}

/// What became of one image of a line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageResult {
    /// `stored` (answered 200: sealed, written and its reference queued) or
    /// `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ImageResult {
    /// `stored`.
    pub fn stored() -> ImageResult {
        ImageResult {
            status: "stored".into(),
            error_code: None,
            message: None,
        }
    }

    /// `failed`, with the code and message that say why.
    pub fn failed(code: impl Into<String>, message: impl Into<String>) -> ImageResult {
        ImageResult {
            status: "failed".into(),
            error_code: Some(code.into()),
            message: Some(message.into()),
        }
    }

    /// Whether the image is stored.
    pub fn is_stored(&self) -> bool {
        self.status == "stored"
    }
}

impl ResultLine {
    pub fn of(line: u64, event: &ResultEventV1) -> ResultLine {
        ResultLine {
            line,
            submission_id: event.submission_id,
            status: event.event.status().to_owned(),
            error_code: event.error_code.map(|c| c.as_str().to_owned()),
            message: event.message.clone(),
            images: BTreeMap::new(),
        }
    }

    pub fn accepted(&self) -> bool {
        self.status == EventKind::Accepted.status()
    }
}

/// What an earlier run did with one line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Previous {
    /// The line has its result and every image it sent is stored: skip it.
    pub complete: bool,
    /// Images of the line stored by some run (a line with a failed image is
    /// sent again, and only its other images are uploaded).
    pub stored: BTreeSet<ImageKind>,
}

/// The lines that already have a result in `path` (for `--resume`); a missing
/// file has none. A torn last line (an interrupted write) is ignored. A line can
/// have several results (a resumed line whose image had failed): they add up.
pub fn done_lines(path: &Path) -> std::io::Result<HashMap<u64, Previous>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let mut done: HashMap<u64, Previous> = HashMap::new();
    for line in BufReader::new(file).lines() {
        if let Ok(result) = serde_json::from_str::<ResultLine>(&line?) {
            let previous = done.entry(result.line).or_default();
            previous.complete |= result.images.values().all(ImageResult::is_stored);
            previous.stored.extend(
                result
                    .images
                    .iter()
                    .filter(|(_, r)| r.is_stored())
                    .map(|(k, _)| *k),
            );
        }
    }
    Ok(done)
}

/// Appends result lines; `fresh` truncates first.
#[derive(Debug)]
pub struct Writer {
    out: BufWriter<File>,
}

impl Writer {
    pub fn open(path: &Path, fresh: bool) -> std::io::Result<Writer> {
        let mut options = OpenOptions::new();
        options.create(true);
        if fresh {
            options.write(true).truncate(true);
        } else {
            options.append(true);
        }
        let file = options.open(path)?;
        // A file cut mid-line by an interrupted run gets a newline first, so the
        // next result starts on a line of its own.
        let mut out = BufWriter::new(file);
        if !fresh && ends_mid_line(path)? {
            out.write_all(b"\n")?;
        }
        Ok(Writer { out })
    }

    pub fn write(&mut self, result: &ResultLine) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, result)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn ends_mid_line(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}
