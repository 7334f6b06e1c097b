//! Git history per file, in one `git log` pass, anchored at HEAD (never the clock).
//!
//! ```text
//! git log --no-merges -M --name-status -z --relative
//!         [--since=@<HEAD's commit time − days>] [-n <commits>] --format=<hash, short hash, author email, commit time, commit date>
//! ```
//!
//! * **Merges are skipped** (`--no-merges`). A merge's changes are the changes of the commits it
//!   brings in, which the walk visits on their own (git log follows every parent), under their
//!   real authors and dates; counting the merge as well would count every merged change twice
//!   and credit it to whoever merged. What a merge resolves itself (a conflict) is not counted.
//!   The commit window counts non-merge commits, so "the last 100 commits" means 100 changes
//!   whether a project merges or rebases.
//! * **Windows.** `window_days` keeps the commits whose commit date is at most that many days
//!   before HEAD's commit date (inclusive); `commits_window` keeps the last N (non-merge)
//!   commits in git log order; both together keep what both keep. HEAD's date comes from the
//!   commit, so the same HEAD gives the same history on any day.
//! * **Renames are followed** (`-M`): the log is read newest first, and a rename `old → new`
//!   makes every older change of `old` count for `new`'s current name (chains too; a later file
//!   that reuses the old name keeps its own history). Paths are repo-relative, `/`-separated;
//!   `--relative` makes them relative to `repo_root` when it is a subdirectory of the work tree.
//!   Deleted files keep their entries: paths that name no file are the caller's business.
//! * **Authors** are distinct author emails after `.mailmap` (`%aE`), compared lowercased.
//! * Outside a git repository, without git, with no commit, or in a shallow clone
//!   (`git rev-parse --is-shallow-repository`), the history is empty and `note` says why —
//!   not an error. A `git log` that fails in a real repository is an error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Result, anyhow};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// HEAD's full commit id (the caller keys its cache by it); `None` without a commit.
    pub head: Option<String>,
    /// HEAD's commit date, strict ISO 8601 (`2024-05-01T12:00:00+02:00`).
    pub head_date: Option<String>,
    /// Non-merge commits in the window.
    pub commits: u32,
    /// Per repo-relative path (its latest name).
    pub files: BTreeMap<String, FileHistory>,
    /// Why the history is empty, when it is empty for a reason (not a repository, shallow).
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileHistory {
    /// Commits in the window that touched the file (under any of its names).
    pub commits: u32,
    /// Distinct author emails of those commits.
    pub authors: u32,
    /// Commit date of the newest of them, strict ISO 8601 in the committer's offset.
    pub last_change: String,
    /// Its abbreviated hash.
    pub last_commit: String,
}

