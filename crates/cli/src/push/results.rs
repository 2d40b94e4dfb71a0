//! The results file: one JSON line per input line, written as results arrive.

use kyc_core::wire::{EventKind, ResultEventV1};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
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
}

impl ResultLine {
    pub fn of(line: u64, event: &ResultEventV1) -> ResultLine {
        ResultLine {
            line,
            submission_id: event.submission_id,
            status: event.event.status().to_owned(),
            error_code: event.error_code.map(|c| c.as_str().to_owned()),
            message: event.message.clone(),
        }
    }

    pub fn accepted(&self) -> bool {
        self.status == EventKind::Accepted.status()
    }
}

/// The lines that already have a result in `path` (for `--resume`); a missing
/// file has none. A torn last line (an interrupted write) is ignored.
pub fn done_lines(path: &Path) -> std::io::Result<HashSet<u64>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(e),
    };
    let mut done = HashSet::new();
    for line in BufReader::new(file).lines() {
        if let Ok(result) = serde_json::from_str::<ResultLine>(&line?) {
            done.insert(result.line);
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
