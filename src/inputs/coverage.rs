//! coverage.py's Cobertura XML report (`coverage xml`), read as a stream of events.
//!
//! Each file's figures are computed from its `<line>` elements — a line is valid when it is
//! listed and covered when its `hits` is positive; a `branch="true"` line adds the `(c/v)` of
//! its `condition-coverage="50% (1/2)"` — rather than taken from the `line-rate` /
//! `branch-rate` attributes. Only the `<line>`s of a `<class>`'s own `<lines>` count (a
//! `<methods>` section repeats them). A file listed twice (two classes with the same path, or
//! a line listed twice) is merged line by line, keeping the better figure of each line.
//!
//! Paths: a class `filename` is joined with each `<sources><source>` root; absolute roots are
//! made relative to the repository root, relative (or empty) roots are taken as repo-relative
//! already. A filename that resolves under no source root inside the repository, but is
//! itself relative, is taken as repo-relative (a report made in another checkout). When
//! several roots give a path, the first that names an existing file wins, else the first.
//! Filenames that map to nothing inside the repository are kept, as written, in `unmapped`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::inputs::located;

/// The report, keyed by repo-relative `/` path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CoverageReport {
    pub files: BTreeMap<String, CoverageFile>,
    /// Class filenames (as written in the report, sorted, without duplicates) that map to no
    /// path inside the repository.
    pub unmapped: Vec<String>,
}

/// One file's figures, computed from its `<line>` elements.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CoverageFile {
    /// `lines_covered / lines_valid`; 1.0 for a file without lines (coverage.py's convention).
    pub line_rate: f64,
    /// `branches_covered / branches_valid`; `None` when the file has no branch line (a report
    /// without branch coverage, or a file without branches).
    pub branch_rate: Option<f64>,
    pub lines_valid: u32,
    pub lines_covered: u32,
    pub branches_valid: u32,
    pub branches_covered: u32,
}

/// Read `path`, a Cobertura XML report, mapping its files to paths relative to `repo_root`.
pub fn load(path: &Path, repo_root: &Path) -> Result<CoverageReport> {
    let file = std::fs::File::open(path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
    parse_from(BufReader::with_capacity(1 << 16, file), path, repo_root, |offset| {
        // Errors are rare: read the prefix again to turn the byte offset into line:column.
        let mut prefix = Vec::new();
        let _ = std::fs::File::open(path).and_then(|f| f.take(offset).read_to_end(&mut prefix));
        line_column(&prefix, offset)
    })
}

/// Parse a report held in memory; `origin` names it in errors.
pub fn parse(origin: &Path, bytes: &[u8], repo_root: &Path) -> Result<CoverageReport> {
    parse_from(bytes, origin, repo_root, |offset| line_column(bytes, offset))
}

/// 1-based line and column (in characters) of byte `offset` in `bytes`.
fn line_column(bytes: &[u8], offset: u64) -> (u64, u64) {
    let end = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
    let prefix = &bytes[..end];
    let line = prefix.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let start = prefix.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&prefix[start..]).chars().count() as u64 + 1;
    (line, column)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Coverage,
    Sources,
    Source,
    Packages,
    Package,
    Classes,
    Class,
    Lines,
    Line,
    Other,
}

/// What one `<line>` says: covered or not, and its branches (covered, valid).
#[derive(Debug, Clone, Copy, Default)]
struct LineStat {
    covered: bool,
    branches_covered: u32,
    branches_valid: u32,
}

impl LineStat {
    fn merge(&mut self, other: LineStat) {
        self.covered |= other.covered;
        self.branches_covered = self.branches_covered.max(other.branches_covered);
        self.branches_valid = self.branches_valid.max(other.branches_valid);
    }
}

