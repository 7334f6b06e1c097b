//! The persistent stage cache across processes: warm rebuilds reuse every node, a cache
//! restored in another checkout is a full hit, corruption is detected and rebuilt, concurrent
//! builds serialize, and `explain` names the reasons.

use std::path::Path;

use serde_json::Value;

use crate::support::{Repo, bin, build, copy_dir, explain_json, read, repo, stderr};

const ARTIFACTS: [&str; 7] = [
    "modules.jsonl",
    "symbols.jsonl",
    "imports.jsonl",
    "diagnostics.jsonl",
    "graphs/imports.json",
    "graphs/imports_runtime.json",
    "graphs/cycles.json",
];

fn summary(report: &Value) -> (u64, u64, u64, u64) {
    let s = &report["summary"];
    (s["new"].as_u64().unwrap(), s["reused"].as_u64().unwrap(), s["recomputed"].as_u64().unwrap(), s["removed"].as_u64().unwrap())
}

fn assert_same_outputs(a: &Path, b: &Path) {
    for file in ARTIFACTS {
        let left = std::fs::read(a.join(file)).unwrap();
        assert!(left == std::fs::read(b.join(file)).unwrap(), "{file} differs between {} and {}", a.display(), b.display());
    }
}

/// A build with the cache disabled: the reference outputs.
fn cold_outputs(root: &Path, out: &Path) {
    let output = build(root, out, &["--no-cache", "--exclude", "pkg/bad_utf8.py"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// The arguments of most builds here: the fixture's undecodable file left out.
const ARGS: [&str; 2] = ["--exclude", "pkg/bad_utf8.py"];

/// `out` holds what a cold build of the repository (cache disabled) writes now.
fn assert_matches_cold(repo: &Repo, out: &Path) {
    let cold = tempfile::tempdir_in(repo.tmp.path()).unwrap();
    cold_outputs(&repo.root, cold.path());
    assert_same_outputs(out, cold.path());
}

/// Edit the text of a comment in `pkg/sub/deep.py`, keeping its length.
fn edit_deep_comment(root: &Path) {
    let deep = root.join("pkg/sub/deep.py");
    let text = std::fs::read_to_string(&deep).unwrap();
    std::fs::write(&deep, text.replace("a comment inside the parentheses", "an edited comment, same length!!")).unwrap();
}

#[test]
fn warm_rebuild_reuses_every_node() {
    let repo = repo("basic");
    let out = repo.out();
    build(&repo.root, &out, &ARGS);
    let first = explain_json(&repo.root, &[]);
    let (new, reused, recomputed, _) = summary(&first);
    assert!(new > 40 && reused == 0 && recomputed == 0, "{first:#}");

    let output = build(&repo.root, &out, &ARGS);
    assert!(stderr(&output).contains("recomputed (0 root cause"), "{}", stderr(&output));
    let second = explain_json(&repo.root, &[]);
    assert_eq!(summary(&second), (0, new, 0, 0), "everything reused: {second:#}");
    assert_matches_cold(&repo, &out);
}

#[test]
fn comment_edit_is_explained_leaf_by_leaf() {
    let repo = repo("basic");
    let out = repo.out();
    build(&repo.root, &out, &ARGS);
    let deep = repo.root.join("pkg/sub/deep.py");
    let old_hash = blake3::hash(&std::fs::read(&deep).unwrap()).to_hex().to_string();
    edit_deep_comment(&repo.root);
    let new_hash = blake3::hash(&std::fs::read(&deep).unwrap()).to_hex().to_string();
    build(&repo.root, &out, &ARGS);

    let report = explain_json(&repo.root, &[]);
    let causes = report["root_causes"].as_array().unwrap();
    assert_eq!(causes.len(), 1, "{report:#}");
    assert_eq!(causes[0]["reason"]["name"], "content(pkg/sub/deep.py)");
    assert_eq!(causes[0]["reason"]["old"], &old_hash[..12]);
    assert_eq!(causes[0]["reason"]["new"], &new_hash[..12]);
    assert_eq!(
        (causes[0]["nodes"].as_u64(), causes[0]["cutoff"].as_u64()),
        (Some(8), Some(7)),
        "all seven stages cut off; the file's rows hold the content hash"
    );
    let recomputed: Vec<String> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "recomputed")
        .map(|n| format!("{}({})", n["stage"].as_str().unwrap(), n["subject"].as_str().unwrap()))
        .collect();
    assert_eq!(
        recomputed,
        [
            "imports(pkg/sub/deep.py)",
            "module_docstring(pkg/sub/deep.py)",
            "module_scope(pkg/sub/deep.py)",
            "module_summary(pkg/sub/deep.py)",
            "outline(pkg/sub/deep.py)",
            // The partition of pkg re-assembles its four row tables' rows (keyed by the rows
            // keys); only the modules table's rows changed, so only it is re-encoded.
            "parquet(parquet/modules/package=pkg/part-0.parquet)",
            "parquet-input(parquet/imports/package=pkg/part-0.parquet)",
            "parquet-input(parquet/modules/package=pkg/part-0.parquet)",
            "parquet-input(parquet/symbols/package=pkg/part-0.parquet)",
            "parquet-input(parquet/tags/package=pkg/part-0.parquet)",
            "pattern_tags(pkg/sub/deep.py)",
            "rows(pkg/sub/deep.py)",
            "syntax_errors(pkg/sub/deep.py)",
            "write(codeintel.duckdb)",
            "write(modules.jsonl)",
            "write(parquet/modules/package=pkg/part-0.parquet)",
        ],
        "only modules.jsonl holds the content hash, so only it is rewritten"
    );
    let write = report["nodes"].as_array().unwrap().iter().find(|n| n["subject"] == "modules.jsonl").unwrap();
    assert_eq!(write["reasons"][0]["kind"], "cascade");
    // A partition's rows name the rows nodes they were rerun for, and its file names its rows;
    // neither is a root cause of its own.
    let node = |stage: &str| {
        report["nodes"].as_array().unwrap().iter().find(|n| n["stage"] == stage && n["subject"] == "parquet/modules/package=pkg/part-0.parquet").unwrap()
    };
    assert_eq!(node("parquet-input")["reasons"], serde_json::json!([{"kind": "upstream", "nodes": ["rows(pkg/sub/deep.py)"]}]));
    assert_eq!(
        node("parquet")["reasons"],
        serde_json::json!([{"kind": "upstream", "nodes": ["parquet-input(parquet/modules/package=pkg/part-0.parquet)"]}])
    );

    // Filters, and the text report.
    let filtered = explain_json(&repo.root, &["--stage", "outline", "pkg/sub"]);
    assert!(filtered["nodes"].as_array().unwrap().iter().all(|n| n["stage"] == "outline"));
    assert_eq!(filtered["nodes"].as_array().unwrap().len(), 2, "pkg/sub/__init__.py and pkg/sub/deep.py");
    let text = bin().args(["explain", "--root"]).arg(&repo.root).output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains(&format!("content(pkg/sub/deep.py) changed {} → {}", &old_hash[..12], &new_hash[..12])), "{text}");
    assert_matches_cold(&repo, &out);
}

#[test]
fn restored_cache_in_another_checkout_is_a_full_hit() {
    let repo = repo("basic");
    let out = repo.out();
    build(&repo.root, &out, &ARGS);
    // Another machine, another path: the tree and its cache directory copied, every mtime new.
    let elsewhere = tempfile::tempdir().unwrap();
    let checkout = elsewhere.path().join("somewhere/else");
    copy_dir(&repo.root, &checkout);
    std::thread::sleep(std::time::Duration::from_millis(20));
    for entry in walk(&checkout) {
        let file = std::fs::File::options().append(true).open(&entry).unwrap();
        file.set_modified(std::time::SystemTime::now()).unwrap();
    }
    // The outputs restored too (with the default layout they live in the tree): a full hit.
    let moved_out = elsewhere.path().join("out");
    copy_dir(&out, &moved_out);
    let output = build(&checkout, &moved_out, &ARGS);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = explain_json(&checkout, &[]);
    assert_eq!(summary(&report), (0, summary(&report).1, 0, 0), "{report:#}");
    assert!(report["nodes"].as_array().unwrap().iter().all(|n| n["status"] == "reused"), "{report:#}");
    assert_same_outputs(&out, &moved_out);

    // A fresh output directory: the cache keeps the last artifacts, so still a full hit.
    let checkout2 = elsewhere.path().join("third");
    copy_dir(&repo.root, &checkout2);
    let fresh_out = elsewhere.path().join("fresh-out");
    let output = build(&checkout2, &fresh_out, &ARGS);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = explain_json(&checkout2, &[]);
    assert!(report["nodes"].as_array().unwrap().iter().all(|n| n["stage"] == "write" || n["status"] == "reused"), "{report:#}");
    assert_same_outputs(&out, &fresh_out);

    // Neither outputs nor kept artifacts: no stage reruns; each file's rows are rendered again
    // from cached stage values, and say why.
    let checkout3 = elsewhere.path().join("fourth");
    copy_dir(&repo.root, &checkout3);
    std::fs::remove_dir_all(checkout3.join(".codeintel-cache/artifacts")).unwrap();
    let fresh_out = elsewhere.path().join("fresh-out-2");
    let output = build(&checkout3, &fresh_out, &ARGS);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = explain_json(&checkout3, &[]);
    for node in report["nodes"].as_array().unwrap() {
        match node["stage"].as_str().unwrap() {
            "write" => {}
            "rows" => {
                assert_eq!(node["status"], "recomputed", "{node}");
                assert_eq!(node["reasons"][0]["kind"], "output_missing", "{node}");
            }
            _ => assert_eq!(node["status"], "reused", "{node}"),
        }
    }
    assert_same_outputs(&out, &fresh_out);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            files.extend(walk(&entry.path()));
        } else if entry.file_type().unwrap().is_file() {
            files.push(entry.path());
        }
    }
    files
}

