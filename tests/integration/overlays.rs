//! Tags, the overlay decision and the `.pyi` overlays: every stub parses and binds the
//! module's exports (checked in Python), real type checkers accept a client through the
//! overlays and reject it without them, configuration errors name their place, and editing
//! the tags YAML or the overlays config re-runs only tag nodes.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{build, explain_json, files_under, fixture_dir, jsonl, read, repo, stderr};

/// The overlays of `out` as one text, file by file (for snapshots).
fn overlays_text(out: &Path) -> String {
    files_under(&out.join("overlays"))
        .into_iter()
        .map(|(path, bytes)| format!("=== {path}\n{}", String::from_utf8(bytes).unwrap()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn stub_oracle(out: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/stub_oracle.py");
    let output = Command::new("python3").arg(script).arg("--out").arg(out).output().expect("python3 runs");
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn every_stub_parses_and_binds_the_modules_exports() {
    for fixture in ["idioms", "exports", "basic", "typecheck"] {
        let repo = repo(fixture);
        let out = repo.out();
        build(&repo.root, &out, &["--no-cache", "--python-version", "3.11", "--export-hub-threshold", "3"]);
        let report = stub_oracle(&out);
        assert!(report["stubs"].as_u64().unwrap() >= 2, "{fixture}: {report:#}");
        assert_eq!(report["stubs"], report["selected"], "{fixture}: {report:#}");
        assert_eq!(report["parse_errors"], json!([]), "{fixture}: {report:#}");
        assert_eq!(report["mismatches"], json!([]), "{fixture}: {report:#}");
    }
}

#[test]
fn standard_library_stubs_parse_and_bind_the_exports() {
    let stdlib = crate::support::python_stdlib();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build(&stdlib, &out, &["--exclude", "site-packages", "--quiet", "--no-cache", "--python-version", "3.11"]);
    let report = stub_oracle(&out);
    eprintln!("stdlib overlays: {} stubs", report["stubs"]);
    assert!(report["stubs"].as_u64().unwrap() > 50, "{report:#}");
    assert_eq!(report["stubs"], report["selected"], "{report:#}");
    assert_eq!(report["parse_errors"], json!([]), "{report:#}");
    assert_eq!(report["mismatches"], json!([]), "{report:#}");
}

#[test]
fn tags_decisions_and_stubs_snapshots() {
    let repo = repo("idioms");
    let out = repo.out();
    build(&repo.root, &out, &["--no-cache", "--python-version", "3.11", "--export-hub-threshold", "5"]);
    insta::assert_snapshot!("idioms_tags.json", read(&out, "tags.json"));
    insta::assert_snapshot!("idioms_overlays", overlays_text(&out));
    let modules = jsonl(&out, "modules.jsonl");
    let record = |path: &str| modules.iter().find(|m| m["path"] == path).unwrap().clone();
    // A star import selects; a package above a selected module is selected too.
    assert_eq!(record("helpers/plain.py")["overlay"], json!({"needed": true, "reasons": ["star-import"]}));
    assert_eq!(record("helpers/__init__.py")["overlay"]["reasons"], json!(["export-hub", "parent-of-overlay", "star-import"]));
    assert_eq!(record("precise/readonly.py")["overlay"], json!({"needed": false, "reasons": []}));
    // Computed tags.
    assert_eq!(record("registry/_export.py")["tags"], json!(["private"]));
    assert_eq!(record("submods/__init__.py")["tags"], json!(["package", "public-api"]));
    assert!(record("precise/writes.py")["tags"].as_array().unwrap().contains(&json!("incomplete-exports")));
    // A stub beside a module: its path, a tag, a warning where its names differ, and the
    // overlay starts from it.
    let core = record("stubbed/core.py");
    assert_eq!(core["stub_path"], json!("stubbed/core.pyi"));
    assert!(core["tags"].as_array().unwrap().contains(&json!("has-stub")));
    let stub = read(&out, "overlays/stubbed/core.pyi");
    assert!(stub.contains("def impl_fn() -> int: ...") && stub.contains("extra: Incomplete"), "{stub}");
    let diagnostics = jsonl(&out, "diagnostics.jsonl");
    let mismatch = diagnostics.iter().find(|d| d["kind"] == "stub_mismatch").expect("a stub_mismatch warning");
    assert_eq!(mismatch["path"], json!("stubbed/core.py"));
    assert!(mismatch["message"].as_str().unwrap().contains("module only: [\"extra\"]"), "{mismatch}");
    assert!(!diagnostics.iter().any(|d| d["kind"] == "stub_mismatch" && d["path"] != "stubbed/core.py"));
}

/// The typecheck fixture: `api/__init__.py` builds `__all__` with a helper, `api/extra.py` with
/// a registration decorator (tagged `overlay-needed` in its tags YAML, which pyproject.toml
/// names); `api/sibling.py` has no overlay. The client outside the repository uses names only
/// the run-time `__all__`s have.
#[test]
fn real_type_checkers_accept_the_client_only_with_the_overlays() {
    let repo = repo("typecheck");
    let out = repo.out();
    let output = build(&repo.root, &out, &["--no-cache"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let overlays = files_under(&out.join("overlays"));
    assert_eq!(overlays.keys().collect::<Vec<_>>(), ["api/__init__.pyi", "api/extra.pyi"], "sibling.py and core.py have none");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/typecheck/run_checkers.py");
    let client = fixture_dir("typecheck-clients").join("client.py");
    let run = Command::new("python3")
        .arg(script)
        .arg("--repo")
        .arg(&repo.root)
        .arg("--overlays")
        .arg(out.join("overlays"))
        .arg("--client")
        .arg(&client)
        .args(["--checkers", "mypy,basedpyright,pyrefly"])
        .output()
        .expect("python3 runs");
    assert!(run.status.success(), "{}", stderr(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    for checker in ["mypy", "basedpyright", "pyrefly"] {
        let result = &report[checker];
        assert!(result.get("skipped").is_none(), "{checker} is not installed (pip install -r tests/requirements.txt): {result}");
        assert_eq!(result["without"]["ok"], json!(false), "{checker} must reject the client without overlays: {result:#}");
        assert_eq!(result["with"]["ok"], json!(true), "{checker} must accept the client with the overlays: {result:#}");
    }
}

fn build_args(root: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    build(root, out, extra)
}

#[test]
fn configuration_errors_name_file_line_column_and_key() {
    let repo = repo("idioms");
    let out = repo.out();
    let yaml = repo.root.join("tags.yaml");
    std::fs::write(&yaml, "tags:\n  - tag: hubs\n    when: fan_inn >= 3\n").unwrap();
    let output = build_args(&repo.root, &out, &["--tags-yaml", yaml.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output).replace(repo.root.to_str().unwrap(), "<root>");
    insta::assert_snapshot!("tags_yaml_error", message);
    assert!(!out.join("modules.jsonl").exists(), "nothing is written");

    let overlays = repo.root.join("overlays.yaml");
    std::fs::write(&overlays, "sets:\n  api:\n    paths: [\"x[\"]\n").unwrap();
    let output = build_args(&repo.root, &out, &["--overlays-config", overlays.to_str().unwrap(), "--overlays-set", "api"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output).replace(repo.root.to_str().unwrap(), "<root>");
    insta::assert_snapshot!("overlays_config_error", message);

    std::fs::write(repo.root.join("pyproject.toml"), "[tool.codeintel-enrich]\nexport-hub = 3\n").unwrap();
    let output = build_args(&repo.root, &out, &[]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output).replace(repo.root.to_str().unwrap(), "<root>");
    insta::assert_snapshot!("pyproject_error", message);
}

/// The stages of the nodes that ran in the last build (`recomputed` or `new`).
fn ran(root: &Path) -> Vec<String> {
    let report = explain_json(root, &[]);
    let mut stages: Vec<String> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "recomputed" || n["status"] == "new")
        .map(|n| format!("{}({})", n["stage"].as_str().unwrap(), n["subject"].as_str().unwrap()))
        .collect();
    stages.sort();
    stages
}

fn cold(root: &Path, extra: &[&str]) -> PathBuf {
    let out = root.parent().unwrap().join(format!("cold-{}", extra.len()));
    let _ = std::fs::remove_dir_all(&out);
    let mut args = vec!["--no-cache"];
    args.extend_from_slice(extra);
    build(root, &out, &args);
    out
}

#[test]
fn editing_the_tags_yaml_or_overlays_config_reruns_only_tag_nodes() {
    let repo = repo("typecheck");
    let out = repo.out();
    build(&repo.root, &out, &[]);
    // A new path rule: only the matching module's tags node re-runs, nothing parse-bound.
    let yaml = repo.root.join("codeintel-tags.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, format!("{text}  - tag: core-api\n    paths: [\"api/core.py\"]\n")).unwrap();
    build(&repo.root, &out, &[]);
    let nodes = ran(&repo.root);
    let parse_bound = ["imports(", "module_docstring(", "module_scope(", "module_summary(", "outline(", "syntax_errors("];
    assert!(nodes.iter().all(|n| !parse_bound.iter().any(|p| n.starts_with(p))), "{nodes:#?}");
    assert!(nodes.contains(&"tags(api/core.py)".to_string()), "{nodes:#?}");
    assert!(!nodes.iter().any(|n| n.starts_with("tags(") && n != "tags(api/core.py)"), "{nodes:#?}");
    assert_eq!(files_under(&out), files_under(&cold(&repo.root, &[])), "equal to a cold build");
    assert!(read(&out, "tags.json").contains("core-api"));

    // The rule that selects api/extra.py is gone: its overlay is removed, the package keeps its
    // own (a star import).
    std::fs::write(&yaml, "tags:\n  - tag: core-api\n    paths: [\"api/core.py\"]\n").unwrap();
    build(&repo.root, &out, &[]);
    let nodes = ran(&repo.root);
    assert!(nodes.iter().all(|n| !parse_bound.iter().any(|p| n.starts_with(p))), "{nodes:#?}");
    assert!(!out.join("overlays/api/extra.pyi").exists());
    assert!(out.join("overlays/api/__init__.pyi").exists());
    assert_eq!(files_under(&out), files_under(&cold(&repo.root, &[])));

    // An overlays config set selecting by threshold: api/core.py (2 exports) joins.
    let config = repo.root.join("overlays.yaml");
    std::fs::write(&config, "sets:\n  small:\n    min_exports: 2\n    paths: [\"api/core.py\"]\n").unwrap();
    let args = ["--overlays-config", config.to_str().unwrap(), "--overlays-set", "small"];
    build(&repo.root, &out, &args);
    let nodes = ran(&repo.root);
    assert!(nodes.iter().all(|n| !parse_bound.iter().any(|p| n.starts_with(p))), "{nodes:#?}");
    assert!(out.join("overlays/api/core.pyi").exists());
    let modules = jsonl(&out, "modules.jsonl");
    let core = modules.iter().find(|m| m["path"] == "api/core.py").unwrap();
    assert_eq!(core["overlay"]["reasons"], json!(["set:small"]));
    assert_eq!(files_under(&out), files_under(&cold(&repo.root, &args)));
}

#[test]
fn pattern_tags_builtin_and_user_queries() {
    let repo = repo("idioms");
    let out = repo.out();
    let yaml = repo.root.join("tags.yaml");
    std::fs::write(
        &yaml,
        "queries:\n  - tag: sets-sys-modules\n    query: |\n      ; prefilter: sys.modules\n      (assignment left: (subscript value: (attribute) @m (#eq? @m \"sys.modules\")))\n",
    )
    .unwrap();
    let output = build(&repo.root, &out, &["--tags-yaml", yaml.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let tags: Value = serde_json::from_str(&read(&out, "tags.json")).unwrap();
    assert_eq!(tags["sets-sys-modules"], json!(["regmod.py"]), "{tags:#}");
    assert_eq!(tags["dynamic-import"], json!(["precise/locals_write.py", "precise/readonly.py", "shims/lazy.py"]), "__import__, importlib: {tags:#}");
    // A changed query re-runs the pattern tags (they need trees), and nothing else parse-bound.
    std::fs::write(&yaml, "queries:\n  - tag: prints\n    query: '(call function: (identifier) @f (#eq? @f \"print\"))'\n").unwrap();
    build(&repo.root, &out, &["--tags-yaml", yaml.to_str().unwrap()]);
    let nodes = ran(&repo.root);
    assert!(nodes.iter().any(|n| n.starts_with("pattern_tags(")), "{nodes:#?}");
    for stage in ["imports(", "module_scope(", "outline(", "syntax_errors(", "module_summary("] {
        assert!(!nodes.iter().any(|n| n.starts_with(stage)), "{stage} re-ran: {nodes:#?}");
    }
    let tags: Value = serde_json::from_str(&read(&out, "tags.json")).unwrap();
    assert!(tags.get("sets-sys-modules").is_none());
}

#[test]
fn slices_for_the_selected_modules() {
    let repo = repo("idioms");
    let out = repo.out();
    build(&repo.root, &out, &["--slices-filter", "registry/*.py"]);
    let slices = files_under(&out.join("slices"));
    assert_eq!(slices.len(), 6, "{:?}", slices.keys());
    let export: Value = serde_json::from_slice(&slices["registry/_export.py.json"]).unwrap();
    assert_eq!(export["module"]["path"], "registry/_export.py");
    assert_eq!(export["imported_by"], json!(["registry", "registry.api", "registry.mixed", "registry.reexported"]));
    assert_eq!(export["outline"][0]["signature"], "def export(obj)");
    assert_eq!(export["outline"][0]["doc"], "Add obj to its module's __all__, creating it when absent.");
    // Without slices the next build removes them; asking again brings them back.
    build(&repo.root, &out, &[]);
    assert!(!out.join("slices").exists() || files_under(&out.join("slices")).is_empty());
    build(&repo.root, &out, &["--emit-slices"]);
    assert_eq!(files_under(&out.join("slices")).len(), jsonl(&out, "modules.jsonl").len());
}

#[test]
fn syntax_trees_are_written_for_changed_files_only() {
    let repo = repo("idioms");
    let out = repo.out();
    build(&repo.root, &out, &["--emit-ast"]);
    let trees = files_under(&out.join("ast"));
    assert_eq!(trees.len(), jsonl(&out, "modules.jsonl").len());
    let tree: Value = serde_json::from_slice(&trees["walrus/places.py.json"]).unwrap();
    assert_eq!(tree["kind"], "module");
    assert_eq!(tree["children"][0]["kind"], "expression_statement", "the docstring");
    // An edit re-renders that file's tree only.
    let file = repo.root.join("shims/impl.py");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap() + "added = 4\n").unwrap();
    build(&repo.root, &out, &["--emit-ast"]);
    let written: Vec<String> = explain_json(&repo.root, &[])["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["stage"] == "write" && n["subject"].as_str().unwrap().starts_with("ast/") && n["status"] != "reused")
        .map(|n| n["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(written, ["ast/shims/impl.py.json"]);
    let tree: Value = serde_json::from_str(&read(&out, "ast/shims/impl.py.json")).unwrap();
    assert!(tree.to_string().contains("\"added\""));
    assert_eq!(files_under(&out.join("ast")).len(), trees.len());
    // No leftovers of the staging.
    assert!(files_under(&out).keys().all(|p| !p.contains(".tmp-")));
}
