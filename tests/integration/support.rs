//! Helpers: copy a fixture repository to a temporary directory, run the binary, read outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let file_type = entry.file_type().unwrap();
        if file_type.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if file_type.is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A private copy of a fixture repository (at `<tmp>/<dir_name>`), with the symlink loop
/// `pkg/sub/loop -> ..` added to `basic` (git-tracked symlink loops upset other tools).
pub struct Repo {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
}

pub fn repo(fixture: &str) -> Repo {
    repo_at(fixture, "repo")
}

pub fn repo_at(fixture: &str, dir_name: &str) -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join(dir_name);
    copy_dir(&fixture_dir(fixture), &root);
    #[cfg(unix)]
    if fixture == "basic" {
        std::os::unix::fs::symlink("..", root.join("pkg/sub/loop")).unwrap();
    }
    Repo { tmp, root }
}

impl Repo {
    pub fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_codeintel-enrich"))
}

/// Run `codeintel-enrich build --root ROOT --out OUT ARGS…`.
pub fn build(root: &Path, out: &Path, args: &[&str]) -> Output {
    bin()
        .arg("build")
        .arg("--root")
        .arg(root)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("the binary runs")
}

pub fn read(out: &Path, file: &str) -> String {
    std::fs::read_to_string(out.join(file)).unwrap_or_else(|e| panic!("cannot read {file}: {e}"))
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn jsonl(out: &Path, file: &str) -> Vec<serde_json::Value> {
    read(out, file).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// The path of the Python standard library of `python3`.
pub fn python_stdlib() -> PathBuf {
    let output = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"])
        .output()
        .expect("python3 is installed");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// `codeintel-enrich explain --json` of the last build of `root` (default cache directory).
pub fn explain_json(root: &Path, extra: &[&str]) -> serde_json::Value {
    let output = bin().arg("explain").arg("--json").arg("--root").arg(root).args(extra).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every file under `dir`, by relative path — but the database, whose bytes are DuckDB's
/// business (its tables are compared by query: see [`database_tables`]).
pub fn files_under(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
                if relative.starts_with("codeintel.duckdb") {
                    continue;
                }
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// `codeintel-enrich query --json SQL` against the database in `out`.
pub fn query_json(out: &Path, sql: &str) -> Vec<serde_json::Value> {
    let output = bin().arg("query").arg("--json").arg("--out").arg(out).arg(sql).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{sql}: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{sql}: {e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// Every table of the database in `out`, all rows in key order (the `package` partition
/// column included).
pub fn database_tables(out: &Path) -> std::collections::BTreeMap<&'static str, Vec<serde_json::Value>> {
    [
        ("modules", "path"),
        ("symbols", "path, ordinal"),
        ("imports", "path, ordinal"),
        ("tags", "path, tag"),
        ("diagnostics", "path, ordinal"),
        ("cycles", "kind, cycle, module"),
        ("codeintel_meta", "key"),
    ]
    .into_iter()
    .map(|(table, key)| (table, query_json(out, &format!("SELECT * FROM {table} ORDER BY {key}"))))
    .collect()
}
