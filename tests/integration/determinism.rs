//! Outputs are byte-identical across thread counts, repeated runs and checkout paths.

use std::path::Path;

use crate::support::{build, repo_at};

const ARTIFACTS: [&str; 4] = ["modules.jsonl", "symbols.jsonl", "imports.jsonl", "diagnostics.jsonl"];

fn assert_same_outputs(a: &Path, b: &Path) {
    for file in ARTIFACTS {
        let left = std::fs::read(a.join(file)).unwrap();
        let right = std::fs::read(b.join(file)).unwrap();
        assert!(left == right, "{file} differs between {} and {}", a.display(), b.display());
    }
}

#[test]
fn jobs_runs_and_paths_do_not_change_bytes() {
    let first = repo_at("basic", "checkout-one");
    let second = repo_at("basic", "another-checkout");
    let args = ["--follow-links", "--max-file-bytes", "4096"];
    let one = first.tmp.path().join("jobs1");
    let two = first.tmp.path().join("jobs2");
    let moved = second.tmp.path().join("out");
    build(&first.root, &one, &[&args[..], &["--jobs", "1"]].concat());
    build(&first.root, &two, &[&args[..], &["--jobs", "2"]].concat());
    build(&second.root, &moved, &[&args[..], &["--jobs", "2"]].concat());
    assert_same_outputs(&one, &two);
    assert_same_outputs(&one, &moved);
    // A second run over an existing output directory gives the same bytes again.
    build(&first.root, &one, &[&args[..], &["--jobs", "2"]].concat());
    assert_same_outputs(&one, &two);
    assert_keys_sorted(&one);
    for file in ARTIFACTS {
        let text = std::fs::read_to_string(one.join(file)).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'));
        assert!(!text.contains('\r') && !text.contains(" \n"), "{file}: stray line ends or trailing spaces");
        assert!(!text.contains(first.tmp.path().to_str().unwrap()), "{file} holds an absolute path");
    }
}

/// Every object on every line has its keys in sorted order (checked by Python's `json`, which
/// keeps the order of the text; serde_json's `Value` would hide it).
fn assert_keys_sorted(out: &Path) {
    let script = r#"
import json, sys
def check(value, where):
    if isinstance(value, dict):
        keys = list(value)
        assert keys == sorted(keys), f"{where}: keys {keys}"
        for v in value.values(): check(v, where)
    elif isinstance(value, list):
        for v in value: check(v, where)
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            check(json.loads(line), f"{path}:{n}")
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(ARTIFACTS.iter().map(|f| out.join(f)))
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
