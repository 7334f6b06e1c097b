//! The `ast` oracle: every class, function, method and import the tool reports must be what
//! Python's own `ast` module finds in the same files (tests/oracle/ast_oracle.py compares
//! qualname, name, kind, start and end positions, async, parameters with their annotations,
//! decorator, base and return annotation texts, docstring summary; import line, target,
//! level, star, names, alias and flags — names NFKC-normalized as `ast` spells them).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{build, python_stdlib, repo, stderr};

/// Files of Python 3.11's standard library where tree-sitter-python 0.25 itself fails on code
/// that `ast.parse` accepts. Each is reported with `parse_errors > 0` in `modules.jsonl`.
const TREE_SITTER_DISAGREEMENTS: &[(&str, &str)] = &[
    (
        "test/test_compile.py",
        "the grammar's scanner emits a DEDENT for a continuation line dedented inside parentheses after `.` (`(bar.\\n        baz)`), \
         so the rest of the file lands in an ERROR node",
    ),
    (
        "test/test_future_stmt/badsyntax_future8.py",
        "`from __future__ import *` is a compile-time SyntaxError that `ast.parse` accepts; the grammar rejects it",
    ),
];

fn run_oracle(root: &Path, out: &Path, extra: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/ast_oracle.py");
    let output = Command::new("python3")
        .arg(script)
        .arg("--root")
        .arg(root)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "oracle failed: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn diff_paths(report: &Value) -> Vec<String> {
    let mut paths: Vec<String> = ["symbol_diffs", "import_diffs"]
        .iter()
        .flat_map(|k| report[k].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap().to_string()))
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

#[test]
fn fixtures_match_ast() {
    for (fixture, extra) in
        [("basic", &[][..]), ("srclayout", &["--src-layout"][..]), ("exports", &[][..]), ("outline", &[][..])]
    {
        let repo = repo(fixture);
        let out = repo.out();
        build(&repo.root, &out, &[]);
        let report = run_oracle(&repo.root, &out, extra);
        assert!(report["symbols_compared"].as_u64().unwrap() > 0 || fixture == "srclayout");
        assert_eq!(report["diff_count"], 0, "{fixture}: {report:#}");
        // Only the file with a syntax error is one that ast cannot parse.
        let failed: Vec<&str> = report["ast_failed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(failed, if fixture == "basic" { vec!["pkg/broken.py"] } else { Vec::<&str>::new() });
    }
}

#[test]
fn standard_library_matches_ast() {
    let stdlib = python_stdlib();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // The oracle reads the JSONL and the graphs: no dataset or database (DuckDB is unoptimized
    // in test builds).
    let output = build(&stdlib, &out, &["--exclude", "site-packages", "--quiet", "--no-cache", "--no-parquet"]);
    assert!(matches!(output.status.code(), Some(0 | 1)), "{}", stderr(&output));
    let report = run_oracle(&stdlib, &out, &[]);
    eprintln!(
        "stdlib oracle: {} modules compared, {} symbols, {} imports, {} differences",
        report["compared"], report["symbols_compared"], report["imports_compared"], report["diff_count"]
    );
    assert!(report["compared"].as_u64().unwrap() > 1000, "{report:#}");
    let differing = diff_paths(&report);
    let known: Vec<String> = TREE_SITTER_DISAGREEMENTS.iter().map(|(p, _)| p.to_string()).collect();
    let unexpected: Vec<&String> = differing.iter().filter(|p| !known.contains(p)).collect();
    assert!(unexpected.is_empty(), "differences from ast in {unexpected:?}:\n{report:#}");
    // Every known disagreement is a file the tool itself flags with parse errors.
    let modules = std::fs::read_to_string(out.join("modules.jsonl")).unwrap();
    for path in &differing {
        let record: Value = modules
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|m| m["path"] == path.as_str())
            .unwrap();
        assert!(record["parse_errors"].as_u64().unwrap() > 0, "{path} differs but has no parse errors");
    }
    compare_with_ruff_graph(&out);
}

