//! The external-input readers (`src/inputs/{coverage,pyrefly,owners,history}.rs`): each against
//! its fixture, with figures checked by an independent Python oracle reading the same file,
//! and against malformed input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use codeintel_enrich::inputs::coverage::{self, CoverageReport};
use codeintel_enrich::inputs::history::{self, History};
use codeintel_enrich::inputs::owners;
use codeintel_enrich::inputs::pyrefly::{self, PyreflyFile, PyreflyReport};

use crate::support::{copy_dir, fixture_dir};

/// Where `fixtures/*/make_fixtures.sh` ran the tools: the absolute prefix in the reports.
const COVERAGE_WORK: &str = "/tmp/codeintel-enrich-fixtures/coverage";

fn oracle(fixture: &str, report: &Path, repo_root: &Path) -> serde_json::Value {
    let output = Command::new("python3")
        .arg(fixture_dir(fixture).join("oracle.py"))
        .arg(report)
        .arg(repo_root)
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "oracle failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A copy of a fixture in a temporary directory, with `report` rewritten so that the absolute
/// prefix the generator ran in becomes the copy (as if the tool had run there).
fn relocated(fixture: &str, work: &str, report: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    copy_dir(&fixture_dir(fixture), &root);
    let root = root.canonicalize().unwrap();
    let text = std::fs::read_to_string(fixture_dir(fixture).join(report)).unwrap();
    let path = root.join(report);
    std::fs::write(&path, text.replace(work, root.to_str().unwrap())).unwrap();
    (tmp, root, path)
}

fn assert_coverage_matches(report: &CoverageReport, expected: &serde_json::Value) {
    let files = expected["files"].as_object().unwrap();
    let keys: Vec<&String> = report.files.keys().collect();
    assert_eq!(keys, files.keys().collect::<Vec<_>>(), "the same files");
    for (path, figures) in files {
        let file = &report.files[path];
        let close = |a: f64, b: &serde_json::Value| (a - b.as_f64().unwrap()).abs() < 1e-12;
        assert!(close(file.line_rate, &figures["line_rate"]), "{path}: line_rate {} vs {}", file.line_rate, figures["line_rate"]);
        match file.branch_rate {
            Some(rate) => assert!(close(rate, &figures["branch_rate"]), "{path}: branch_rate {rate} vs {}", figures["branch_rate"]),
            None => assert!(figures["branch_rate"].is_null(), "{path}: branch_rate"),
        }
        assert_eq!(u64::from(file.lines_valid), figures["lines_valid"].as_u64().unwrap(), "{path}");
        assert_eq!(u64::from(file.lines_covered), figures["lines_covered"].as_u64().unwrap(), "{path}");
        assert_eq!(u64::from(file.branches_valid), figures["branches_valid"].as_u64().unwrap(), "{path}");
        assert_eq!(u64::from(file.branches_covered), figures["branches_covered"].as_u64().unwrap(), "{path}");
    }
    let unmapped: Vec<String> = expected["unmapped"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(report.unmapped, unmapped);
}

#[test]
fn coverage_reports_match_the_oracle() {
    for name in ["coverage.xml", "coverage-sources.xml", "coverage-relative.xml", "coverage-empty-source.xml"] {
        let (_tmp, root, path) = relocated("coverage", COVERAGE_WORK, name);
        let report = coverage::load(&path, &root).unwrap();
        assert_coverage_matches(&report, &oracle("coverage", &path, &root));
        // Figures known from the fixture itself: calc/ops.py has 24 statements, 5 never run,
        // and 14 branch destinations, 5 never taken.
        let ops = &report.files["calc/ops.py"];
        assert_eq!((ops.lines_valid, ops.lines_covered, ops.branches_valid, ops.branches_covered), (24, 19, 14, 9), "{name}");
        assert_eq!(report.files["calc/__init__.py"].branch_rate, None, "{name}: no branch, no rate");
        assert_eq!(report.files["tools/report.py"].lines_covered, 4, "{name}");
        assert!(report.unmapped.is_empty(), "{name}: {:?}", report.unmapped);
    }
}

#[test]
fn coverage_report_from_another_checkout() {
    // The committed report as it is: its absolute <source> is no prefix of this root, so the
    // relative filenames are taken as repo-relative.
    let path = fixture_dir("coverage").join("coverage.xml");
    let root = fixture_dir("coverage");
    let report = coverage::load(&path, &root).unwrap();
    assert_coverage_matches(&report, &oracle("coverage", &path, &root));
    assert!(report.files.contains_key("tests/test_ops.py"));
    // The root it was made in, spelled as the report spells it (nothing needs to exist there).
    let report = coverage::load(&path, Path::new(COVERAGE_WORK)).unwrap();
    assert_eq!(report.files.len(), 5);
}

#[test]
fn coverage_unmapped_and_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::write(root.join("pkg/b.py"), "").unwrap();
    let xml = format!(
        r#"<?xml version="1.0" ?>
<coverage version="7.17.5" line-rate="1" branch-rate="1">
  <sources><source>{root}/src</source><source>{root}</source><source>/elsewhere</source></sources>
  <packages><package name="p"><classes>
    <class name="a" filename="a.py" line-rate="1" branch-rate="1"><methods><method name="m"><lines><line number="1" hits="5"/></lines></method></methods>
      <lines><line number="1" hits="0"/><line number="2" hits="3" branch="true" condition-coverage="50% (1/2)"/></lines></class>
    <class name="a2" filename="{root}/src/a.py" line-rate="0"><lines><line number="1" hits="1"/><line number="2" hits="0" branch="true" condition-coverage="0% (0/2)"/><line number="3" hits="0"/></lines></class>
    <class name="b" filename="pkg/b.py"><lines/></class>
    <class name="site" filename="/usr/lib/python3/site.py"><lines><line number="1" hits="1"/></lines></class>
    <class name="up" filename="../../outside.py"><lines><line number="1" hits="1"/></lines></class>
  </classes></package></packages>
</coverage>
"#,
        root = root.display()
    );
    let path = root.join("coverage.xml");
    std::fs::write(&path, xml).unwrap();
    let report = coverage::load(&path, &root).unwrap();
    assert_coverage_matches(&report, &oracle("coverage", &path, &root));
    // `a.py` under the first root (no file exists anywhere: the first root wins), merged line
    // by line with the absolute spelling; the <methods> lines do not count.
    let a = &report.files["src/a.py"];
    assert_eq!((a.lines_valid, a.lines_covered, a.branches_valid, a.branches_covered), (3, 2, 2, 1));
    // `pkg/b.py` exists under the second root only: the existing file wins over src/pkg/b.py.
    assert_eq!(report.files["pkg/b.py"].lines_valid, 0);
    assert_eq!(report.files["pkg/b.py"].line_rate, 1.0);
    assert_eq!(report.unmapped, vec!["../../outside.py".to_string(), "/usr/lib/python3/site.py".to_string()]);
}

fn coverage_error(xml: &str) -> String {
    let err = coverage::parse(Path::new("cov.xml"), xml.as_bytes(), Path::new("/repo")).unwrap_err().to_string();
    assert!(err.starts_with("cov.xml:"), "{err}");
    err
}

#[test]
fn coverage_malformed() {
    let good = std::fs::read_to_string(fixture_dir("coverage").join("coverage.xml")).unwrap();
    // Truncated: the open root is named, with where it opened.
    let err = coverage_error(&good[..good.len() / 2]);
    assert!(err.contains("not closed") || err.contains("invalid XML"), "{err}");
    // Not Cobertura.
    let err = coverage_error("<?xml version=\"1.0\"?>\n<html><body/></html>\n");
    assert_eq!(err, "cov.xml:2:1: html: not a Cobertura report: the root element is <html>, expected <coverage>");
    let err = coverage_error("<coverage>\n <packages><package><classes>\n  <class name=\"x\"/>");
    assert_eq!(err, "cov.xml:3:3: class: missing attribute filename: not a Cobertura report");
    let err = coverage_error("<coverage><packages><package><classes><class filename=\"a.py\"><lines>\n<line number=\"x\" hits=\"1\"/>");
    assert_eq!(err, "cov.xml:2:1: line: number=\"x\" is not a line number");
    let err = coverage_error(
        "<coverage><packages><package><classes><class filename=\"a.py\"><lines>\n  <line number=\"1\" hits=\"1\" branch=\"true\" condition-coverage=\"50%\"/>",
    );
    assert_eq!(err, "cov.xml:2:3: line: condition-coverage=\"50%\" is not of the form \"50% (1/2)\"");
    let err = coverage_error("<coverage><sources></source></coverage>");
    assert!(err.starts_with("cov.xml:1:") && err.contains("invalid XML"), "{err}");
    let err = coverage_error("");
    assert_eq!(err, "cov.xml:1:1: xml: no root element: not a Cobertura report");
    let err = coverage_error("<coverage/><coverage/>");
    assert_eq!(err, "cov.xml:1:12: coverage: a second root element: not a Cobertura report");
    // A missing file.
    let err = coverage::load(Path::new("/nonexistent/coverage.xml"), Path::new("/")).unwrap_err().to_string();
    assert!(err.starts_with("/nonexistent/coverage.xml: cannot read"), "{err}");
}

/// A small seeded generator (xorshift64*), so a failure names its case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn coverage_mutations_never_panic() {
    let good = std::fs::read(fixture_dir("coverage").join("coverage-sources.xml")).unwrap();
    let origin = Path::new("mutant.xml");
    let mut rng = Rng(0x5eed_c0de_2026_0001);
    let (mut ok, mut errors) = (0, 0);
    for case in 0..600 {
        let mut bytes = good.clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(5) {
                0 => bytes.truncate(rng.below(bytes.len() + 1)),
                1 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes[i] ^= 1 << rng.below(8);
                }
                2 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    let alphabet = b"<>/\"'=&;# (%)0123456789\n\xff";
                    bytes[i] = alphabet[rng.below(alphabet.len())];
                }
                3 => {
                    let i = rng.below(bytes.len() + 1);
                    bytes.insert(i, rng.next() as u8);
                }
                _ if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    let j = (i + rng.below(64)).min(bytes.len());
                    bytes.drain(i..j);
                }
                _ => {}
            }
        }
        let result = std::panic::catch_unwind(|| coverage::parse(origin, &bytes, Path::new("/repo")));
        match result {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(err)) => {
                let err = err.to_string();
                let mut parts = err.splitn(4, ':');
                assert_eq!(parts.next(), Some("mutant.xml"), "case {case}: {err}");
                assert!(parts.next().is_some_and(|l| l.parse::<u64>().is_ok()), "case {case}: no line: {err}");
                assert!(parts.next().is_some_and(|c| c.parse::<u64>().is_ok()), "case {case}: no column: {err}");
                errors += 1;
            }
            Err(_) => panic!("case {case} panicked on {:?}", String::from_utf8_lossy(&bytes)),
        }
    }
    assert!(errors > 300, "most mutants are errors ({ok} parsed, {errors} errors)");
}

