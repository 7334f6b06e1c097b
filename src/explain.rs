//! The run log and `codeintel-enrich explain`: which nodes of the last build were new, reused,
//! recomputed or removed, and why — each reason named leaf by leaf — with root causes first.
//!
//! JSON schema (`explain --json`, stable, `schema: 1`):
//! `{"schema": 1, "summary": {"new", "reused", "recomputed", "removed", "cutoff"},
//!   "root_causes": [{"reason": Reason, "nodes": n, "cutoff": n}],
//!   "nodes": [{"stage", "subject", "status", "cutoff", "reasons": [Reason]}], "notes": [...],
//!   "timings": [[phase, seconds]], "files_read": [read, total], "stages": [{"stage", "computed", "compute_seconds",
//!   "reused", "bytes"}], "artifacts": [{"path", "rows", "bytes"}]}` where a `Reason` is one of `{"kind": "input", "name":
//! "content(pkg/a.py)", "old": "3f2a…", "new": "9c1d…"}`, `{"kind": "version_changed"}`,
//! `{"kind": "entry_missing"}`, `{"kind": "entry_corrupt"}`, `{"kind": "output_missing"}` (a
//! file's rows: the previous artifacts they live in are absent or modified), `{"kind": "new"}`,
//! `{"kind": "cascade", "count": n}` (an artifact rewritten because n nodes upstream were
//! recomputed).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Bump when the run log's JSON changes incompatibly.
pub const RUN_LOG_SCHEMA: u32 = 1;
/// The run log of the last build, read by `explain`.
pub const RUN_LOG_FILE: &str = "last-run.json";


#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Reused,
    Recomputed,
    Removed,
}

/// Why a node ran.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// A named input changed (`content(pkg/a.py)`, `module(pkg/a.py)`, …).
    Input { name: String, old: Option<String>, new: String },
    /// Same inputs, different key: the engine or the stage version changed.
    VersionChanged,
    /// Same key, but the cache no longer had the value (cleared or collected).
    EntryMissing,
    /// The cached value failed its checksum or could not be decoded.
    EntryCorrupt,
    /// Same key, but the value lives in the output directory (a file's rows) and the previous
    /// artifacts there are absent or were modified.
    OutputMissing,
    /// Never built before.
    New,
    /// An artifact rewritten because `count` upstream nodes were recomputed.
    Cascade { count: usize },
    /// A node whose inputs are other nodes' outputs, rerun because these of them reran (empty:
    /// its set of upstream nodes changed, a file added or removed).
    Upstream { nodes: Vec<String> },
}

impl Reason {
    fn describe(&self) -> String {
        match self {
            Reason::Input { name, old: Some(old), new } => format!("{name} changed {old} → {new}"),
            Reason::Input { name, old: None, new } => format!("{name} is new ({new})"),
            Reason::VersionChanged => "engine or stage version changed".into(),
            Reason::EntryMissing => "cache entry missing (cleared or collected)".into(),
            Reason::EntryCorrupt => "cache entry corrupt".into(),
            Reason::OutputMissing => "previous artifacts absent or modified".into(),
            Reason::New => "new node".into(),
            Reason::Cascade { count } => format!("cascade: {count} upstream node(s) recomputed"),
            Reason::Upstream { nodes } if nodes.is_empty() => "its upstream nodes changed (a file added or removed)".into(),
            Reason::Upstream { nodes } => {
                let shown: Vec<&str> = nodes.iter().take(5).map(String::as_str).collect();
                let more = if nodes.len() > shown.len() { format!(" and {} more", nodes.len() - shown.len()) } else { String::new() };
                format!("upstream recomputed: {}{more}", shown.join(", "))
            }
        }
    }