#[test]
fn corrupt_truncated_or_foreign_caches_are_rebuilt() {
    let repo = repo("basic");
    let out = repo.out();
    let cold = repo.tmp.path().join("cold");
    cold_outputs(&repo.root, &cold);
    let cache_file = repo.root.join(".codeintel-cache/stages.redb");

    type Damage = fn(&Path);
    let damages: [(&str, Damage); 4] = [
        ("truncated", |file| {
            let bytes = std::fs::read(file).unwrap();
            std::fs::write(file, &bytes[..bytes.len() / 3]).unwrap();
        }),
        ("flipped bytes", |file| {
            let mut bytes = std::fs::read(file).unwrap();
            let len = bytes.len();
            for i in (len / 4..len).step_by(97) {
                bytes[i] ^= 0x5a;
            }
            std::fs::write(file, bytes).unwrap();
        }),
        ("garbage", |file| std::fs::write(file, b"not a cache at all").unwrap()),
        ("foreign version", |file| {
            let db = redb::Database::create(file).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta")).unwrap();
                meta.insert("schema", b"codeintel-enrich 0.0.0 schema 0".as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }),
    ];
    for (what, damage) in damages {
        build(&repo.root, &out, &ARGS);
        damage(&cache_file);
        let output = build(&repo.root, &out, &ARGS);
        assert_eq!(output.status.code(), Some(0), "{what}: {}", stderr(&output));
        assert_same_outputs(&out, &cold);
        // And the cache works again afterwards.
        build(&repo.root, &out, &ARGS);
        let (_, _, recomputed, _) = summary(&explain_json(&repo.root, &[]));
        assert_eq!(recomputed, 0, "{what}: the rebuilt cache is used");
    }
    // `cache verify` passes on a healthy cache; `clear` empties it.
    let verify = bin().args(["cache", "verify", "--root"]).arg(&repo.root).output().unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
    assert!(String::from_utf8_lossy(&verify.stdout).contains(", 0 corrupt"));
    let gc = bin().args(["cache", "gc", "--root"]).arg(&repo.root).output().unwrap();
    assert_eq!(gc.status.code(), Some(0), "{}", stderr(&gc));
    let stats = bin().args(["cache", "stats", "--root"]).arg(&repo.root).output().unwrap();
    assert!(String::from_utf8_lossy(&stats.stdout).contains("hit rate 100.0%"), "{}", String::from_utf8_lossy(&stats.stdout));
    let clear = bin().args(["cache", "clear", "--root"]).arg(&repo.root).output().unwrap();
    assert_eq!(clear.status.code(), Some(0));
    assert!(!cache_file.exists());
    build(&repo.root, &out, &ARGS);
    let (new, ..) = summary(&explain_json(&repo.root, &[]));
    assert!(new > 0, "after clear every node is new");
}

#[test]
fn concurrent_builds_wait_for_each_other() {
    let repo = repo("basic");
    let out = repo.out();
    let cold = repo.tmp.path().join("cold");
    cold_outputs(&repo.root, &cold);
    let spawn = || {
        bin()
            .arg("build")
            .arg("--root")
            .arg(&repo.root)
            .arg("--out")
            .arg(&out)
            .args(["--exclude", "pkg/bad_utf8.py", "-q"])
            .spawn()
            .unwrap()
    };
    let mut children: Vec<_> = (0..4).map(|_| spawn()).collect();
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    assert_same_outputs(&out, &cold);
    let verify = bin().args(["cache", "verify", "--root"]).arg(&repo.root).output().unwrap();
    assert!(String::from_utf8_lossy(&verify.stdout).contains(", 0 corrupt"));
}

#[test]
fn deleted_file_nodes_are_removed() {
    let repo = repo("basic");
    let out = repo.out();
    build(&repo.root, &out, &ARGS);
    std::fs::remove_file(repo.root.join("pkg/latin1.py")).unwrap();
    build(&repo.root, &out, &ARGS);
    let report = explain_json(&repo.root, &["pkg/latin1.py"]);
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 10, "seven per-file stages, the exports, the tags and the rows: {report:#}");
    assert!(nodes.iter().all(|n| n["status"] == "removed"), "{report:#}");
}