fn assert_pyrefly_matches(report: &PyreflyReport, expected: &serde_json::Value) {
    let files = expected["files"].as_object().unwrap();
    assert_eq!(report.files.keys().collect::<Vec<_>>(), files.keys().collect::<Vec<_>>(), "the same files");
    for (path, counts) in files {
        let file = &report.files[path];
        assert_eq!(u64::from(file.errors), counts["errors"].as_u64().unwrap(), "{path}");
        assert_eq!(u64::from(file.warnings), counts["warnings"].as_u64().unwrap(), "{path}");
        let by_kind: BTreeMap<String, u64> = counts["by_kind"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
        assert_eq!(file.by_kind.iter().map(|(k, v)| (k.clone(), u64::from(*v))).collect::<BTreeMap<_, _>>(), by_kind, "{path}");
    }
    let unmapped: Vec<String> = expected["unmapped"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(report.unmapped, unmapped);
}

#[test]
fn pyrefly_report_matches_the_oracle() {
    let root = fixture_dir("pyrefly");
    let path = root.join("report.json");
    let report = pyrefly::load(&path, &root).unwrap();
    assert_pyrefly_matches(&report, &oracle("pyrefly", &path, &root));
    // Known from the fixture: models.py has two errors and a bad-return downgraded to a warning
    // by its pyrefly.toml; clean.py only an info-level reveal_type, counted nowhere.
    let models = &report.files["app/models.py"];
    assert_eq!((models.errors, models.warnings), (2, 1));
    assert_eq!(models.by_kind.get("bad-return"), Some(&1));
    assert_eq!(report.files["app/service.py"].errors, 5);
    assert_eq!(report.files["scripts/tool.py"].by_kind.get("bad-assignment"), Some(&1));
    assert_eq!(report.files["app/clean.py"], PyreflyFile::default());
}

#[test]
fn pyrefly_paths_and_severities() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    let root = root.canonicalize().unwrap();
    let json = serde_json::json!({
        "errors": [
            {"path": format!("{}/pkg/a.py", root.display()), "name": "bad-return", "severity": "error", "line": 1, "column": 1},
            {"path": "pkg/./a.py", "name": "bad-return", "severity": "warn"},
            {"path": "pkg/a.py", "name": "missing-import"},
            {"path": "pkg/a.py", "name": "bad-override", "severity": "ignore", "baselined": true},
            {"path": "../libs/foo.py", "name": "bad-assignment", "severity": "error"},
            {"path": "/elsewhere/b.py", "name": "bad-assignment", "severity": "error"},
            {"path": "nb.ipynb", "name": "unknown-name", "severity": "error", "cell": 2, "extra": {"future": [1, 2]}}
        ],
        "summary": {"ignored": "keys other than errors"}
    });
    let path = root.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    let report = pyrefly::load(&path, &root).unwrap();
    assert_pyrefly_matches(&report, &oracle("pyrefly", &path, &root));
    let a = &report.files["pkg/a.py"];
    assert_eq!((a.errors, a.warnings), (2, 1), "an absent severity is an error, an ignored one nothing");
    assert_eq!(a.by_kind, BTreeMap::from([("bad-return".to_string(), 2), ("missing-import".to_string(), 1)]));
    assert_eq!(report.unmapped, vec!["../libs/foo.py".to_string(), "/elsewhere/b.py".to_string()]);
    assert_eq!(pyrefly::parse(Path::new("r.json"), b"{\"errors\": []}", &root).unwrap(), PyreflyReport::default());
}

fn pyrefly_error(json: &str) -> String {
    pyrefly::parse(Path::new("r.json"), json.as_bytes(), Path::new("/repo")).unwrap_err().to_string()
}

#[test]
fn pyrefly_malformed() {
    // Another checker's JSON: pyright's object, mypy's JSON lines.
    assert_eq!(
        pyrefly_error("{\"version\": \"1.1\",\n \"generalDiagnostics\": []}"),
        "r.json:2:26: json: missing key `errors`: not a pyrefly JSON report"
    );
    assert_eq!(
        pyrefly_error("{\"file\": \"a.py\", \"line\": 1, \"severity\": \"error\", \"message\": \"m\"}\n{\"file\": \"b.py\"}\n"),
        "r.json:1:64: json: missing key `errors`: not a pyrefly JSON report"
    );
    assert_eq!(pyrefly_error("[]"), "r.json:1:1: json: invalid type: sequence, expected a pyrefly JSON report: an object with an `errors` array");
    assert_eq!(pyrefly_error("{\"errors\": {}}"), "r.json:1:11: errors: invalid type: map, expected an array of pyrefly errors");
    assert_eq!(
        pyrefly_error("{\"errors\": [\n  {\"path\": \"a.py\", \"name\": \"x\"},\n  {\"path\": 3}]}"),
        "r.json:3:12: errors[1].path: invalid type: integer `3`, expected a string"
    );
    assert_eq!(
        pyrefly_error("{\"errors\": [{\"path\": \"a.py\", \"name\": \"x\", \"severity\": \"fatal\"}]}"),
        "r.json:1:62: errors[0].severity: unknown severity \"fatal\" (expected error, warn, info or ignore)"
    );
    assert_eq!(
        pyrefly_error("{\"errors\": [{\"path\": \"a.py\", \"severity\": \"error\"}]}"),
        "r.json:1:49: errors[0]: missing key `name`: not a pyrefly error"
    );
    let truncated = std::fs::read_to_string(fixture_dir("pyrefly").join("report.json")).unwrap();
    let err = pyrefly_error(&truncated[..truncated.len() / 2]);
    assert!(err.starts_with("r.json:") && err.contains(": invalid JSON: EOF while parsing"), "{err}");
    assert!(pyrefly_error("{\"errors\": []} x").contains(": invalid JSON: trailing characters"));
    let err = pyrefly::load(Path::new("/nonexistent/report.json"), Path::new("/")).unwrap_err().to_string();
    assert!(err.starts_with("/nonexistent/report.json: cannot read"), "{err}");
}

#[test]
fn codeowners_fixture() {
    let root = fixture_dir("owners");
    let path = owners::find(&root).expect("a CODEOWNERS file");
    assert_eq!(path, root.join(".github/CODEOWNERS"), ".github/ wins over the root and docs/");
    let codeowners = owners::load(&path).unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("other.md", &["@global-owner1", "@global-owner2"]),
        ("web/static/app.js", &["@js-owner"]),
        ("a/b/c.go", &["docs@example.com"]),
        ("notes.txt", &["@octo-org/octocats"]),
        ("build/logs/today.log", &["@octocat"]),
        ("build/other.log", &["@global-owner1", "@global-owner2"]),
        ("deeply/nested/logs/x.log", &["@octocat"]),
        ("guides/getting-started.md", &["guides@example.com"]),
        ("guides/build-app/troubleshooting.md", &["@global-owner1", "@global-owner2"]),
        ("apps/main.py", &["@octocat"]),
        ("nested/apps/deep/main.py", &["@octocat"]),
        ("scripts/deploy.sh", &["@doctocat", "@octocat"]),
        ("vendor/lib.py", &["@octocat"]),
        ("vendor/github/main.py", &[]),
        ("vendor/github", &[]),
        ("vendor/special/main.py", &["@special"]),
        ("config/app.yml", &["@config-owner"]),
        ("config/sub/app.yml", &["@global-owner1", "@global-owner2"]),
        ("other/config/app.yml", &["@global-owner1", "@global-owner2"]),
        ("lib/generated/gen.py", &["@codegen"]),
        ("lib/x/y/generated/gen.py", &["@codegen"]),
        ("x/lib/generated/gen.py", &["@global-owner1", "@global-owner2"]),
        ("src/pkg/mod.py", &["@src-owner"]),
        ("src/pkg/mod.js", &["@src-owner"]),
        ("a.py", &["@single-char"]),
        ("dir/b.py", &["@single-char"]),
        ("ab.py", &["@global-owner1", "@global-owner2"]),
        ("README.md", &["@readme"]),
        ("docs/README.md", &["@global-owner1", "@global-owner2"]),
        ("my notes.md", &["@notes"]),
        ("broken/main.py", &["@global-owner1", "@global-owner2"]),
        ("!negated.py", &["@global-owner1", "@global-owner2"]),
        ("a.py/", &["@single-char"]),
    ];
    for (path, owners) in cases {
        assert_eq!(codeowners.owners_of(path), owners.iter().map(|o| o.to_string()).collect::<Vec<_>>(), "{path}");
    }
    assert_eq!(codeowners.matching_rule("vendor/github/main.py"), Some((30, "/vendor/github")));
    let warned: Vec<u32> = codeowners.warnings().iter().map(|(line, _)| *line).collect();
    assert_eq!(warned, vec![49, 50, 51, 52, 53], "{:?}", codeowners.warnings());
    assert!(codeowners.warnings()[0].1.contains("\"not-an-owner\" is not an owner"), "{:?}", codeowners.warnings());
    assert!(codeowners.warnings()[1].1.contains("negation"));
}