    /// Root causes are leaves; a cascade is not.
    fn is_root(&self) -> bool {
        !matches!(self, Reason::Cascade { .. } | Reason::Upstream { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    pub stage: String,
    pub subject: String,
    pub status: Status,
    pub reasons: Vec<Reason>,
    /// Recomputed, but the output equals the previous one: the cascade stops here.
    pub cutoff: bool,
}

/// Time and size spent in one stage during a build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    pub stage: String,
    /// Nodes computed (cache misses) and the seconds spent computing them, summed over threads.
    pub computed: usize,
    pub compute_seconds: f64,
    /// Nodes served from the cache.
    pub reused: usize,
    /// Encoded bytes of the computed values.
    pub bytes: usize,
}

/// Rows and bytes of one artifact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactSize {
    pub path: String,
    pub rows: usize,
    pub bytes: usize,
}

/// Everything a build recorded about its nodes.
///
/// Per-file nodes are a grid, `grid_stages` × `grid_subjects` (the build's files): a pair of
/// the grid without an event in `nodes` was reused — or new, with the reason "new node", when
/// its stage is in `grid_new` (every node of that stage was new: a cold build). The file stays
/// small (a no-op build of 20k files reuses 200k nodes, a cold one builds as many) and
/// [`RunLog::expanded`] lists every node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunLog {
    pub schema: u32,
    pub nodes: Vec<NodeEvent>,
    pub notes: Vec<String>,
    /// Wall-clock seconds per build phase.
    pub timings: Vec<(String, f64)>,
    #[serde(default)]
    pub stages: Vec<StageTiming>,
    #[serde(default)]
    pub artifacts: Vec<ArtifactSize>,
    /// (files read, files in the build): files the stat fast path did not vouch for.
    #[serde(default)]
    pub files_read: Option<(usize, usize)>,
    #[serde(default)]
    pub grid_stages: Vec<String>,
    #[serde(default)]
    pub grid_subjects: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grid_new: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub new: usize,
    pub reused: usize,
    pub recomputed: usize,
    pub removed: usize,
    pub cutoff: usize,
    pub root_causes: usize,
}

#[derive(Debug, Clone, Serialize)]
struct RootCause {
    reason: Reason,
    nodes: usize,
    cutoff: usize,
}

