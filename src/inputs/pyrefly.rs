//! `pyrefly check --output-format json`: per file, the number of errors and warnings and the
//! diagnostics per kind.
//!
//! The report is `{"errors": [{"path", "name", "severity", "line", "column", …}, …]}` (pyrefly's
//! "legacy" error format). `severity` is `error`, `warn`, `info` or `ignore` and defaults to
//! `error` when absent, as pyrefly itself reads it (older versions did not write it). `errors`
//! and `warnings` count the `error` and `warn` entries, and `by_kind` counts those same entries
//! by `name`, so its values add up to `errors + warnings`; `info` entries (`reveal_type`,
//! shown with `--min-severity info`) and `ignore` ones (baselined) count nowhere.
//!
//! Paths: pyrefly writes them relative to its working directory (or `--relative-to`), which
//! is taken to be the repository root; absolute paths are made relative to `repo_root`.
//! Paths outside the repository (`../lib/x.py`, or absolute elsewhere) are kept, as written,
//! in `unmapped`. The report is deserialized as a stream: entries are tallied as they are
//! read, never held.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Result, anyhow};
use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::inputs::coverage::RepoRoot;
use crate::inputs::located;

/// The report, keyed by repo-relative `/` path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PyreflyReport {
    pub files: BTreeMap<String, PyreflyFile>,
    /// Paths (as written, sorted, without duplicates) outside the repository.
    pub unmapped: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PyreflyFile {
    pub errors: u32,
    pub warnings: u32,
    /// Error and warning entries per kind (`bad-return`, `missing-import`, …).
    pub by_kind: BTreeMap<String, u32>,
}

/// Read `path`, a pyrefly JSON report, mapping its paths to paths relative to `repo_root`.
pub fn load(path: &Path, repo_root: &Path) -> Result<PyreflyReport> {
    let file = std::fs::File::open(path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
    let mut deserializer = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 16, file));
    finish(path, &mut deserializer, repo_root)
}

/// Parse a report held in memory; `origin` names it in errors.
pub fn parse(origin: &Path, bytes: &[u8], repo_root: &Path) -> Result<PyreflyReport> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    finish(origin, &mut deserializer, repo_root)
}

fn finish<'de, R: serde_json::de::Read<'de>>(origin: &Path, deserializer: &mut serde_json::Deserializer<R>, repo_root: &Path) -> Result<PyreflyReport> {
    let key = RefCell::new(String::new());
    let tally = deserializer
        .deserialize_map(ReportVisitor { key: &key })
        .and_then(|tally| deserializer.end().map(|()| tally))
        .map_err(|e| json_error(origin, &e, &key.borrow()))?;
    let root = RepoRoot::new(repo_root);
    let mut report = PyreflyReport::default();
    for (path, counts) in tally {
        match root.relative(&path).filter(|p| !p.is_empty()) {
            Some(key) => {
                let file = report.files.entry(key).or_default();
                file.errors += counts.errors;
                file.warnings += counts.warnings;
                for (kind, n) in counts.by_kind {
                    *file.by_kind.entry(kind).or_default() += n;
                }
            }
            None => report.unmapped.push(path),
        }
    }
    report.unmapped.sort();
    report.unmapped.dedup();
    Ok(report)
}

/// `file:line:column: key: message`, the key being where the reader was (`errors[3].severity`).
fn json_error(origin: &Path, error: &serde_json::Error, key: &str) -> anyhow::Error {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = message.strip_suffix(&suffix).unwrap_or(&message);
    let key = if key.is_empty() { "json" } else { key };
    if error.line() == 0 {
        return anyhow!("{}: {key}: {message}", origin.display());
    }
    let message = if error.is_syntax() || error.is_eof() { format!("invalid JSON: {message}") } else { message.to_string() };
    // serde_json counts the column of the last character read: 0 before the first one.
    located(origin, error.line() as u64, error.column().max(1) as u64, key, message)
}

type Tally = BTreeMap<String, PyreflyFile>;

/// The top level: an object whose `errors` key holds the entries (other keys are skipped).
struct ReportVisitor<'k> {
    key: &'k RefCell<String>,
}

impl<'de> Visitor<'de> for ReportVisitor<'_> {
    type Value = Tally;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pyrefly JSON report: an object with an `errors` array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Tally, A::Error> {
        let mut tally = None;
        while let Some(name) = map.next_key::<String>()? {
            if name == "errors" {
                *self.key.borrow_mut() = "errors".to_string();
                tally = Some(map.next_value_seed(EntriesSeed { key: self.key })?);
                self.key.borrow_mut().clear();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        tally.ok_or_else(|| de::Error::custom("missing key `errors`: not a pyrefly JSON report"))
    }
}

struct EntriesSeed<'k> {
    key: &'k RefCell<String>,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = Tally;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Tally, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = Tally;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of pyrefly errors")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Tally, A::Error> {
        let mut tally = Tally::new();
        let mut index = 0usize;
        loop {
            *self.key.borrow_mut() = format!("errors[{index}]");
            let Some(entry) = seq.next_element_seed(EntrySeed { key: self.key, index })? else { break };
            index += 1;
            let file = tally.entry(entry.path).or_default();
            match entry.severity {
                Severity::Error => file.errors += 1,
                Severity::Warn => file.warnings += 1,
                Severity::Info | Severity::Ignore => continue,
            }
            *file.by_kind.entry(entry.name).or_default() += 1;
        }
        Ok(tally)
    }
}

#[derive(Debug, Clone, Copy)]
enum Severity {
    Error,
    Warn,
    Info,
    Ignore,
}

struct Entry {
    path: String,
    name: String,
    severity: Severity,
}

struct EntrySeed<'k> {
    key: &'k RefCell<String>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Entry, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pyrefly error object (path, name, severity, …)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Entry, A::Error> {
        let (mut path, mut name, mut severity) = (None, None, None);
        while let Some(field) = map.next_key::<String>()? {
            *self.key.borrow_mut() = format!("errors[{}].{field}", self.index);
            match field.as_str() {
                "path" => path = Some(map.next_value::<String>()?),
                "name" => name = Some(map.next_value::<String>()?),
                "severity" => {
                    let value = map.next_value::<String>()?;
                    severity = Some(match value.as_str() {
                        "error" => Severity::Error,
                        "warn" => Severity::Warn,
                        "info" => Severity::Info,
                        "ignore" => Severity::Ignore,
                        _ => return Err(de::Error::custom(format!("unknown severity {value:?} (expected error, warn, info or ignore)"))),
                    });
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        *self.key.borrow_mut() = format!("errors[{}]", self.index);
        let missing = |what: &str| de::Error::custom(format!("missing key `{what}`: not a pyrefly error"));
        Ok(Entry {
            path: path.ok_or_else(|| missing("path"))?,
            name: name.ok_or_else(|| missing("name"))?,
            severity: severity.unwrap_or(Severity::Error),
        })
    }
}
