//! The command-line contract: options, exit codes, dry runs, completions.

use crate::support::{bin, build, jsonl, repo, stderr};

#[test]
fn help_lists_every_option() {
    let output = bin().args(["build", "--help"]).output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for option in [
        "--root", "--out", "--only", "--exclude", "--max-file-bytes", "--jobs", "--dry-run", "--follow-links",
        "--verbose", "--quiet",
    ] {
        assert!(help.contains(option), "{option} missing from --help:\n{help}");
    }
}

#[test]
fn exit_codes() {
    let repo = repo("basic");
    let out = repo.out();
    // An undecodable file: outputs are written, the exit code says a file was lost.
    let output = build(&repo.root, &out, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(out.join("modules.jsonl").exists());
    // Without it, a syntax error and an oversized file are not errors of the run.
    let clean_out = repo.tmp.path().join("clean");
    let output = build(&repo.root, &clean_out, &["--exclude", "pkg/bad_utf8.py", "--max-file-bytes", "4096"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // A missing root is fatal and writes nothing.
    let missing_out = repo.tmp.path().join("missing-out");
    let output = build(&repo.root.join("nope"), &missing_out, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("nope"), "the error names the path: {}", stderr(&output));
    assert!(!missing_out.exists());
    // Bad usage.
    let output = bin().args(["build", "--jobs", "zero"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn dry_run_writes_nothing() {
    let repo = repo("basic");
    let out = repo.out();
    let output = build(&repo.root, &out, &["--dry-run"]);
    assert!(!out.exists(), "--dry-run created the output directory");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("would write modules.jsonl (9 rows"), "{stdout}");
    assert!(stdout.contains("would write symbols.jsonl"), "{stdout}");
    assert!(stderr(&output).contains("dry run: nothing written"));
}

#[test]
fn options_are_global_and_filters_apply() {
    let repo = repo("basic");
    let out = repo.out();
    // Options before the subcommand work as well as after it.
    let output = bin()
        .arg("--root")
        .arg(&repo.root)
        .arg("--out")
        .arg(&out)
        .args(["-q", "--only", "pkg/sub/**", "build", "--jobs", "1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(output.stderr.is_empty(), "-q prints nothing on success: {}", stderr(&output));
    let paths: Vec<String> = jsonl(&out, "modules.jsonl").iter().map(|m| m["path"].as_str().unwrap().to_string()).collect();
    assert_eq!(paths, ["pkg/sub/__init__.py", "pkg/sub/deep.py"]);
}

#[test]
fn output_directory_is_never_scanned() {
    let repo = repo("basic");
    // An output directory inside the repository, written twice: the second run must not see
    // the first run's files (nor would it see .py files placed there).
    let out = repo.root.join("artifacts");
    build(&repo.root, &out, &["--exclude", "pkg/bad_utf8.py"]);
    std::fs::write(out.join("leftover.py"), "def leftover(): ...\n").unwrap();
    let first = std::fs::read(out.join("modules.jsonl")).unwrap();
    // Moved elsewhere, an old output directory is still recognized by its marker.
    let moved = repo.root.join("old-artifacts");
    std::fs::rename(&out, &moved).unwrap();
    build(&repo.root, &out, &["--exclude", "pkg/bad_utf8.py"]);
    assert_eq!(std::fs::read(out.join("modules.jsonl")).unwrap(), first);
    // The default output directory is `<root>/.codeintel` and ignores itself in git.
    let output = bin().current_dir(&repo.root).args(["build", "-q"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(repo.root.join(".codeintel/modules.jsonl").exists());
    assert_eq!(std::fs::read_to_string(repo.root.join(".codeintel/.gitignore")).unwrap().lines().last(), Some("*"));
}

#[test]
fn completions() {
    let output = bin().args(["completions", "bash"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(script.contains("codeintel-enrich") && script.contains("--max-file-bytes"), "{script}");
}