/// GitHub's documented example CODEOWNERS (docs: "About code owners"), with the claims its
/// comments make.
#[test]
fn codeowners_github_documented_examples() {
    let example = "\
*       @global-owner1 @global-owner2
*.js    @js-owner #This is an inline comment.
*.go docs@example.com
*.txt @octo-org/octocats
/build/logs/ @doctocat
docs/* docs@example.com
apps/ @octocat
/docs/ @doctocat
/scripts/ @doctocat @octocat
**/logs @octocat
/apps/ @octocat
/apps/github
/apps/ @octocat
/apps/github @doctocat
";
    let codeowners = owners::parse(example);
    assert!(codeowners.warnings().is_empty());
    let owners = |path: &str| codeowners.owners_of(path);
    assert_eq!(owners("index.html"), ["@global-owner1", "@global-owner2"]);
    assert_eq!(owners("src/app.js"), ["@js-owner"]);
    assert_eq!(owners("main.go"), ["docs@example.com"]);
    assert_eq!(owners("notes/todo.txt"), ["@octo-org/octocats"]);
    // /docs/ (later) owns docs/ and its subdirectories; docs/* alone would not own nested files.
    assert_eq!(owners("docs/getting-started.md"), ["@doctocat"]);
    assert_eq!(owners("docs/build-app/troubleshooting.md"), ["@doctocat"]);
    assert_eq!(owners("scripts/x.sh"), ["@doctocat", "@octocat"]);
    for logs in ["build/logs/a.log", "scripts/logs/a.log", "deeply/nested/logs/a.log"] {
        assert_eq!(owners(logs), ["@octocat"], "{logs}");
    }
    assert_eq!(owners("nested/apps/x.py"), ["@octocat"]);
    assert_eq!(owners("apps/x.py"), ["@octocat"]);
    assert_eq!(owners("apps/github/x.py"), ["@doctocat"]);
    // Without the last line, apps/github has no owner.
    let without_last = owners::parse(&example.lines().take(12).collect::<Vec<_>>().join("\n"));
    assert!(without_last.owners_of("apps/github/x.py").is_empty());
    assert_eq!(without_last.owners_of("apps/x.py"), ["@octocat"]);
    // docs/* without the /docs/ rule: direct entries only.
    let docs_star = owners::parse("* @all\ndocs/* docs@example.com\n");
    assert_eq!(docs_star.owners_of("docs/getting-started.md"), ["docs@example.com"]);
    assert_eq!(docs_star.owners_of("docs/build-app/troubleshooting.md"), ["@all"]);
}