/// Read the history of the repository containing `repo_root` (see the module docs).
pub fn load(repo_root: &Path, window_days: Option<u32>, commits_window: Option<u32>) -> Result<History> {
    // 1. A repository? Shallow? HEAD?
    let probe = match git(repo_root).args(["rev-parse", "--is-shallow-repository", "HEAD"]).stdin(Stdio::null()).output() {
        Ok(output) => output,
        Err(e) => return Ok(empty(None, format!("git is not available ({e}): no history"))),
    };
    if !probe.status.success() {
        let stderr = String::from_utf8_lossy(&probe.stderr);
        let note = if stderr.contains("not a git repository") {
            format!("{} is not in a git repository: no history", repo_root.display())
        } else if stderr.contains("unknown revision") || stderr.contains("ambiguous argument 'HEAD'") {
            "the git repository has no commit yet: no history".to_string()
        } else {
            format!("git rev-parse failed: {}: no history", stderr.trim())
        };
        return Ok(empty(None, note));
    }
    let probe = String::from_utf8_lossy(&probe.stdout);
    let mut lines = probe.lines();
    let shallow = lines.next() == Some("true");
    let head = lines.next().unwrap_or_default().trim().to_string();
    if shallow {
        return Ok(empty(Some(head), "shallow clone: the history is incomplete, so none is reported (git fetch --unshallow)".to_string()));
    }

    // 2. HEAD's commit date anchors the day window.
    let output = git(repo_root)
        .args(["show", "-s", "--no-show-signature", "--format=%ct%x1f%cI", "HEAD"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow!("{}: git show HEAD: {e}", repo_root.display()))?;
    if !output.status.success() {
        return Err(anyhow!("{}: git show HEAD failed: {}", repo_root.display(), String::from_utf8_lossy(&output.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let (time, date) = text.trim().split_once('\x1f').ok_or_else(|| anyhow!("{}: git show HEAD: unexpected output {text:?}", repo_root.display()))?;
    let head_time: i64 = time.parse().map_err(|_| anyhow!("{}: git show HEAD: bad commit time {time:?}", repo_root.display()))?;
    let mut history = History { head: Some(head), head_date: Some(date.to_string()), ..History::default() };

    // 3. The one pass over the log.
    let mut command = git(repo_root);
    command.args([
        "log",
        "--no-merges",
        "-M",
        "--name-status",
        "-z",
        "--relative",
        "--no-color",
        "--no-show-signature",
        "--no-ext-diff",
        "--format=%x1e%H%x1f%h%x1f%aE%x1f%cI",
    ]);
    if let Some(days) = window_days {
        command.arg(format!("--since=@{}", head_time.saturating_sub(i64::from(days) * 86_400)));
    }
    if let Some(n) = commits_window {
        command.arg(format!("--max-count={n}"));
    }
    command.arg("HEAD").arg("--");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow!("{}: git log: {e}", repo_root.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("git log: no stdout"))?;
    let parsed = read_log(BufReader::with_capacity(1 << 16, stdout), &mut history);
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|e| anyhow!("{}: git log: {e}", repo_root.display()))?;
    if !status.success() {
        return Err(anyhow!("{}: git log failed: {}", repo_root.display(), stderr.trim()));
    }
    parsed.map_err(|e| anyhow!("{}: git log: {e}", repo_root.display()))?;
    Ok(history)
}

fn empty(head: Option<String>, note: String) -> History {
    History { head, note: Some(note), ..History::default() }
}

/// `git -C repo_root` with the configuration that would change its output neutralized.
fn git(repo_root: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(repo_root)
        .args(["-c", "core.quotePath=false", "-c", "log.showSignature=false", "-c", "diff.renames=true", "-c", "log.mailmap=true"])
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env("GIT_TERMINAL_PROMPT", "0");
    command
}

struct Tally {
    commits: u32,
    authors: BTreeSet<String>,
    last_change: String,
    last_commit: String,
}

/// Parse `git log -z --name-status` records: `\x1e<header>\0`, then `\n<status>\0<path>\0`
/// (two paths for `R`/`C`), repeated.
fn read_log<R: BufRead>(mut input: R, history: &mut History) -> std::result::Result<(), String> {
    let mut tallies: HashMap<String, Tally> = HashMap::new();
    // Older name → current name, learnt from renames seen so far (newest first).
    let mut renamed: HashMap<String, String> = HashMap::new();
    let mut header: Option<(String, String, String)> = None; // (short hash, email, date)
    let mut touched: Vec<String> = Vec::new();
    let mut renames: Vec<(String, String)> = Vec::new();
    let mut added: Vec<String> = Vec::new();
    let mut token = Vec::new();
    let resolve = |renamed: &HashMap<String, String>, path: &str| renamed.get(path).cloned().unwrap_or_else(|| path.to_string());

    let mut flush = |header: &mut Option<(String, String, String)>,
                     touched: &mut Vec<String>,
                     renames: &mut Vec<(String, String)>,
                     added: &mut Vec<String>,
                     renamed: &mut HashMap<String, String>,
                     history: &mut History| {
        let Some((short, email, date)) = header.take() else { return };
        history.commits += 1;
        touched.sort();
        touched.dedup();
        for path in touched.drain(..) {
            let tally = tallies.entry(path).or_insert_with(|| Tally {
                commits: 0,
                authors: BTreeSet::new(),
                last_change: date.clone(),
                last_commit: short.clone(),
            });
            tally.commits += 1;
            tally.authors.insert(email.clone());
        }
        // Older commits see the old names under the current one; a name added here was
        // another file before (unless a rename here gives it one).
        for path in added.drain(..) {
            renamed.remove(&path);
        }
        for (old, current) in renames.drain(..) {
            renamed.insert(old, current);
        }
    };

    loop {
        token.clear();
        let n = input.read_until(0, &mut token).map_err(|e| format!("cannot read its output: {e}"))?;
        if n == 0 {
            break;
        }
        if token.last() == Some(&0) {
            token.pop();
        }
        let text = String::from_utf8_lossy(&token);
        let text = text.strip_prefix('\n').unwrap_or(&text);
        if let Some(fields) = text.strip_prefix('\x1e') {
            flush(&mut header, &mut touched, &mut renames, &mut added, &mut renamed, history);
            let parts: Vec<&str> = fields.split('\x1f').collect();
            let [_full, short, email, date] = parts[..] else {
                return Err(format!("unexpected commit header {fields:?}"));
            };
            header = Some((short.to_string(), email.to_lowercase(), date.to_string()));
            continue;
        }
        if text.is_empty() {
            continue;
        }
        if header.is_none() {
            return Err(format!("a file status {text:?} before any commit"));
        }
        let status = text.chars().next().unwrap_or(' ');
        let next_path = |input: &mut R| -> std::result::Result<String, String> {
            let mut path = Vec::new();
            input.read_until(0, &mut path).map_err(|e| format!("cannot read its output: {e}"))?;
            if path.pop() != Some(0) {
                return Err(format!("truncated entry after status {text:?}"));
            }
            Ok(String::from_utf8_lossy(&path).into_owned())
        };
        match status {
            'R' | 'C' => {
                let old = next_path(&mut input)?;
                let new = next_path(&mut input)?;
                let current = resolve(&renamed, &new);
                if status == 'R' {
                    renames.push((old, current.clone()));
                }
                touched.push(current);
            }
            'A' | 'M' | 'D' | 'T' | 'U' | 'X' | 'B' => {
                let path = next_path(&mut input)?;
                touched.push(resolve(&renamed, &path));
                if status == 'A' {
                    added.push(path);
                }
            }
            _ => return Err(format!("unknown file status {text:?}")),
        }
    }
    flush(&mut header, &mut touched, &mut renames, &mut added, &mut renamed, history);
    history.files = tallies
        .into_iter()
        .map(|(path, t)| {
            let file = FileHistory { commits: t.commits, authors: t.authors.len() as u32, last_change: t.last_change, last_commit: t.last_commit };
            (path, file)
        })
        .collect();
    Ok(())
}