fn parse_from<R: BufRead>(input: R, origin: &Path, repo_root: &Path, locate: impl Fn(u64) -> (u64, u64)) -> Result<CoverageReport> {
    let at = |offset: u64, key: &str, message: String| {
        let (line, column) = locate(offset);
        located(origin, line, column, key, message)
    };
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut stack: Vec<(Elem, u64)> = Vec::new();
    let mut seen_root = false;
    let mut sources: Vec<String> = Vec::new();
    let mut source_text = String::new();
    // Lines per class filename, in report order of first appearance.
    let mut classes: Vec<(String, BTreeMap<u32, LineStat>)> = Vec::new();
    let mut class_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut current: Option<usize> = None;

    loop {
        let start = reader.buffer_position();
        buf.clear();
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(e) => return Err(at(reader.error_position(), "xml", format!("invalid XML: {e}"))),
        };
        let (element, empty) = match event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                if let Some((Elem::Source, _)) = stack.last() {
                    sources.push(source_text.trim().to_string());
                    source_text.clear();
                }
                if let Some((Elem::Class, _)) = stack.last() {
                    current = None;
                }
                stack.pop();
                continue;
            }
            Event::Text(text) => {
                if let Some((Elem::Source, _)) = stack.last() {
                    source_text.push_str(&text.xml10_content());
                }
                continue;
            }
            Event::CData(text) => {
                if let Some((Elem::Source, _)) = stack.last() {
                    source_text.push_str(&text.xml10_content());
                }
                continue;
            }
            Event::GeneralRef(reference) => {
                if let Some((Elem::Source, _)) = stack.last() {
                    let resolved = match reference.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => {
                            let name = reference.xml10_content();
                            match quick_xml::escape::resolve_predefined_entity(&name) {
                                Some(s) => s.to_string(),
                                None => return Err(at(start, "source", format!("unknown entity &{name};"))),
                            }
                        }
                        Err(e) => return Err(at(start, "source", format!("invalid character reference: {e}"))),
                    };
                    source_text.push_str(&resolved);
                }
                continue;
            }
            Event::Eof => {
                if let Some(&(elem, opened)) = stack.first() {
                    let (line, column) = locate(opened);
                    let name = if elem == Elem::Coverage { "coverage" } else { "element" };
                    return Err(at(
                        reader.buffer_position(),
                        "xml",
                        format!("unexpected end of file: <{name}> opened at {line}:{column} is not closed (truncated report?)"),
                    ));
                }
                if !seen_root {
                    return Err(at(reader.buffer_position(), "xml", "no root element: not a Cobertura report".to_string()));
                }
                break;
            }
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) | Event::Comment(_) => continue,
        };
        let name = element.name();
        let name = name.as_ref();
        let parent = stack.last().map(|&(elem, _)| elem);
        let elem = match (parent, name) {
            (None, "coverage") if !seen_root => Elem::Coverage,
            (None, _) if seen_root => {
                return Err(at(start, name, "a second root element: not a Cobertura report".to_string()));
            }
            (None, _) => {
                return Err(at(start, name, format!("not a Cobertura report: the root element is <{name}>, expected <coverage>")));
            }
            (Some(Elem::Coverage), "sources") => Elem::Sources,
            (Some(Elem::Sources), "source") => Elem::Source,
            (Some(Elem::Coverage), "packages") => Elem::Packages,
            (Some(Elem::Packages), "package") => Elem::Package,
            (Some(Elem::Package), "classes") => Elem::Classes,
            (Some(Elem::Classes), "class") => Elem::Class,
            (Some(Elem::Class), "lines") => Elem::Lines,
            (Some(Elem::Lines), "line") => Elem::Line,
            _ => Elem::Other,
        };
        match elem {
            Elem::Coverage => seen_root = true,
            Elem::Class => {
                let filename = attribute(&element, "filename").map_err(|e| at(start, "class", e))?;
                let Some(filename) = filename else {
                    return Err(at(start, "class", "missing attribute filename: not a Cobertura report".to_string()));
                };
                let index = *class_index.entry(filename.clone()).or_insert_with(|| {
                    classes.push((filename, BTreeMap::new()));
                    classes.len() - 1
                });
                current = Some(index);
            }
            Elem::Line => {
                let stat = line_stat(&element).map_err(|(key, message)| at(start, key, message))?;
                if let (Some(index), Some((number, stat))) = (current, stat) {
                    classes[index].1.entry(number).or_default().merge(stat);
                }
            }
            _ => {}
        }
        if empty {
            if elem == Elem::Source {
                sources.push(String::new());
            }
            if elem == Elem::Class {
                current = None;
            }
        } else {
            stack.push((elem, start));
        }
    }

    let root = RepoRoot::new(repo_root);
    let mut report = CoverageReport::default();
    let mut merged: BTreeMap<String, BTreeMap<u32, LineStat>> = BTreeMap::new();
    for (filename, lines) in classes {
        match resolve(&filename, &sources, &root) {
            Some(key) => {
                let target = merged.entry(key).or_default();
                for (number, stat) in lines {
                    target.entry(number).or_default().merge(stat);
                }
            }
            None => report.unmapped.push(filename),
        }
    }
    report.unmapped.sort();
    report.unmapped.dedup();
    for (key, lines) in merged {
        report.files.insert(key, figures(&lines));
    }
    Ok(report)
}

