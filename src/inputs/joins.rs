//! External inputs joined with the modules: coverage.py XML, a pyrefly report, a SCIP index,
//! CODEOWNERS and git history. Each is read and validated before anything is written (a bad
//! input stops the build with one error naming the file and the position), joined by
//! repo-relative path (never by module name), and is a node of the run log keyed by its own
//! content (or, for history, HEAD and the windows) — so `explain` names the input file when
//! it changes, and only the rows whose joined values changed are re-rendered.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::config::InputsConfig;
use crate::diagnostics::{Problem, ProblemKind};
use crate::inputs::{coverage, history, owners, pyrefly};

/// Bump when a join changes.
pub const JOINS_VERSION: u32 = 1;

/// What the inputs say about one module; each field is null when its input was not given (or
/// does not mention the module).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModuleJoins {
    pub coverage: Option<coverage::CoverageFile>,
    pub pyrefly: Option<pyrefly::PyreflyFile>,
    pub scip: Option<crate::inputs::scip::ScipFileStats>,
    /// Sorted owners; `[]` when no CODEOWNERS rule matches, null without `--owners`.
    pub owners: Option<Vec<String>>,
    pub history: Option<history::FileHistory>,
}

/// An input's node in the run log: (stage, subject, named inputs).
pub type InputNode = (&'static str, String, Vec<(&'static str, String)>);

/// The joins of a build.
#[derive(Debug, Default)]
pub struct Joins {
    by_path: BTreeMap<String, ModuleJoins>,
    /// Digest of every input's identity (content hashes, HEAD, windows): part of the build key.
    pub digest: String,
    /// Reported problems: input paths that match no module, CODEOWNERS lines, notes.
    pub problems: Vec<Problem>,
    /// Each input's node, for the run log.
    pub nodes: Vec<InputNode>,
    pub low_coverage: f64,
}

impl Joins {
    /// The joined values of `path` (all null when no input mentions it).
    pub fn of(&self, path: &str) -> ModuleJoins {
        self.get(path).cloned().unwrap_or_default()
    }

    /// The joined values of `path`, when an input mentions it.
    pub fn get(&self, path: &str) -> Option<&ModuleJoins> {
        self.by_path.get(path)
    }

    /// Short digest of `path`'s joined values (a `rows` input).
    pub fn digest_of(&self, path: &str) -> String {
        match self.by_path.get(path) {
            None => "none".to_string(),
            Some(joins) => blake3::hash(&serde_json::to_vec(joins).expect("joins serialize")).to_hex()[..16].to_string(),
        }
    }
}

/// The name an input is shown and keyed under: its path relative to the root when inside it,
/// else its file name (never an absolute path).
fn display_name(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(relative) => relative.to_string_lossy().replace('\\', "/"),
        Err(_) => path.file_name().map_or_else(|| path.to_string_lossy().into_owned(), |n| n.to_string_lossy().into_owned()),
    }
}

fn content_hash(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    Ok(blake3::hash(&bytes).to_hex()[..16].to_string())
}

/// Report the input paths that match no module, at most a few named.
fn unmatched(problems: &mut Vec<Problem>, input: &str, paths: impl IntoIterator<Item = String>) {
    let paths: Vec<String> = paths.into_iter().collect();
    if paths.is_empty() {
        return;
    }
    let shown: Vec<&str> = paths.iter().take(5).map(String::as_str).collect();
    let more = if paths.len() > shown.len() { format!(", and {} more", paths.len() - shown.len()) } else { String::new() };
    problems.push(Problem::new(
        input,
        ProblemKind::InputUnmatched,
        format!("{} path(s) match no module of the build: {}{more}", paths.len(), shown.join(", ")),
    ));
}