/// Every coding cookie label CPython knows (aliases and codec modules, in several spellings) and
/// the WHATWG labels it does not: the decoder must agree with `ast.parse` on whether the label
/// names a codec, and for single-byte codecs on every byte 0x80..=0xFF (decoded or undecodable).
/// A codec CPython has and the decoder does not support is an unknown encoding for every one
/// of its labels.
#[test]
fn decoding_matches_cpython() {
    use codeintel_enrich::source::{DecodeError, decode};
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/codec_oracle.py");
    let output = Command::new("python3").arg(script).output().expect("python3 runs");
    assert!(output.status.success(), "codec oracle failed: {}", stderr(&output));
    let entries: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let (mut compared_bytes, mut supported, mut unsupported) = (0, std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    let mut wrong = Vec::new();
    for entry in &entries {
        let label = entry["label"].as_str().unwrap();
        let codec = entry["codec"].as_str().unwrap_or("?");
        let cookie = format!("# coding: {label}\n");
        let tool = decode(cookie.as_bytes());
        match (entry["status"].as_str().unwrap(), &tool) {
            ("unknown", Err(DecodeError::UnknownEncoding(_))) | ("undecodable", Err(_)) => continue,
            ("ok", Err(DecodeError::UnknownEncoding(_))) => {
                unsupported.insert(codec.to_string());
                continue;
            }
            ("ok", Ok(_)) => {
                supported.insert(codec.to_string());
            }
            (status, _) => {
                wrong.push(format!("{label}: CPython {status} ({codec}), decoder {tool:?}"));
                continue;
            }
        }
        let Some(bytes) = entry["bytes"].as_array() else { continue };
        for (i, expected) in bytes.iter().enumerate() {
            let byte = 0x80 + i as u8;
            let mut source = format!("{cookie}x = '").into_bytes();
            source.extend_from_slice(&[byte, b'\'', b'\n']);
            let actual = decode(&source).ok().map(|d| {
                let value = &d.text[cookie.len() + 5..d.text.len() - 2];
                value.chars().map(u64::from).collect::<Vec<_>>()
            });
            let expected = expected.as_u64().map(|c| vec![c]);
            compared_bytes += 1;
            if actual != expected {
                wrong.push(format!("{label} ({codec}) byte {byte:#x}: CPython {expected:?}, decoder {actual:?}"));
            }
        }
    }
    eprintln!(
        "codec labels: {} checked, {compared_bytes} single bytes compared; codecs decoded: {supported:?}; \
         CPython codecs not supported (unknown encoding): {}",
        entries.len(),
        unsupported.len()
    );
    assert!(wrong.is_empty(), "{} differences from CPython:\n{}", wrong.len(), wrong.join("\n"));
    let both: Vec<&String> = supported.intersection(&unsupported).collect();
    assert!(both.is_empty(), "codecs decoded under some labels and unknown under others: {both:?}");
    for codec in ["utf-8", "iso8859-1", "ascii", "cp1252", "iso8859-15", "koi8-r", "mac-roman", "shift_jis", "gbk"] {
        assert!(supported.contains(codec), "{codec} is not decoded");
    }
}

/// Why an edge of `ruff analyze graph` (committed output, see make_ruff_stdlib_graph.sh) is
/// missing from ours, or why we have one ruff does not. `None`: unexplained, a bug.
fn explain_edge(from: &str, to: &str, ruff_only: bool) -> Option<&'static str> {
    // Directories without __init__.py inside the test suite's data: ruff treats each as a new
    // source root and resolves bare imports (`import foo`) that only work after the test puts
    // the directory on sys.path; from the repository root they are PEP 420 namespace packages.
    const DATA_ROOTS: &[&str] =
        &["test/test_importlib/namespace_pkgs/", "test/test_import/data/", "lib2to3/tests/data/"];
    let in_data = |path: &str| DATA_ROOTS.iter().any(|root| path.starts_with(root));
    if ruff_only {
        if in_data(to) {
            return Some("ruff resolves against a nested source root");
        }
        if from == "test/test_future_stmt/badsyntax_future8.py" {
            return Some("tree-sitter rejects `from __future__ import *` (see TREE_SITTER_DISAGREEMENTS)");
        }
        return None;
    }
    if to == "os.py" || to == "xml/parsers/expat.py" {
        return Some("a module registering a submodule in sys.modules (os.path, xml.parsers.expat.errors) is what \
                     importing that submodule loads; ruff finds no file for it");
    }
    if to == "types.py" {
        return Some("ruff does not resolve `import types` to the repository's types.py");
    }
    if from.starts_with("venv/") {
        return Some("ruff's default exclusions skip directories named venv");
    }
    if from == "test/test_source_encoding.py" {
        return Some("ruff cannot read a file with a PEP 263 latin-1 cookie");
    }
    if from == "lib2to3/tests/data/py2_test_grammar.py" {
        return Some("ruff cannot parse Python 2; tree-sitter recovers the imports");
    }
    if in_data(from) && in_data(to) {
        return Some("relative imports inside PEP 420 namespace packages, which ruff does not resolve");
    }
    None
}

fn compare_with_ruff_graph(out: &Path) {
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle");
    let output = Command::new("python3")
        .arg(oracle.join("compare_ruff_graph.py"))
        .arg("--out")
        .arg(out)
        .arg("--ruff")
        .arg(oracle.join("ruff_stdlib_graph.json"))
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!(
        "import edges vs ruff analyze graph: {} ours, {} ruff's, {} common",
        report["tool_edges"], report["ruff_edges"], report["common"]
    );
    let mut unexplained = Vec::new();
    for (key, ruff_only) in [("ruff_only", true), ("tool_only", false)] {
        for edge in report[key].as_array().unwrap() {
            let (from, to) = (edge[0].as_str().unwrap(), edge[1].as_str().unwrap());
            if explain_edge(from, to, ruff_only).is_none() {
                unexplained.push(format!("{key}: {from} -> {to}"));
            }
        }
    }
    assert!(unexplained.is_empty(), "import edges that differ from ruff without a reason:\n{}", unexplained.join("\n"));
    assert!(report["common"].as_u64().unwrap() > 8000, "{report}");
}