#[test]
fn plan_predicts_without_writing() {
    let repo = repo("basic");
    let out = repo.out();
    build(&repo.root, &out, &ARGS);
    let cache_dir = repo.root.join(".codeintel-cache");
    let run_log_before = std::fs::read(cache_dir.join("last-run.json")).unwrap();
    let modules_before = std::fs::read(out.join("modules.jsonl")).unwrap();
    std::fs::write(repo.root.join("pkg/models.py"), "NEW = 1\n").unwrap();

    let report = explain_json(&repo.root, &["--plan", "--exclude", "pkg/bad_utf8.py", "--out"].iter().copied().chain([out.to_str().unwrap()]).collect::<Vec<_>>());
    let recomputed: Vec<String> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "recomputed")
        .map(|n| format!("{}({})", n["stage"].as_str().unwrap(), n["subject"].as_str().unwrap()))
        .collect();
    assert!(recomputed.contains(&"outline(pkg/models.py)".to_string()), "{report:#}");
    assert!(recomputed.contains(&"write(symbols.jsonl)".to_string()), "{report:#}");
    assert!(
        recomputed
            .iter()
            .filter(|n| !n.starts_with("write(") && !n.starts_with("parquet") && !n.starts_with("exports("))
            .all(|n| n.ends_with("(pkg/models.py)")),
        "{recomputed:?}"
    );
    // models.py's scope and exports changed; the other exports recomputed are those that read
    // its exports (its loads changed too, but no load cycle or submodule set with them).
    let exports: Vec<&Value> =
        report["nodes"].as_array().unwrap().iter().filter(|n| n["stage"] == "exports" && n["status"] == "recomputed").collect();
    assert!(exports.iter().any(|n| n["subject"] == "pkg/models.py" && n["cutoff"] == false), "{exports:#?}");
    for node in exports.iter().filter(|n| n["subject"] != "pkg/models.py") {
        assert_eq!(node["reasons"], serde_json::json!([{"kind": "upstream", "nodes": ["exports(pkg/models.py)"]}]), "{node}");
    }
    // The dataset's partition of pkg (its four row tables) re-encodes, nothing else of it.
    let parquet: Vec<&String> = recomputed.iter().filter(|n| n.starts_with("parquet(")).collect();
    assert_eq!(parquet.len(), 4, "{parquet:?}");
    assert!(parquet.iter().all(|n| n.contains("/package=pkg/")), "{parquet:?}");
    // Nothing was written: not the run log, not the outputs, not the cache entries (the real
    // build afterwards still has to recompute).
    assert!(std::fs::read(cache_dir.join("last-run.json")).unwrap() == run_log_before, "plan mode wrote the run log");
    assert_eq!(std::fs::read(out.join("modules.jsonl")).unwrap(), modules_before);
    build(&repo.root, &out, &ARGS);
    let after = explain_json(&repo.root, &["--stage", "outline", "pkg/models.py"]);
    assert_eq!(after["nodes"][0]["status"], "recomputed", "{after:#}");
}