fn figures(lines: &BTreeMap<u32, LineStat>) -> CoverageFile {
    let lines_valid = lines.len() as u32;
    let lines_covered = lines.values().filter(|l| l.covered).count() as u32;
    let branches_valid: u32 = lines.values().map(|l| l.branches_valid).fold(0, u32::saturating_add);
    let branches_covered: u32 = lines.values().map(|l| l.branches_covered).fold(0, u32::saturating_add);
    CoverageFile {
        line_rate: if lines_valid == 0 { 1.0 } else { f64::from(lines_covered) / f64::from(lines_valid) },
        branch_rate: (branches_valid > 0).then(|| f64::from(branches_covered) / f64::from(branches_valid)),
        lines_valid,
        lines_covered,
        branches_valid,
        branches_covered,
    }
}

/// An attribute's unescaped value, or `None` when absent.
fn attribute(element: &BytesStart, name: &str) -> std::result::Result<Option<String>, String> {
    for attr in element.attributes() {
        let attr = attr.map_err(|e| format!("invalid attribute: {e}"))?;
        if attr.key.as_ref() == name {
            let value = attr.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| format!("invalid value of {name}: {e}"))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// A `<line number= hits= branch= condition-coverage=>`: its number and stat.
fn line_stat(element: &BytesStart) -> std::result::Result<Option<(u32, LineStat)>, (&'static str, String)> {
    let get = |name: &'static str| attribute(element, name).map_err(|e| ("line", e));
    let number = get("number")?.ok_or(("line", "missing attribute number".to_string()))?;
    let number: u32 = number.trim().parse().map_err(|_| ("line", format!("number={number:?} is not a line number")))?;
    let hits = get("hits")?.ok_or(("line", "missing attribute hits".to_string()))?;
    let hits: u64 = hits.trim().parse().map_err(|_| ("line", format!("hits={hits:?} is not a count")))?;
    let mut stat = LineStat { covered: hits > 0, ..LineStat::default() };
    match get("branch")?.as_deref() {
        None | Some("false") => {}
        Some("true") => {
            let condition = get("condition-coverage")?.ok_or(("line", "branch=\"true\" without condition-coverage".to_string()))?;
            let (covered, valid) = condition_counts(&condition)
                .ok_or(("line", format!("condition-coverage={condition:?} is not of the form \"50% (1/2)\"")))?;
            stat.branches_covered = covered;
            stat.branches_valid = valid;
        }
        Some(other) => return Err(("line", format!("branch={other:?} is neither \"true\" nor \"false\""))),
    }
    Ok(Some((number, stat)))
}

/// `50% (1/2)` → (1, 2), with covered ≤ valid.
fn condition_counts(text: &str) -> Option<(u32, u32)> {
    let inner = text.split_once('(')?.1.split_once(')')?.0;
    let (covered, valid) = inner.split_once('/')?;
    let covered: u32 = covered.trim().parse().ok()?;
    let valid: u32 = valid.trim().parse().ok()?;
    (covered <= valid).then_some((covered, valid))
}

/// The repository root, as the absolute `/` prefixes a report may spell it with (as given
/// and with symbolic links resolved: coverage.py writes canonical paths).
pub(crate) struct RepoRoot {
    dir: PathBuf,
    prefixes: Vec<Vec<String>>,
}

impl RepoRoot {
    pub(crate) fn new(repo_root: &Path) -> RepoRoot {
        let mut prefixes = Vec::new();
        let absolute = std::path::absolute(repo_root).unwrap_or_else(|_| repo_root.to_path_buf());
        for candidate in [Some(absolute), std::fs::canonicalize(repo_root).ok()].into_iter().flatten() {
            if let Some(parts) = components(&candidate.to_string_lossy())
                && !prefixes.contains(&parts)
            {
                prefixes.push(parts);
            }
        }
        RepoRoot { dir: repo_root.to_path_buf(), prefixes }
    }

    /// `path` relative to the repository: an absolute path under the root loses the root, a
    /// relative one is normalized; `None` for a path outside the repository.
    pub(crate) fn relative(&self, path: &str) -> Option<String> {
        let parts = components(path)?;
        if !is_absolute(path) {
            return Some(parts.join("/"));
        }
        self.prefixes
            .iter()
            .find(|prefix| parts.len() > prefix.len() && parts.starts_with(prefix))
            .map(|prefix| parts[prefix.len()..].join("/"))
    }

    fn exists(&self, relative: &str) -> bool {
        self.dir.join(relative).is_file()
    }
}

/// `/`-separated path (backslashes too), `..` and `.` resolved lexically; the components
/// after any root or drive. `None` when `..` climbs above the start.
fn components(path: &str) -> Option<Vec<String>> {
    let path = path.replace('\\', "/");
    let mut parts: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part.to_string()),
        }
    }
    Some(parts)
}