#[test]
fn codeowners_pattern_forms() {
    // (pattern, path, matches) — gitignore forms as CODEOWNERS uses them.
    let cases: &[(&str, &str, bool)] = &[
        ("foo", "foo", true),
        ("foo", "bar/foo", true),
        ("foo", "bar/foo/baz", true),
        ("foo", "foo.txt", false),
        ("/foo", "foo/bar", true),
        ("/foo", "bar/foo", false),
        ("foo/", "foo", false),
        ("foo/", "bar/foo/baz", true),
        ("/foo/", "bar/foo/baz", false),
        ("foo/bar", "foo/bar/baz", true),
        ("foo/bar", "baz/foo/bar", false),
        ("foo/bar/", "foo/bar", false),
        ("*", "bar/foo/baz", true),
        ("f*", "bar/foo/baz", true),
        ("f*", "xfoo", false),
        ("/*", "foo", true),
        ("/*", "foo/bar", false),
        ("/f*", "foo/bar/baz", true),
        ("/*/", "foo", false),
        ("/*/", "foo/bar", true),
        ("foo/*", "foo/bar", true),
        ("foo/*", "foo/bar/baz", false),
        ("foo/*.txt", "foo/bar/baz.txt", false),
        ("foo/*/baz", "foo/bar/baz/qux", true),
        ("f?o", "foo", true),
        ("f?o", "fooo", false),
        ("f\\*o", "f*o", true),
        ("f\\*o", "foo", false),
        ("**/foo/bar", "qux/foo/bar/baz", true),
        ("**/foo/bar", "foo/baz/bar", false),
        ("foo/bar/**", "foo/bar", false),
        ("foo/bar/**", "foo/bar/baz/qux", true),
        ("foo/**/bar", "foo/bar", true),
        ("foo/**/bar", "foo/qux/quux/bar/baz", true),
        ("foo/**/bar", "qux/foo/bar", false),
        ("foo/**/", "foo", false),
        ("foo/**/", "foo/bar", true),
        ("foo/**/bar/b*", "foo/qux/bar/baz", true),
        ("foo/**/bar/b*", "foo/qux/bar/qux", false),
        ("a{b,c}", "ab", false),
        ("a{b,c}", "a{b,c}", true),
        ("Foo", "foo", false),
    ];
    for (pattern, path, matches) in cases {
        let codeowners = owners::parse(&format!("{pattern} @x\n"));
        assert!(codeowners.warnings().is_empty(), "{pattern}: {:?}", codeowners.warnings());
        assert_eq!(!codeowners.owners_of(path).is_empty(), *matches, "{pattern:?} on {path:?}");
    }
}

