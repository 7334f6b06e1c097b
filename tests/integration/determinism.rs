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
    for file in ARTIFACTS {
        let text = std::fs::read_to_string(one.join(file)).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'));
        assert!(!text.contains('\r') && !text.contains(" \n"), "{file}: stray line ends or trailing spaces");
        assert!(!text.contains(first.tmp.path().to_str().unwrap()), "{file} holds an absolute path");
    }
}
