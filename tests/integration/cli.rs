//! The command-line contract: options, exit codes, dry runs, completions.

use std::process::Stdio;

use crate::support::{bin, build, jsonl, read, repo, stderr};

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

#[test]
fn problems_are_grouped_per_kind() {
    let repo = repo("basic");
    let out = repo.out();
    let args = ["--max-file-bytes", "4096", "--follow-links", "--no-cache"];
    let output = build(&repo.root, &out, &args);
    let err = stderr(&output);
    let see = format!(" — see {}", out.join("diagnostics.jsonl").display());
    // A lost file is named with its path; everything else is one line per kind, the most
    // frequent first (then by name), and the summary comes last.
    let expected = [
        "codeintel-enrich: undecodable: pkg/bad_utf8.py: invalid utf-8 at byte 5".to_string(),
        format!("codeintel-enrich: 2 unresolved imports (...outside ×1, scripts.relative ×1){see}"),
        format!("codeintel-enrich: 1 module with syntax errors (pkg/broken.py:8){see}"),
        format!("codeintel-enrich: 1 oversized file skipped (pkg/big_table.py){see}"),
        format!("codeintel-enrich: 1 symlink loop not followed (pkg/sub/loop){see}"),
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[..expected.len()], expected, "{err}");
    assert_eq!(lines.len(), expected.len() + 1, "then only the summary: {err}");
    assert!(lines[expected.len()].contains("8 modules, 27 symbols"), "{err}");
    let diagnostics = read(&out, "diagnostics.jsonl");

    // -v: every problem on its own line, with its line number, before the grouped lines.
    let verbose = stderr(&build(&repo.root, &out, &[&args[..], &["-v"]].concat()));
    for line in [
        "codeintel-enrich: unresolved import: pkg/sub/deep.py:10: cannot resolve import of ...outside",
        "codeintel-enrich: unresolved import: scripts/run.py:4: cannot resolve import of scripts.relative",
        "codeintel-enrich: syntax error: pkg/broken.py:8: 1 syntax error(s), first at line 8 column 11",
        "codeintel-enrich: skipped (too large): pkg/big_table.py: 10901 bytes is over --max-file-bytes 4096",
        "codeintel-enrich: symlink loop: pkg/sub/loop: links back to its ancestor pkg",
        &expected[1],
    ] {
        assert!(verbose.lines().any(|l| l == line), "-v prints {line:?}: {verbose}");
    }
    assert!(!err.contains("cannot resolve import of"), "per-file warnings only with -v: {err}");

    // -q: only the file error.
    let quiet = stderr(&build(&repo.root, &out, &[&args[..], &["-q"]].concat()));
    assert_eq!(quiet, format!("{}\n", expected[0]));
    // The printing never changes what diagnostics.jsonl holds.
    assert_eq!(read(&out, "diagnostics.jsonl"), diagnostics);
}

#[test]
fn stderr_stays_short_with_many_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let pkg = root.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("__init__.py"), "").unwrap();
    for i in 0..40 {
        std::fs::write(pkg.join(format!("m{i:02}.py")), "import pkg.missing\n").unwrap();
    }
    for i in 0..3 {
        std::fs::write(pkg.join(format!("o{i}.py")), "import pkg.other\nimport pkg.missing\n").unwrap();
    }
    for i in 0..4 {
        std::fs::write(pkg.join(format!("s{i}.py")), "def broken(:\n").unwrap();
    }
    for i in 0..25 {
        std::fs::write(pkg.join(format!("u{i:02}.py")), b"x = '\xff'\n").unwrap();
    }
    let out = tmp.path().join("out");
    let output = build(&root, &out, &["--no-cache"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    let lines: Vec<&str> = err.lines().collect();
    let see = format!(" — see {}", out.join("diagnostics.jsonl").display());
    // The first 20 undecodable files by path, then a count of the rest.
    for (i, line) in lines[..20].iter().enumerate() {
        assert!(line.starts_with(&format!("codeintel-enrich: undecodable: pkg/u{i:02}.py: ")), "{err}");
    }
    assert_eq!(lines[20], format!("codeintel-enrich: and 5 more file errors (5 undecodable){see}"), "{err}");
    assert_eq!(lines[21], format!("codeintel-enrich: 46 unresolved imports (pkg.missing ×43, pkg.other ×3){see}"));
    assert!(
        lines[22].starts_with("codeintel-enrich: 4 modules with syntax errors (pkg/s0.py:1, pkg/s1.py:1, pkg/s2.py:1, …)"),
        "{err}"
    );
    assert!(lines[23].contains("48 modules"), "{err}");
    assert_eq!(lines.len(), 24, "{err}");
    // Every problem is still in diagnostics.jsonl.
    assert_eq!(jsonl(&out, "diagnostics.jsonl").len(), 25 + 46 + 4);
    // -q: the errors only, still bounded.
    let quiet = stderr(&build(&root, &out, &["--no-cache", "-q"]));
    assert_eq!(quiet.lines().collect::<Vec<_>>(), lines[..21], "{quiet}");
}

#[test]
fn closed_stdout_is_not_an_error() {
    let repo = repo("basic");
    let mut child = bin()
        .arg("build")
        .arg("--root")
        .arg(&repo.root)
        .args(["--exclude", "pkg/bad_utf8.py", "--dry-run", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the build prints what it would write.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
}