#[test]
fn codeowners_locations_and_bad_lines() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(owners::find(tmp.path()), None);
    std::fs::create_dir_all(tmp.path().join("docs")).unwrap();
    std::fs::write(tmp.path().join("docs/CODEOWNERS"), "* @docs\n").unwrap();
    assert_eq!(owners::find(tmp.path()), Some(tmp.path().join("docs/CODEOWNERS")));
    std::fs::write(tmp.path().join("CODEOWNERS"), "* @root\n").unwrap();
    assert_eq!(owners::find(tmp.path()), Some(tmp.path().join("CODEOWNERS")));
    // A bad line is a warning with its number; the lines around it still apply.
    let codeowners = owners::parse("* @a\n\n*.py @b @not/a/team\n*.md @c\n");
    assert_eq!(codeowners.warnings().len(), 1);
    assert_eq!(codeowners.warnings()[0].0, 3);
    assert_eq!(codeowners.owners_of("x.py"), ["@a"]);
    assert_eq!(codeowners.owners_of("x.md"), ["@c"]);
    let err = owners::load(&tmp.path().join("missing")).unwrap_err().to_string();
    assert!(err.contains("missing: cannot read"), "{err}");
}

/// A git repository built commit by commit, with fixed names, emails and dates.
struct GitFixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl GitFixture {
    fn new() -> GitFixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        let fixture = GitFixture { _tmp: tmp, root };
        fixture.git(&["init", "-q", "-b", "main"]);
        fixture
    }

    /// `git ARGS` as `who` (`Name <email>`, author and committer) at `day` days after
    /// 2020-01-01 (author date `author_day`, when given, else the same).
    fn git_at(&self, args: &[&str], who: (&str, &str), day: u32, author_day: Option<u32>) -> String {
        let date = |d: u32| format!("@{} +0100", 1_577_836_800 + u64::from(d) * 86_400);
        let output = self
            .command(args)
            .env("GIT_AUTHOR_NAME", who.0)
            .env("GIT_AUTHOR_EMAIL", who.1)
            .env("GIT_COMMITTER_NAME", who.0)
            .env("GIT_COMMITTER_EMAIL", who.1)
            .env("GIT_AUTHOR_DATE", date(author_day.unwrap_or(day)))
            .env("GIT_COMMITTER_DATE", date(day))
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    fn git(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(&self.root)
            .args(["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"])
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1");
        command
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn commit(&self, message: &str, who: (&str, &str), day: u32, author_day: Option<u32>) -> String {
        self.git(&["add", "-A"]);
        self.git_at(&["commit", "-q", "-m", message], who, day, author_day);
        self.git(&["rev-parse", "--short", "HEAD"]).trim().to_string()
    }
}

const ALICE: (&str, &str) = ("Alice", "alice@example.com");
const BOB: (&str, &str) = ("Bob", "bob@example.com");
const CAROL: (&str, &str) = ("Carol", "carol@example.com");
const DAVE: (&str, &str) = ("Dave", "dave@example.com");

/// The history: day 0 alice adds pkg/a.py, pkg/b.py, README.md, and pkg/old.py; day 10 bob
/// edits pkg/a.py and deletes pkg/old.py; day 20 alice renames pkg/a.py to pkg/core.py; on a
/// branch, day 25 carol edits pkg/b.py and adds pkg/new.py; on main, day 30 bob edits
/// pkg/core.py and adds a new pkg/a.py and a new pkg/old.py; day 40 dave merges the branch
/// (--no-ff); day 50 alice (author date day 5) edits pkg/core.py and README.md: HEAD.
fn history_fixture() -> (GitFixture, BTreeMap<&'static str, String>) {
    let repo = GitFixture::new();
    let mut hashes = BTreeMap::new();
    let core = "def core():\n    return 1\n\n\ndef helper():\n    return 2\n\n\nVALUE = 3\n";
    repo.write("pkg/a.py", core);
    repo.write("pkg/b.py", "B = 1\n");
    repo.write("pkg/old.py", "OLD = 1\n");
    repo.write("README.md", "# fixture\n");
    hashes.insert("c1", repo.commit("add", ALICE, 0, None));
    repo.write("pkg/a.py", &format!("{core}EXTRA = 4\n"));
    std::fs::remove_file(repo.root.join("pkg/old.py")).unwrap();
    hashes.insert("c2", repo.commit("edit a, delete old", BOB, 10, None));
    repo.git(&["mv", "pkg/a.py", "pkg/core.py"]);
    hashes.insert("c3", repo.commit("rename a to core", ALICE, 20, None));
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("pkg/b.py", "B = 2\n");
    repo.write("pkg/new.py", "NEW = 1\n");
    hashes.insert("c4", repo.commit("feature", CAROL, 25, None));
    repo.git(&["checkout", "-q", "main"]);
    repo.write("pkg/core.py", &format!("{core}EXTRA = 5\n"));
    repo.write("pkg/a.py", "A_AGAIN = 1\n");
    repo.write("pkg/old.py", "OLD_AGAIN = 1\n");
    hashes.insert("c5", repo.commit("edit core, new a and old", BOB, 30, None));
    repo.git_at(&["merge", "-q", "--no-ff", "-m", "merge feature", "feature"], DAVE, 40, None);
    hashes.insert("m6", repo.git(&["rev-parse", "--short", "HEAD"]).trim().to_string());
    repo.write("pkg/core.py", &format!("{core}EXTRA = 6\n"));
    repo.write("README.md", "# fixture, edited\n");
    hashes.insert("c7", repo.commit("edit core and readme", ALICE, 50, Some(5)));
    (repo, hashes)
}

fn day(d: u32) -> String {
    // Commit dates as git prints them (%cI) in the +01:00 offset the fixture commits with.
    let seconds = 1_577_836_800 + u64::from(d) * 86_400 + 3600;
    let days = seconds / 86_400;
    let (y, m, dd) = civil_from_days(days as i64);
    let rest = seconds % 86_400;
    format!("{y:04}-{m:02}-{dd:02}T{:02}:{:02}:00+01:00", rest / 3600, rest % 3600 / 60)
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn figures(history: &History) -> BTreeMap<String, (u32, u32, String, String)> {
    history.files.iter().map(|(p, f)| (p.clone(), (f.commits, f.authors, f.last_change.clone(), f.last_commit.clone()))).collect()
}

#[test]
fn git_history_windows_renames_merges() {
    let (repo, h) = history_fixture();
    let full = history::load(&repo.root, None, None).unwrap();
    assert_eq!(full.note, None);
    assert_eq!(full.head.as_deref(), Some(repo.git(&["rev-parse", "HEAD"]).trim()));
    assert_eq!(full.head_date.as_deref(), Some(day(50).as_str()));
    assert_eq!(full.commits, 6, "the merge is not counted");
    let expected = |entries: &[(&str, u32, u32, u32, &str)]| -> BTreeMap<String, (u32, u32, String, String)> {
        entries.iter().map(|&(p, c, a, d, commit)| (p.to_string(), (c, a, day(d), h[commit].clone()))).collect()
    };
    // pkg/core.py carries pkg/a.py's history from before the rename (c1, c2, c3, c5, c7); the
    // new pkg/a.py has only its own. The last change is c7's commit date (day 50), not its author
    // date (day 5); dave, who merged, is nobody's author.
    assert_eq!(
        figures(&full),
        expected(&[
            ("README.md", 2, 1, 50, "c7"),
            ("pkg/a.py", 1, 1, 30, "c5"),
            ("pkg/b.py", 2, 2, 25, "c4"),
            ("pkg/core.py", 5, 2, 50, "c7"),
            ("pkg/new.py", 1, 1, 25, "c4"),
            ("pkg/old.py", 3, 2, 30, "c5"),
        ])
    );
    // pkg/old.py is one key for the deleted file (c1, c2) and the new one (c5): only renames
    // move history between paths.

    // The last 20 days before HEAD's date (2020-02-20; the clock says years later): c5, c7.
    let days20 = history::load(&repo.root, Some(20), None).unwrap();
    assert_eq!(days20.commits, 2);
    assert_eq!(
        figures(&days20),
        expected(&[("README.md", 1, 1, 50, "c7"), ("pkg/a.py", 1, 1, 30, "c5"), ("pkg/core.py", 2, 2, 50, "c7"), ("pkg/old.py", 1, 1, 30, "c5")])
    );
    // Inclusive at the boundary: 25 days reaches c4 (day 25) exactly.
    let days25 = history::load(&repo.root, Some(25), None).unwrap();
    assert_eq!(days25.commits, 3);
    assert_eq!(days25.files["pkg/b.py"].commits, 1);
    // The last 2 commits are the same two (the merge does not count); 3 add c4.
    let last2 = history::load(&repo.root, None, Some(2)).unwrap();
    assert_eq!(figures(&last2), figures(&days20));
    let last3 = history::load(&repo.root, None, Some(3)).unwrap();
    assert_eq!(figures(&last3), figures(&days25));
    // Both windows: what both keep (30 days: c3, c4, c5, c7; 2 commits: c5, c7).
    let both = history::load(&repo.root, Some(30), Some(2)).unwrap();
    assert_eq!(figures(&both), figures(&days20));
    // A rename inside the window still follows: 30 days keeps c3, the rename, under core.py.
    let days30 = history::load(&repo.root, Some(30), None).unwrap();
    assert_eq!(days30.files["pkg/core.py"].commits, 3);
    assert_eq!(days30.files["pkg/a.py"].commits, 1, "the new pkg/a.py only");
    // The same HEAD gives the same history: a new uncommitted edit changes nothing.
    repo.write("pkg/core.py", "changed in the work tree\n");
    assert_eq!(history::load(&repo.root, None, None).unwrap(), full);
    // A subdirectory as the root: paths relative to it.
    let sub = history::load(&repo.root.join("pkg"), None, None).unwrap();
    assert_eq!(sub.files.keys().cloned().collect::<Vec<_>>(), ["a.py", "b.py", "core.py", "new.py", "old.py"]);
    assert_eq!(sub.files["core.py"].commits, 5);
}

#[test]
fn git_history_reused_name_then_renamed() {
    // x.py is deleted (day 1), a new x.py is added (day 2) and renamed to y.py (day 3): y.py
    // has the new file's history only; the first x.py's stays under x.py.
    let repo = GitFixture::new();
    repo.write("x.py", "FIRST = 1\n");
    repo.commit("add", ALICE, 0, None);
    std::fs::remove_file(repo.root.join("x.py")).unwrap();
    repo.write("keep.py", "K = 1\n");
    repo.commit("delete", BOB, 1, None);
    repo.write("x.py", "SECOND = 2\nSECOND_B = 3\n");
    repo.commit("re-add", CAROL, 2, None);
    repo.git(&["mv", "x.py", "y.py"]);
    repo.commit("rename", DAVE, 3, None);
    let history = history::load(&repo.root, None, None).unwrap();
    assert_eq!(history.files["y.py"].commits, 2);
    assert_eq!(history.files["y.py"].authors, 2);
    assert_eq!(history.files["x.py"].commits, 2);
    assert_eq!(history.files["x.py"].last_change, day(1));
}

#[test]
fn git_history_notes() {
    // Not a repository.
    let tmp = tempfile::tempdir().unwrap();
    let history = history::load(tmp.path(), None, None).unwrap();
    assert!(history.files.is_empty() && history.head.is_none());
    assert!(history.note.as_deref().unwrap().contains("not in a git repository"), "{:?}", history.note);
    // A repository without commits.
    let empty = GitFixture::new();
    let history = history::load(&empty.root, None, None).unwrap();
    assert!(history.files.is_empty());
    assert!(history.note.as_deref().unwrap().contains("no commit"), "{:?}", history.note);
    // A shallow clone.
    let (repo, _) = history_fixture();
    let shallow = repo._tmp.path().join("shallow");
    let url = format!("file://{}", repo.root.display());
    repo.git(&["clone", "-q", "--depth", "1", &url, shallow.to_str().unwrap()]);
    let history = history::load(&shallow, None, None).unwrap();
    assert!(history.files.is_empty());
    assert_eq!(history.head.as_deref(), Some(repo.git(&["rev-parse", "HEAD"]).trim()));
    assert!(history.note.as_deref().unwrap().contains("shallow clone"), "{:?}", history.note);
}

/// A measurement, not a check: `CODEINTEL_HISTORY_REPO=/path/to/repo cargo test --release
/// --test integration inputs::git_history_timing -- --ignored --nocapture`.
#[test]
#[ignore = "measurement on a real repository named by CODEINTEL_HISTORY_REPO"]
fn git_history_timing() {
    let Some(repo) = std::env::var_os("CODEINTEL_HISTORY_REPO") else { return };
    for (days, commits) in [(None, None), (Some(365), None), (None, Some(1000))] {
        let start = std::time::Instant::now();
        let history = history::load(Path::new(&repo), days, commits).unwrap();
        eprintln!(
            "days {days:?} commits {commits:?}: {} commits, {} paths in {:.2?}",
            history.commits,
            history.files.len(),
            start.elapsed()
        );
        for path in ["mypy/checker.py", "mypy/nodes.py", "mypy/semanal.py", "README.md", "mypy/build.py"] {
            if let Some(file) = history.files.get(path) {
                eprintln!("  {path}: {} commits, {} authors", file.commits, file.authors);
            }
        }
    }
}