/// A generated repository big enough that a build takes a while.
fn generated_repo(dir: &Path, packages: usize, modules: usize) {
    for p in 0..packages {
        let package = dir.join(format!("pkg{p}"));
        std::fs::create_dir_all(&package).unwrap();
        std::fs::write(package.join("__init__.py"), "from .m0 import *\n__all__ = ['Model0']\n").unwrap();
        for m in 0..modules {
            let mut text = format!("\"\"\"Module {m}.\"\"\"\nimport os\nfrom . import m{}\n\n", (m + 1) % modules);
            for c in 0..5 {
                text.push_str(&format!(
                    "class Model{c}:\n    \"\"\"Doc {c}.\"\"\"\n\n    def method(self, a: int, *args, b=1, **kw) -> int:\n        return a + {c}\n\n"
                ));
            }
            std::fs::write(package.join(format!("m{m}.py")), text).unwrap();
        }
    }
}

fn assert_complete_jsonl(out: &Path) {
    for file in ["modules.jsonl", "symbols.jsonl", "imports.jsonl"] {
        let Ok(text) = std::fs::read_to_string(out.join(file)) else { continue };
        assert!(text.is_empty() || text.ends_with('\n'), "{file} is cut short");
        for line in text.lines() {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{file}: half-written line: {e}"));
        }
    }
}