/// `/x`, `\x`, `C:/x`, `C:\x`.
fn is_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    matches!(bytes.first(), Some(b'/' | b'\\')) || (bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && matches!(bytes[2], b'/' | b'\\'))
}

/// The repo-relative path of a class filename (see the module docs).
fn resolve(filename: &str, sources: &[String], root: &RepoRoot) -> Option<String> {
    if is_absolute(filename) {
        return root.relative(filename).filter(|p| !p.is_empty());
    }
    let mut candidates: Vec<String> = Vec::new();
    for source in sources {
        let joined = format!("{source}/{filename}");
        if let Some(candidate) = root.relative(&joined).filter(|p| !p.is_empty())
            && !candidates.contains(&candidate)
        {
            candidates.push(candidate);
        }
    }
    if let Some(own) = components(filename).map(|parts| parts.join("/")).filter(|p| !p.is_empty())
        && !candidates.contains(&own)
    {
        candidates.push(own);
    }
    if candidates.len() > 1
        && let Some(existing) = candidates.iter().find(|c| root.exists(c))
    {
        return Some(existing.clone());
    }
    candidates.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_coverage() {
        assert_eq!(condition_counts("50% (1/2)"), Some((1, 2)));
        assert_eq!(condition_counts("100% (4/4)"), Some((4, 4)));
        assert_eq!(condition_counts("50%"), None);
        assert_eq!(condition_counts("(3/2)"), None);
    }

    #[test]
    fn paths() {
        let root = RepoRoot { dir: PathBuf::from("/nonexistent/repo"), prefixes: vec![vec!["repo".into()]] };
        assert_eq!(root.relative("/repo/a/b.py").as_deref(), Some("a/b.py"));
        assert_eq!(root.relative("/other/a.py"), None);
        assert_eq!(root.relative("a/./c/../b.py").as_deref(), Some("a/b.py"));
        assert_eq!(resolve("b.py", &["/repo/pkg".into()], &root).as_deref(), Some("pkg/b.py"));
        assert_eq!(resolve("pkg/b.py", &["/elsewhere".into()], &root).as_deref(), Some("pkg/b.py"));
        assert_eq!(resolve("pkg/b.py", &["".into()], &root).as_deref(), Some("pkg/b.py"));
        assert_eq!(resolve("/elsewhere/b.py", &[], &root), None);
        assert_eq!(resolve("../b.py", &[], &root), None);
        assert_eq!(line_column(b"ab\ncd", 4), (2, 2));
    }
}