/// Read every configured input and join it with `modules` (repo-relative paths).
pub fn load(config: &InputsConfig, root: &Path, modules: &BTreeSet<String>) -> Result<Joins> {
    let mut joins = Joins { low_coverage: config.low_coverage, ..Joins::default() };
    let mut identity: Vec<String> = Vec::new();
    if let Some(path) = &config.coverage_xml {
        let name = display_name(root, path);
        let hash = content_hash(path)?;
        let report = coverage::load(path, root)?;
        let outside: Vec<String> = report.files.keys().filter(|p| !modules.contains(*p)).cloned().collect();
        unmatched(&mut joins.problems, &name, report.unmapped.iter().cloned().chain(outside));
        for (file, figures) in report.files {
            if modules.contains(&file) {
                joins.by_path.entry(file).or_default().coverage = Some(figures);
            }
        }
        identity.push(format!("coverage {name} {hash}"));
        joins.nodes.push(("coverage", name, vec![("content", hash)]));
    }
    if let Some(path) = &config.pyrefly_json {
        let name = display_name(root, path);
        let hash = content_hash(path)?;
        let report = pyrefly::load(path, root)?;
        let outside: Vec<String> = report.files.keys().filter(|p| !modules.contains(*p)).cloned().collect();
        unmatched(&mut joins.problems, &name, report.unmapped.iter().cloned().chain(outside));
        for (file, figures) in report.files {
            if modules.contains(&file) {
                joins.by_path.entry(file).or_default().pyrefly = Some(figures);
            }
        }
        identity.push(format!("pyrefly {name} {hash}"));
        joins.nodes.push(("pyrefly", name, vec![("content", hash)]));
    }
    if let Some(path) = &config.scip {
        let name = display_name(root, path);
        let hash = content_hash(path)?;
        let index = crate::inputs::scip::ScipIndex::load(path)?;
        let mut outside = Vec::new();
        for document in index.documents() {
            let repo_path = crate::inputs::scip::rebase(index.project_root(), root, document).unwrap_or_else(|| document.to_string());
            match (modules.contains(&repo_path), index.file_stats(document)) {
                (true, Some(stats)) => joins.by_path.entry(repo_path).or_default().scip = Some(stats),
                _ => outside.push(repo_path),
            }
        }
        unmatched(&mut joins.problems, &name, outside);
        identity.push(format!("scip {name} {hash}"));
        joins.nodes.push(("scip", name, vec![("content", hash)]));
    }
    if config.owners {
        match owners::find(root) {
            Some(path) => {
                let name = display_name(root, &path);
                let hash = content_hash(&path)?;
                let codeowners = owners::load(&path)?;
                for (line, message) in codeowners.warnings() {
                    let mut problem = Problem::new(name.clone(), ProblemKind::CodeownersLine, message.clone());
                    problem.line = Some(*line);
                    joins.problems.push(problem);
                }
                for module in modules {
                    joins.by_path.entry(module.clone()).or_default().owners = Some(codeowners.owners_of(module));
                }
                identity.push(format!("owners {name} {hash}"));
                joins.nodes.push(("owners", name, vec![("content", hash)]));
            }
            None => {
                joins.problems.push(Problem::new(
                    "CODEOWNERS",
                    ProblemKind::InputNote,
                    "--owners: no CODEOWNERS in .github/, the root or docs/; owners are empty",
                ));
                for module in modules {
                    joins.by_path.entry(module.clone()).or_default().owners = Some(Vec::new());
                }
                identity.push("owners none".into());
            }
        }
    }
    if config.history() {
        let history = history::load(root, config.history_window_days, config.commits_window)?;
        if let Some(note) = &history.note {
            joins.problems.push(Problem::new("git", ProblemKind::InputNote, note.clone()));
        }
        for (file, figures) in history.files {
            if modules.contains(&file) {
                joins.by_path.entry(file).or_default().history = Some(figures);
            }
        }
        let head = history.head.clone().unwrap_or_else(|| "none".into());
        let window = format!("{:?}/{:?}", config.history_window_days, config.commits_window);
        identity.push(format!("history {head} {window}"));
        joins.nodes.push(("history", "git".into(), vec![("head", head), ("window", window)]));
    }
    joins.digest = blake3::hash(identity.join("\n").as_bytes()).to_hex()[..16].to_string();
    Ok(joins)
}