#[test]
fn killed_builds_leave_usable_outputs_and_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    generated_repo(&root, 20, 60);
    let out = tmp.path().join("out");
    let cold = tmp.path().join("cold");
    let output = build(&root, &cold, &["--no-cache"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    for delay_ms in [50, 150, 300, 600, 1000] {
        let mut child = bin().arg("build").arg("--root").arg(&root).arg("--out").arg(&out).arg("-q").spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
        assert_complete_jsonl(&out);
        // Touch one file so the next build has real work.
        std::fs::write(root.join("pkg0/m0.py"), format!("VALUE = {delay_ms}\n")).unwrap();
    }
    // A link a killed build left half made among the cache's kept artifacts.
    let planted = root.join(".codeintel-cache/artifacts/.tmp-link-1-0");
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::write(&planted, b"half").unwrap();
    let output = build(&root, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!planted.exists(), "temporary files in the kept artifacts are cleaned up");
    let output = build(&root, &cold, &["--no-cache"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_same_outputs(&out, &cold);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new(), "temporary files of killed builds are cleaned up");
    let verify = bin().args(["cache", "verify", "--root"]).arg(&root).output().unwrap();
    assert!(String::from_utf8_lossy(&verify.stdout).contains(", 0 corrupt"), "{}", String::from_utf8_lossy(&verify.stdout));
}

/// A build stamps the output directory when it finishes; the next build walks it for
/// temporary files only when the stamp is missing (the last build was killed or failed).
#[test]
fn temporaries_are_looked_for_after_an_unfinished_build() {
    let repo = repo("basic");
    let out = repo.out();
    let built = || {
        let output = build(&repo.root, &out, &ARGS);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    };
    built();
    let stamp = out.join(".codeintel-enrich-finished");
    assert!(stamp.exists());
    let planted = out.join("graphs/.tmp-planted");
    std::fs::write(&planted, b"half").unwrap();
    built();
    assert!(planted.exists(), "after a finished build nothing is looked for");
    std::fs::remove_file(&stamp).unwrap();
    built();
    assert!(!planted.exists(), "after an unfinished build its temporaries are removed");
    assert!(stamp.exists());
}

#[test]
fn whole_build_shortcut_checks_the_artifacts() {
    let repo = repo("basic");
    let out = repo.out();
    build(&repo.root, &out, &ARGS);
    let symbols = std::fs::read(out.join("symbols.jsonl")).unwrap();
    // Unchanged inputs: the second build takes the shortcut and reports the same summary.
    let second = build(&repo.root, &out, &ARGS);
    assert!(stderr(&second).contains("9 modules, 27 symbols"), "{}", stderr(&second));
    assert!(stderr(&second).contains("1 module with syntax errors (pkg/broken.py:8)"), "problems are still reported: {}", stderr(&second));
    let shortcut = explain_json(&repo.root, &["--timings"]);
    let phases: Vec<&str> = shortcut["timings"].as_array().unwrap().iter().map(|t| t[0].as_str().unwrap()).collect();
    assert_eq!(phases, ["discover", "load", "verify"], "the shortcut was taken: {shortcut:#}");
    assert_eq!(summary(&shortcut).2, 0);
    // A damaged or deleted artifact is noticed and written again.
    std::fs::write(out.join("symbols.jsonl"), b"tampered\n").unwrap();
    std::fs::remove_file(out.join("graphs/cycles.json")).unwrap();
    build(&repo.root, &out, &ARGS);
    assert_eq!(std::fs::read(out.join("symbols.jsonl")).unwrap(), symbols);
    assert!(out.join("graphs/cycles.json").exists());
    // A new problem (here: a file over the size limit) changes the build key.
    let output = build(&repo.root, &out, &["--exclude", "pkg/bad_utf8.py", "--max-file-bytes", "4096"]);
    assert!(stderr(&output).contains("8 modules"), "{}", stderr(&output));
    let cold = repo.tmp.path().join("cold");
    build(&repo.root, &cold, &["--no-cache", "--exclude", "pkg/bad_utf8.py", "--max-file-bytes", "4096"]);
    assert_same_outputs(&out, &cold);
}

/// Set every file under `dir` to an mtime an hour ago (older than any racy window).
fn age_files(dir: &Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in walk(dir) {
        let file = std::fs::File::options().append(true).open(&entry).unwrap();
        file.set_modified(old).unwrap();
    }
}

fn files_read(root: &Path) -> (u64, u64) {
    let report = explain_json(root, &[]);
    let pair = report["files_read"].as_array().unwrap_or_else(|| panic!("{report:#}"));
    (pair[0].as_u64().unwrap(), pair[1].as_u64().unwrap())
}

#[test]
fn stat_fast_path_reads_only_changed_files() {
    let repo = repo("basic");
    let out = repo.out();
    age_files(&repo.root);
    build(&repo.root, &out, &ARGS);
    let (read, total) = files_read(&repo.root);
    assert_eq!(read, total, "a first build reads every file");
    build(&repo.root, &out, &ARGS);
    assert_eq!(files_read(&repo.root), (0, total), "old, unchanged stats: nothing is read");
    // Without the outputs every file's rows are rendered again: from cached stage values, and
    // each file's text (its line count) read on demand — the outputs equal a cold build's.
    std::fs::remove_dir_all(&out).unwrap();
    build(&repo.root, &out, &ARGS);
    assert_eq!(files_read(&repo.root), (0, total), "texts read on demand are not loads");
    assert_matches_cold(&repo, &out);

    // An edit changes the stat: that file alone is read, and its change is seen.
    edit_deep_comment(&repo.root);
    build(&repo.root, &out, &ARGS);
    assert_eq!(files_read(&repo.root), (1, total));
    assert_matches_cold(&repo, &out);
    // Its new mtime is within the racy window of the stat just recorded: read once more.
    build(&repo.root, &out, &ARGS);
    assert_eq!(files_read(&repo.root), (1, total), "a racy entry is not trusted");
}

#[test]
fn config_change_removes_only_the_excluded_files_nodes() {
    let repo = repo("basic");
    let out = repo.out();
    build(&repo.root, &out, &["--exclude", "pkg/bad_utf8.py"]);
    let args = ["--exclude", "pkg/bad_utf8.py", "--max-file-bytes", "300"];
    let small: Vec<String> = walk(&repo.root.join("pkg"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "py") && std::fs::metadata(p).unwrap().len() > 300)
        .map(|p| p.strip_prefix(&repo.root).unwrap().to_string_lossy().replace('\\', "/"))
        .filter(|p| p != "pkg/bad_utf8.py")
        .collect();
    assert!(!small.is_empty(), "the fixture has files over 300 bytes");
    let output = build(&repo.root, &out, &args);
    assert!(stderr(&output).contains("oversized files skipped"), "{}", stderr(&output));
    assert!(read(&out, "diagnostics.jsonl").contains("--max-file-bytes 300"));
    let report = explain_json(&repo.root, &[]);
    for node in report["nodes"].as_array().unwrap() {
        let subject = node["subject"].as_str().unwrap();
        match node["status"].as_str().unwrap() {
            "removed" => assert!(small.iter().any(|s| s == subject), "{node}"),
            "recomputed" | "new" => {
                // Only what shows the skipped files: the rows (and tags: fan-in/out changed) of
                // files whose imports of them no longer resolve, and the artifacts; and the
                // exports of modules that asked the index about them (a star import of one),
                // of their package (its submodules) and of their readers.
                assert!(["exports", "rows", "tags", "write", "parquet", "parquet-input"].contains(&node["stage"].as_str().unwrap()), "{node}");
                if node["stage"] == "exports" {
                    let reason = node["reasons"][0]["name"].as_str().unwrap();
                    assert!(["index(", "loads(", "reads("].iter().any(|p| reason.starts_with(p)), "{node}");
                }
            }
            _ => assert_eq!(node["status"], "reused"),
        }
    }
    assert!(report["nodes"].as_array().unwrap().iter().any(|n| n["status"] == "removed"));
    let cold = repo.tmp.path().join("cold");
    let output = bin().arg("build").arg("--no-cache").arg("--root").arg(&repo.root).arg("--out").arg(&cold).args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_same_outputs(&out, &cold);
}

/// A sequence of edits, each rebuilt with the cache (in a new process) and compared byte for
/// byte with a cold build: edits inside the project firewall (one file's rows) and across it
/// (exports, import edges, new and deleted files).
#[test]
fn edits_across_processes_match_cold_builds() {
    let repo = repo("basic");
    let out = repo.out();
    build(&repo.root, &out, &ARGS);
    let edit = |path: &str, change: &dyn Fn(String) -> String| {
        let file = repo.root.join(path);
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        std::fs::write(&file, change(text)).unwrap();
    };
    type Step<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let steps: Vec<Step> = vec![
        ("blank line", Box::new(|| edit("pkg/models.py", &|t| t.replacen("import functools\n", "import functools\n\n", 1)))),
        ("new public name", Box::new(|| edit("pkg/models.py", &|t| t + "\n\ndef brand_new():\n    pass\n"))),
        ("new import edge", Box::new(|| edit("pkg/latin1.py", &|t| t + "\nfrom pkg.sub import deep\n"))),
        ("new file", Box::new(|| edit("pkg/extra.py", &|_| "from pkg.models import *\nimport pkg.latin1\n".into()))),
        ("star import changes", Box::new(|| edit("pkg/models.py", &|t| t + "\n__all__ = ['plain', 'brand_new']\n"))),
        ("deleted file", Box::new(|| std::fs::remove_file(repo.root.join("pkg/latin1.py")).unwrap())),
        ("function body", Box::new(|| edit("pkg/sub/deep.py", &|t| t + "\ndef later():\n    return 1\n"))),
    ];
    for (step, (name, apply)) in steps.iter().enumerate() {
        apply();
        let output = build(&repo.root, &out, &ARGS);
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
        let cold = repo.tmp.path().join(format!("cold-{step}"));
        cold_outputs(&repo.root, &cold);
        for file in ARTIFACTS {
            let warm = std::fs::read(out.join(file)).unwrap();
            assert!(warm == std::fs::read(cold.join(file)).unwrap(), "after '{name}': {file} differs from a cold build");
        }
    }
}

/// Row artifacts and syntax trees are streamed into temporary files and renamed into place:
/// they get an ordinary output's mode (not a temporary file's 0600), none of the temporaries
/// stays behind, a row artifact whose bytes an edit leaves equal is not replaced (a new file
/// without imports: `imports.jsonl` stays the same file), and the outputs equal a cold
/// build's.
#[test]
fn staged_artifacts_are_ordinary_files_and_equal_ones_stay_in_place() {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let repo = repo("basic");
    let out = repo.out();
    let args = [&ARGS[..], &["--emit-ast"]].concat();
    let built = |step: &str| {
        let output = build(&repo.root, &out, &args);
        assert_eq!(output.status.code(), Some(0), "{step}: {}", stderr(&output));
    };
    built("cold");
    let file_id = |name: &str| {
        let meta = std::fs::metadata(out.join(name)).unwrap();
        (meta.ino(), meta.mtime(), meta.mtime_nsec())
    };
    let (modules, imports) = (file_id("modules.jsonl"), file_id("imports.jsonl"));
    std::fs::write(repo.root.join("pkg/no_imports.py"), "def lonely():\n    return 1\n").unwrap();
    built("new file");
    assert_ne!(file_id("modules.jsonl"), modules, "modules.jsonl has the new file's row");
    assert_eq!(file_id("imports.jsonl"), imports, "imports.jsonl has the same bytes: left in place");
    // What this process's umask makes of an output's 0644.
    let probe = repo.tmp.path().join("mode-probe");
    std::fs::OpenOptions::new().write(true).create(true).mode(0o644).open(&probe).unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().mode() & 0o777;
    for name in ["modules.jsonl", "symbols.jsonl", "ast/pkg/no_imports.py.json"] {
        assert_eq!(mode(&out.join(name)), mode(&probe), "{name}");
    }
    let temporaries: Vec<_> = walk(&out).into_iter().filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp-")).collect();
    assert!(temporaries.is_empty(), "{temporaries:?}");
    assert_matches_cold(&repo, &out);
    std::fs::remove_file(repo.root.join("pkg/no_imports.py")).unwrap();
    built("deleted file");
    assert_eq!(file_id("imports.jsonl"), imports);
    assert_matches_cold(&repo, &out);
    // Without the cache every row artifact is staged; those with the bytes already there stay.
    let ids = || ["modules.jsonl", "symbols.jsonl", "imports.jsonl"].map(file_id);
    let before = ids();
    let output = build(&repo.root, &out, &[&args[..], &["--no-cache"]].concat());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(ids(), before, "equal row artifacts are left in place");
}

/// The `exports` nodes a build recomputed, as `(subject, cut off)`, and their reasons.
fn exports_recomputed(report: &Value) -> (Vec<(String, bool)>, Vec<String>) {
    let nodes: Vec<&Value> =
        report["nodes"].as_array().unwrap().iter().filter(|n| n["stage"] == "exports" && (n["status"] == "recomputed" || n["status"] == "new")).collect();
    let recomputed = nodes.iter().map(|n| (n["subject"].as_str().unwrap().to_string(), n["cutoff"] == true)).collect();
    let mut reasons: Vec<String> = nodes
        .iter()
        .flat_map(|n| n["reasons"].as_array().unwrap())
        .map(|r| match r["kind"].as_str().unwrap() {
            "input" => r["name"].as_str().unwrap().to_string(),
            "upstream" => format!("upstream {}", r["nodes"]),
            kind => kind.to_string(),
        })
        .collect();
    reasons.sort();
    reasons.dedup();
    (recomputed, reasons)
}

/// Nine kinds of edit, each built in a new process with the cache: exactly the `exports`
/// nodes whose inputs changed are recomputed (behind an unchanged layout and import graph:
/// the edited file and, transitively, the modules that read a changed module's exports),
/// with reasons naming what changed, and the outputs equal a cold build's.
#[test]
fn edit_kinds_recompute_only_the_exports_they_reach() {
    let repo = repo("edits");
    let out = repo.out();
    let output = build(&repo.root, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let edit = |path: &str, change: &dyn Fn(String) -> String| {
        let file = repo.root.join(path);
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, change(text)).unwrap();
    };
    // (edit, apply, the exports nodes recomputed with whether each was cut off — its face,
    // what others read of it, unchanged — and a reason every one of them must give).
    type Step<'a> = (&'a str, Box<dyn Fn() + 'a>, Vec<(&'a str, bool)>, Option<&'a str>);
    let steps: Vec<Step> = vec![
        ("comment", Box::new(|| edit("hub/core.py", &|t| t + "# a comment\n")), vec![], None),
        // A package's comment: behind the firewall its closure walk reads the recorded loads of
        // the modules it reaches from the cache, a file at a time; nothing changes.
        ("package comment", Box::new(|| edit("hub/__init__.py", &|t| t + "# a comment\n")), vec![], None),
        ("blank line", Box::new(|| edit("hub/core.py", &|t| format!("\n{t}"))), vec![], None),
        ("function body", Box::new(|| edit("hub/core.py", &|t| t.replace("return 1", "return 1 + 0"))), vec![], None),
        // core's exports change; the hub star-imports core and app.use the hub, so theirs
        // change too; extra and cli trace names through core and app.use (cut off); nothing
        // reads cli, and leaf reads nothing.
        (
            "new public name",
            Box::new(|| edit("hub/core.py", &|t| t + "EPSILON = 5\n")),
            vec![("app/use.py", false), ("hub/__init__.py", false), ("hub/core.py", false), ("hub/extra.py", true), ("tools/cli.py", true)],
            None,
        ),
        // A private name is a binding (traced re-exports read bindings) but no star import
        // brings it: everything after core is cut off.
        (
            "new private name",
            Box::new(|| edit("hub/core.py", &|t| t + "_hidden = 6\n")),
            vec![("app/use.py", true), ("hub/__init__.py", true), ("hub/core.py", false), ("hub/extra.py", true), ("tools/cli.py", true)],
            None,
        ),
        // extra drops `delta` from `__all__`: the hub and app.use lose it; cli is cut off.
        (
            "__all__",
            Box::new(|| edit("hub/extra.py", &|t| t.replace("[\"gamma\", \"delta\"]", "[\"gamma\"]"))),
            vec![("app/use.py", false), ("hub/__init__.py", false), ("hub/extra.py", false), ("tools/cli.py", true)],
            Some("upstream [\"exports(hub/extra.py)\"]"),
        ),
        // A new import edge: the graph is rebuilt from the recorded facts. hub.extra's fan-in
        // grows (its rows change, its exports' inputs do not); no load cycle or package
        // closure reaches leaf.lonely; it binds `hub`, read by no one.
        (
            "new import",
            Box::new(|| edit("leaf/lonely.py", &|t| format!("import hub.extra\n{t}"))),
            vec![("leaf/lonely.py", false)],
            Some("scope(leaf/lonely.py)"),
        ),
        // An import that closes a load cycle: hub.core → tools.cli → app.use → hub → hub.core.
        // The cycle's five modules change companions (a star import from a module of one's
        // own cycle is maybe); core binds `tools`, which the hub and app.use star-import;
        // extra and cli, without star imports, are cut off.
        (
            "import closing a cycle",
            Box::new(|| edit("hub/core.py", &|t| format!("import tools.cli\n{t}"))),
            vec![("app/use.py", false), ("hub/__init__.py", false), ("hub/core.py", false), ("hub/extra.py", true), ("tools/cli.py", true)],
            Some("loads(hub/extra.py)"),
        ),
        // A new or deleted module changes the layout: the layout path keys the files that
        // asked the index about its name (none here) and its package, whose exports change
        // (a submodule is a maybe attribute of it); nobody reads leaf's exports.
        (
            "new file",
            Box::new(|| edit("leaf/fresh.py", &|_| "from hub.core import *\n".into())),
            vec![("leaf/__init__.py", false), ("leaf/fresh.py", false)],
            Some("loads(leaf/__init__.py)"),
        ),
        ("deleted file", Box::new(|| std::fs::remove_file(repo.root.join("leaf/fresh.py")).unwrap()), vec![("leaf/__init__.py", false)], None),
        // The same with a module that imports nothing: only the package above it can tell.
        ("new file importing nothing", Box::new(|| edit("leaf/quiet.py", &|_| "QUIET = 1\n".into())), vec![("leaf/__init__.py", false), ("leaf/quiet.py", false)], None),
        ("deleted file importing nothing", Box::new(|| std::fs::remove_file(repo.root.join("leaf/quiet.py")).unwrap()), vec![("leaf/__init__.py", false)], None),
        // A star import of a module that does not exist yet: cli's exports are not known.
        (
            "star import of a missing module",
            Box::new(|| edit("tools/cli.py", &|t| format!("from hub.later import *\n{t}"))),
            vec![("tools/cli.py", false)],
            Some("scope(tools/cli.py)"),
        ),
        // The module appears: cli asked the index about `hub.later` (its exports now know
        // LATER); the hub gains a maybe submodule `later`, and app.use, which star-imports
        // the hub, with it; cli also traces through app.use (already keyed). hub.later joins
        // the load cycle of the step before (cli loads it, and it loads the hub): the
        // companions of core and extra change, their exports do not.
        (
            "new file an import was missing",
            Box::new(|| edit("hub/later.py", &|_| "LATER = 1\n".into())),
            vec![
                ("app/use.py", false),
                ("hub/__init__.py", false),
                ("hub/core.py", true),
                ("hub/extra.py", true),
                ("hub/later.py", false),
                ("tools/cli.py", false),
            ],
            Some("index(tools/cli.py)"),
        ),
        (
            "deleted file an import needs",
            Box::new(|| std::fs::remove_file(repo.root.join("hub/later.py")).unwrap()),
            vec![("app/use.py", false), ("hub/__init__.py", false), ("hub/core.py", true), ("hub/extra.py", true), ("tools/cli.py", false)],
            Some("index(tools/cli.py)"),
        ),
        // A new top-level namespace package nobody imports: only its module.
        ("new top-level namespace", Box::new(|| edit("newtop/mod.py", &|_| "import hub\n".into())), vec![("newtop/mod.py", false)], None),
    ];
    for (step, (name, apply, expected, reason)) in steps.iter().enumerate() {
        apply();
        let output = build(&repo.root, &out, &[]);
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
        let report = explain_json(&repo.root, &[]);
        let (recomputed, reasons) = exports_recomputed(&report);
        let mut expected: Vec<(String, bool)> = expected.iter().map(|(p, cut)| (p.to_string(), *cut)).collect();
        expected.sort();
        assert_eq!(recomputed, expected, "after '{name}': {reasons:?}");
        if let Some(reason) = reason {
            assert!(reasons.iter().any(|r| r == reason), "after '{name}': {reasons:?}");
        }
        let cold = repo.tmp.path().join(format!("cold-{step}"));
        let output = bin().arg("build").arg("--no-cache").arg("--root").arg(&repo.root).arg("--out").arg(&cold).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        for file in ARTIFACTS {
            let warm = std::fs::read(out.join(file)).unwrap();
            assert!(warm == std::fs::read(cold.join(file)).unwrap(), "after '{name}': {file} differs from a cold build");
        }
    }
}
