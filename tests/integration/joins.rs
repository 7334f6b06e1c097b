//! External inputs joined into `modules.jsonl`: the figures against independent Python
//! oracles reading the same files, tags from them, bad inputs stopping the build before any
//! output, and a changed input re-running only its join and the rows it changes.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{build, copy_dir, explain_json, fixture_dir, jsonl, read, repo, stderr};

fn oracle(script: &Path, report: &Path, root: &Path) -> Value {
    let output = Command::new("python3").arg(script).arg(report).arg(root).output().expect("python3 runs");
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn by_path(out: &Path) -> std::collections::BTreeMap<String, Value> {
    jsonl(out, "modules.jsonl").into_iter().map(|m| (m["path"].as_str().unwrap().to_string(), m)).collect()
}

#[test]
fn coverage_figures_match_the_oracle_and_tag_low_coverage() {
    let repo = repo("coverage");
    let out = repo.out();
    let report = repo.root.join("coverage.xml");
    let output = build(&repo.root, &out, &["--no-cache", "--coverage-xml", report.to_str().unwrap(), "--low-coverage-threshold", "0.8"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let expected = oracle(&repo.root.join("oracle.py"), &report, &repo.root);
    let modules = by_path(&out);
    let files = expected["files"].as_object().unwrap();
    assert!(files.len() >= 4);
    for (path, figures) in files {
        assert_eq!(&modules[path]["coverage"], figures, "{path}");
    }
    assert!(modules["calc/ops.py"]["tags"].as_array().unwrap().contains(&json!("low-coverage")), "0.79 < 0.8");
    assert!(!modules["calc/__init__.py"]["tags"].as_array().unwrap().contains(&json!("low-coverage")));
    // Modules the report does not mention have null coverage.
    assert_eq!(modules["oracle.py"]["coverage"], Value::Null);
    crate::columnar::assert_dataset_matches_jsonl(&out);

    // With owners too, the database answers "low coverage by owner" as the rows say.
    std::fs::write(repo.root.join("CODEOWNERS"), "* @everyone\ncalc/ @calc-team\n").unwrap();
    let args = ["--no-cache", "--owners", "--coverage-xml", report.to_str().unwrap(), "--low-coverage-threshold", "0.8"];
    let output = build(&repo.root, &out, &args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mut expected: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for module in by_path(&out).values() {
        if module["tags"].as_array().unwrap().contains(&json!("low-coverage")) {
            for owner in module["owners"].as_array().unwrap() {
                expected.entry(owner.as_str().unwrap().to_string()).or_default().push(module["path"].as_str().unwrap().to_string());
            }
        }
    }
    assert!(!expected.is_empty(), "the fixture has low-coverage modules");
    let rows = crate::support::query_json(&out, "SELECT owner, modules, paths FROM low_coverage_by_owner ORDER BY owner");
    let actual: std::collections::BTreeMap<String, Vec<String>> = rows
        .iter()
        .map(|r| {
            let paths: Vec<String> = r["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
            assert_eq!(r["modules"].as_u64().unwrap() as usize, paths.len());
            (r["owner"].as_str().unwrap().to_string(), paths)
        })
        .collect();
    assert_eq!(actual, expected);
}

#[test]
fn pyrefly_counts_match_the_oracle_and_tag_type_errors() {
    let repo = repo("pyrefly");
    let out = repo.out();
    let report = repo.root.join("report.json");
    build(&repo.root, &out, &["--no-cache", "--pyrefly-json", report.to_str().unwrap()]);
    let expected = oracle(&repo.root.join("oracle.py"), &report, &repo.root);
    let modules = by_path(&out);
    for (path, figures) in expected["files"].as_object().unwrap() {
        assert_eq!(&modules[path]["pyrefly"], figures, "{path}");
        let tagged = modules[path]["tags"].as_array().unwrap().contains(&json!("type-errors"));
        assert_eq!(tagged, figures["errors"].as_u64().unwrap() > 0, "{path}");
    }
    // `by_kind` is a Parquet map that reads back as the JSON object.
    crate::columnar::assert_dataset_matches_jsonl(&out);
}

#[test]
fn scip_figures_match_the_oracle() {
    let repo = repo("scip");
    let out = repo.out();
    let index = fixture_dir("scip").join("index.scip");
    let root = repo.root.join("repo");
    build(&root, &out, &["--no-cache", "--scip", index.to_str().unwrap()]);
    let output = Command::new("python3")
        .arg(fixture_dir("scip").join("scip_oracle.py"))
        .arg(fixture_dir("scip").join("index.json"))
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let expected: Value = serde_json::from_slice(&output.stdout).unwrap();
    let modules = by_path(&out);
    let documents = expected["documents"].as_object().or_else(|| expected.as_object()).unwrap();
    let mut compared = 0;
    for (path, stats) in documents {
        let Some(module) = modules.get(path) else { continue };
        for field in ["symbols_defined", "definitions", "references", "references_to_other_files", "referencing_files"] {
            if let Some(value) = stats.get(field) {
                assert_eq!(&module["scip"][field], value, "{path} {field}");
            }
        }
        compared += 1;
    }
    assert!(compared >= 5, "{expected:#}");
    assert!(modules["shop/models.py"]["scip"]["referencing_files"].as_u64().unwrap() >= 3, "symbol-level fan-in");
    crate::columnar::assert_dataset_matches_jsonl(&out);
}

#[test]
fn owners_from_codeowners() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    copy_dir(&fixture_dir("owners"), &root);
    for file in ["scripts/run.py", "vendor/github/xy.py", "vendor/special/yz.py", "a.py", "src/pkg/mod.py", "lib/tools.py"] {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x = 1\n").unwrap();
    }
    let out = tmp.path().join("out");
    let output = build(&root, &out, &["--no-cache", "--owners"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let modules = by_path(&out);
    let owners = |path: &str| modules[path]["owners"].clone();
    assert_eq!(owners("scripts/run.py"), json!(["@doctocat", "@octocat"]));
    assert_eq!(owners("vendor/github/xy.py"), json!([]), "a rule without owners");
    assert_eq!(owners("vendor/special/yz.py"), json!(["@special"]));
    assert_eq!(owners("a.py"), json!(["@single-char"]));
    assert_eq!(owners("src/pkg/mod.py"), json!(["@src-owner"]));
    assert_eq!(owners("lib/tools.py"), json!(["@global-owner1", "@global-owner2"]));
    // Lines GitHub skips are warnings with their line.
    let diagnostics = jsonl(&out, "diagnostics.jsonl");
    let skipped: Vec<u64> = diagnostics
        .iter()
        .filter(|d| d["kind"] == "codeowners_line")
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    assert_eq!(skipped.len(), 5, "{diagnostics:#?}");
    crate::columnar::assert_dataset_matches_jsonl(&out);
    // Without --owners the field is null.
    build(&root, &out, &["--no-cache"]);
    assert_eq!(by_path(&out)["a.py"]["owners"], Value::Null);
}

fn git(root: &Path, args: &[&str], date: &str, author: &str) {
    let output = Command::new("git")
        .args(args)
        .current_dir(root)
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .env("GIT_AUTHOR_NAME", author)
        .env("GIT_AUTHOR_EMAIL", format!("{author}@example.com"))
        .env("GIT_COMMITTER_NAME", author)
        .env("GIT_COMMITTER_EMAIL", format!("{author}@example.com"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_SYSTEM", "/dev/null")
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {}", stderr(&output));
}

#[test]
fn history_from_git_anchored_at_head() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    git(&root, &["init", "-q", "-b", "main"], "2020-01-01T00:00:00+00:00", "ann");
    let commit = |file: &str, text: &str, date: &str, author: &str| {
        std::fs::write(root.join(file), text).unwrap();
        git(&root, &["add", "-A"], date, author);
        git(&root, &["commit", "-q", "-m", file], date, author);
    };
    commit("a.py", "x = 1\n", "2020-01-01T10:00:00+00:00", "ann");
    commit("b.py", "y = 1\n", "2020-03-01T10:00:00+00:00", "bob");
    commit("a.py", "x = 2\n", "2020-03-10T10:00:00+00:00", "bob");
    std::fs::rename(root.join("b.py"), root.join("c.py")).unwrap();
    git(&root, &["add", "-A"], "2020-03-20T10:00:00+00:00", "cat");
    git(&root, &["commit", "-q", "-m", "rename b to c"], "2020-03-20T10:00:00+00:00", "cat");
    let out = tmp.path().join("out");
    let output = build(&root, &out, &["--no-cache", "--history-window-days", "30"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let modules = by_path(&out);
    // The window is the 30 days before HEAD (2020-03-20), not before today.
    assert_eq!(modules["a.py"]["history"]["commits"], json!(1), "{:#}", modules["a.py"]);
    assert_eq!(modules["a.py"]["history"]["last_change"], json!("2020-03-10T10:00:00Z"));
    assert_eq!(modules["c.py"]["history"]["commits"], json!(2), "b.py's commit follows the rename");
    assert_eq!(modules["c.py"]["history"]["authors"], json!(2));
    crate::columnar::assert_dataset_matches_jsonl(&out);
    let output = build(&root, &out, &["--no-cache", "--commits-window", "10"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(by_path(&out)["a.py"]["history"]["commits"], json!(2));
    // Outside a git repository: a note, null fields, no failure.
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("m.py"), "z = 1\n").unwrap();
    let out = tmp.path().join("out2");
    let output = build(&plain, &out, &["--no-cache", "--history-window-days", "30"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(by_path(&out)["m.py"]["history"], Value::Null);
    assert!(read(&out, "diagnostics.jsonl").contains("input_note"));
}

#[test]
fn a_bad_input_stops_the_build_before_any_output() {
    let repo = repo("coverage");
    let out = repo.out();
    let bad = repo.root.join("bad.xml");
    std::fs::write(&bad, "<report><package/></report>\n").unwrap();
    let output = build(&repo.root, &out, &["--coverage-xml", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("bad.xml"), "{}", stderr(&output));
    assert!(!out.join("modules.jsonl").exists());
    let truncated = repo.root.join("truncated.scip");
    let bytes = std::fs::read(fixture_dir("scip").join("index.scip")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let output = build(&repo.root, &out, &["--scip", truncated.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("truncated.scip") && stderr(&output).contains("truncated"), "{}", stderr(&output));
    let output = build(&repo.root, &out, &["--pyrefly-json", "missing.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("missing.json"), "{}", stderr(&output));
}

#[test]
fn a_changed_input_reruns_its_join_and_the_rows_it_changes() {
    let repo = repo("coverage");
    let out = repo.out();
    let report = repo.root.join("coverage.xml");
    let args = ["--coverage-xml", report.to_str().unwrap()];
    build(&repo.root, &out, &args);
    // One more covered line in calc/ops.py.
    let text = std::fs::read_to_string(&report).unwrap();
    let index = text.find("hits=\"0\"").expect("an uncovered line");
    std::fs::write(&report, format!("{}hits=\"1\"{}", &text[..index], &text[index + "hits=\"0\"".len()..])).unwrap();
    build(&repo.root, &out, &args);
    let report_json = explain_json(&repo.root, &[]);
    let ran: Vec<String> = report_json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "recomputed")
        .map(|n| format!("{}({})", n["stage"].as_str().unwrap(), n["subject"].as_str().unwrap()))
        .collect();
    assert!(ran.contains(&"coverage(coverage.xml)".to_string()), "{ran:#?}");
    let rows: Vec<&String> = ran.iter().filter(|n| n.starts_with("rows(")).collect();
    assert!(!rows.is_empty() && rows.len() <= 2, "only the modules whose figures changed: {ran:#?}");
    for parse_bound in ["imports(", "outline(", "module_scope(", "syntax_errors(", "pattern_tags("] {
        assert!(!ran.iter().any(|n| n.starts_with(parse_bound)), "{ran:#?}");
    }
    let causes = report_json["root_causes"].as_array().unwrap();
    assert!(causes.iter().any(|c| c["reason"]["name"].as_str().unwrap_or("").contains("coverage.xml")), "{causes:#?}");
    // Equal to a cold build.
    let cold = repo.tmp.path().join("cold");
    build(&repo.root, &cold, &["--no-cache", "--coverage-xml", report.to_str().unwrap()]);
    assert_eq!(read(&out, "modules.jsonl"), read(&cold, "modules.jsonl"));
}