impl RunLog {
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        let mut in_grid = 0;
        for node in &self.nodes {
            match node.status {
                Status::New => summary.new += 1,
                Status::Reused => summary.reused += 1,
                Status::Recomputed => summary.recomputed += 1,
                Status::Removed => summary.removed += 1,
            }
            summary.cutoff += usize::from(node.cutoff);
            in_grid += usize::from(node.status != Status::Removed && self.grid_stages.contains(&node.stage));
        }
        let implicit = (self.grid_stages.len() * self.grid_subjects.len()).saturating_sub(in_grid);
        let new = self.grid_new.len() * self.grid_subjects.len();
        summary.new += new;
        summary.reused += implicit.saturating_sub(new);
        summary.root_causes = self.root_causes().len();
        summary
    }

    /// The same log with every reused grid node listed in `nodes` (sorted by stage and
    /// subject) and the grid emptied.
    pub fn expanded(&self) -> RunLog {
        let mut nodes = self.nodes.clone();
        let listed: std::collections::BTreeSet<(&str, &str)> =
            self.nodes.iter().map(|n| (n.stage.as_str(), n.subject.as_str())).collect();
        for stage in &self.grid_stages {
            for subject in &self.grid_subjects {
                if !listed.contains(&(stage.as_str(), subject.as_str())) {
                    let new = self.grid_new.contains(stage);
                    nodes.push(NodeEvent {
                        stage: stage.clone(),
                        subject: subject.clone(),
                        status: if new { Status::New } else { Status::Reused },
                        reasons: if new { vec![Reason::New] } else { Vec::new() },
                        cutoff: false,
                    });
                }
            }
        }
        nodes.sort_by(|a, b| (&a.stage, &a.subject).cmp(&(&b.stage, &b.subject)));
        RunLog { nodes, grid_stages: Vec::new(), grid_subjects: Vec::new(), grid_new: Vec::new(), ..self.clone() }
    }

    fn root_causes(&self) -> Vec<RootCause> {
        let mut causes: BTreeMap<&Reason, (usize, usize)> = BTreeMap::new();
        for node in self.nodes.iter().filter(|n| n.status == Status::Recomputed) {
            for reason in node.reasons.iter().filter(|r| r.is_root()) {
                let entry = causes.entry(reason).or_default();
                entry.0 += 1;
                entry.1 += usize::from(node.cutoff);
            }
        }
        let mut causes: Vec<RootCause> =
            causes.into_iter().map(|(reason, (nodes, cutoff))| RootCause { reason: reason.clone(), nodes, cutoff }).collect();
        causes.sort_by(|a, b| b.nodes.cmp(&a.nodes).then_with(|| a.reason.cmp(&b.reason)));
        causes
    }

    /// The nodes matching `paths` (prefixes of the subject) and `stage`, grid expanded.
    pub fn filtered(&self, paths: &[String], stage: Option<&str>) -> RunLog {
        let log = self.expanded();
        let nodes = log
            .nodes
            .iter()
            .filter(|n| paths.is_empty() || paths.iter().any(|p| n.subject.starts_with(p.as_str())))
            .filter(|n| stage.is_none_or(|s| n.stage == s))
            .cloned()
            .collect();
        RunLog { nodes, ..log }
    }

    /// The one-line summary printed after every build.
    pub fn summary_line(&self) -> String {
        let s = self.summary();
        format!(
            "nodes: {} reused, {} recomputed ({} root cause(s), {} cut off early), {} new, {} removed",
            s.reused, s.recomputed, s.root_causes, s.cutoff, s.new, s.removed
        )
    }

    /// The human report of `explain`.
    pub fn render_text(&self, timings: bool) -> String {
        let mut out = String::new();
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let _ = writeln!(out, "{}", self.summary_line());
        let causes = self.root_causes();
        if !causes.is_empty() {
            let _ = writeln!(out, "\nroot causes:");
            for cause in causes.iter().take(20) {
                let _ = writeln!(
                    out,
                    "  {}: {} node(s) recomputed, {} cut off early",
                    cause.reason.describe(),
                    cause.nodes,
                    cause.cutoff
                );
            }
            if causes.len() > 20 {
                let _ = writeln!(out, "  … and {} more", causes.len() - 20);
            }
        }
        let mut per_stage: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
        for node in &self.nodes {
            per_stage.entry(&node.stage).or_default()[node.status as usize] += 1;
        }
        let _ = writeln!(out, "\nper stage:             new   reused recomputed removed");
        for (stage, [new, reused, recomputed, removed]) in per_stage {
            let _ = writeln!(out, "  {stage:<18} {new:>6} {reused:>8} {recomputed:>10} {removed:>7}");
        }
        let changed: Vec<&NodeEvent> =
            self.nodes.iter().filter(|n| n.status != Status::Reused).take(50).collect();
        if !changed.is_empty() {
            let _ = writeln!(out, "\nnodes that ran:");
            for node in changed {
                let reasons: Vec<String> = node.reasons.iter().map(Reason::describe).collect();
                let _ = writeln!(
                    out,
                    "  {:?} {}({}){}{}",
                    node.status,
                    node.stage,
                    node.subject,
                    if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join("; ")) },
                    if node.cutoff { " [cut off: output unchanged]" } else { "" }
                );
            }
        }
        if timings && !self.timings.is_empty() {
            if let Some((read, total)) = self.files_read {
                let _ = writeln!(out, "\nfiles read: {read} of {total} (the others unchanged by their stat)");
            }
            let _ = writeln!(out, "\ntimings (wall clock per phase):");
            for (phase, seconds) in &self.timings {
                let _ = writeln!(out, "  {phase:<10} {seconds:>8.3}s");
            }
            let _ = writeln!(out, "\nstages:            computed   seconds   reused      bytes");
            for stage in &self.stages {
                let _ = writeln!(
                    out,
                    "  {:<16} {:>8} {:>9.3} {:>8} {:>10}",
                    stage.stage, stage.computed, stage.compute_seconds, stage.reused, stage.bytes
                );
            }
            let _ = writeln!(out, "\nartifacts:                         rows      bytes");
            for artifact in &self.artifacts {
                let _ = writeln!(out, "  {:<30} {:>8} {:>10}", artifact.path, artifact.rows, artifact.bytes);
            }
        }
        out
    }

    /// The `--json` report (see the module docs for the schema).
    pub fn render_json(&self) -> String {
        let value = serde_json::json!({
            "schema": RUN_LOG_SCHEMA,
            "summary": self.summary(),
            "root_causes": self.root_causes(),
            "nodes": self.nodes,
            "notes": self.notes,
            "timings": self.timings,
            "files_read": self.files_read,
            "stages": self.stages,
            "artifacts": self.artifacts,
        });
        let mut text = serde_json::to_string_pretty(&value).expect("run logs serialize");
        text.push('\n');
        text
    }
}

/// Read the last build's run log from the cache directory.
pub fn read_run_log(cache_dir: &Path) -> Result<RunLog> {
    let path = cache_dir.join(RUN_LOG_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("no run log at {} (run a build first)", path.display()))?;
    let log: RunLog = serde_json::from_slice(&bytes).with_context(|| format!("run log {} is corrupt", path.display()))?;
    anyhow::ensure!(log.schema == RUN_LOG_SCHEMA, "run log {} has schema {}, expected {RUN_LOG_SCHEMA}", path.display(), log.schema);
    Ok(log)
}
