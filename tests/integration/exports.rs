//! Exports and `__all__` checked against CPython itself (tests/oracle/runtime_oracle.py runs
//! `from m import *` in a fresh interpreter per module), plus explicit expectations for the
//! cases the `exports` fixture exists for.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{build, jsonl, python_stdlib, read, repo, stderr};

fn runtime_oracle(out: &Path, sys_path: Option<&Path>, skip: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/runtime_oracle.py");
    let mut command = Command::new("python3");
    command.arg(script).arg("--out").arg(out).arg("--summary");
    if let Some(sys_path) = sys_path {
        command.arg("--sys-path").arg(sys_path);
    }
    if !skip.is_empty() {
        command.arg("--skip").args(skip);
    }
    let output = command.output().expect("python3 runs");
    assert!(output.status.success(), "runtime oracle failed: {}", stderr(&output));
    eprint!("{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn module<'a>(modules: &'a [Value], name: &str) -> &'a Value {
    modules.iter().find(|m| m["module"] == name).unwrap_or_else(|| panic!("no module {name}"))
}

/// `--python-version`/`--python-platform` of the interpreter the oracle runs: conditions are
/// decided for the Python that checks them.
fn oracle_target() -> Vec<String> {
    let output = Command::new("python3")
        .args(["-c", "import sys; print('%d.%d %s' % (sys.version_info[0], sys.version_info[1], sys.platform))"])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8(output.stdout).unwrap();
    let (version, platform) = text.trim().split_once(' ').unwrap();
    vec!["--python-version".into(), version.into(), "--python-platform".into(), platform.into()]
}

fn build_for_oracle(root: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let target = oracle_target();
    let mut args: Vec<&str> = target.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    build(root, out, &args)
}

/// The contract, checked against CPython: every module the tool calls complete is sound
/// (runtime names ⊇ `exports`, ⊆ `exports` ∪ `exports_maybe`), exact where `exports_maybe`
/// is empty, and every `__all__` it calls complete is the runtime one.
fn assert_sound(report: &Value, modules: &[Value]) {
    assert_eq!(report["unsound"], json!([]), "{report:#}");
    assert_eq!(report["all_mismatches"], json!([]), "{report:#}");
    assert_eq!(report["all_runtime_only"], json!([]), "{report:#}");
    assert_eq!(report["all_checked"], report["all_matched"], "{report:#}");
    for inexact in report["inexact"].as_array().unwrap() {
        let record = module(modules, inexact["module"].as_str().unwrap());
        assert!(!record["exports_maybe"].as_array().unwrap().is_empty(), "inexact without maybe names: {inexact:#}");
    }
    // Every incomplete module says why.
    for record in modules {
        let reasons = record["exports_incomplete_reasons"].as_array().unwrap();
        assert_eq!(record["exports_complete"].as_bool().unwrap(), reasons.is_empty(), "{record:#}");
    }
}

#[test]
fn exports_fixture_matches_cpython() {
    let repo = repo("exports");
    let out = repo.out();
    let output = build_for_oracle(&repo.root, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = runtime_oracle(&out, Some(&repo.root), &[]);
    let modules = jsonl(&out, "modules.jsonl");
    assert_sound(&report, &modules);
    assert_eq!(report["import_errors"], json!([]), "{report:#}");
    assert!(report["all_checked"].as_u64().unwrap() >= 8, "{report:#}");
    assert!(report["exports_claimed_complete"].as_u64().unwrap() >= 20, "{report:#}");
    insta::assert_snapshot!("exports_modules.jsonl", read(&out, "modules.jsonl"));
    insta::assert_snapshot!("exports_cycles.json", read(&out, "graphs/cycles.json"));
}

#[test]
fn exports_fixture_cases() {
    let repo = repo("exports");
    let out = repo.out();
    build_for_oracle(&repo.root, &out, &[]);
    let modules = jsonl(&out, "modules.jsonl");
    // Every __all__ idiom, in order.
    let idioms = module(&modules, "allidioms");
    assert_eq!(idioms["all"], json!(["alpha", "beta", "gamma", "b1", "b2", "e1"]));
    assert_eq!((idioms["all_complete"].as_bool(), idioms["exports_complete"].as_bool()), (Some(true), Some(true)));
    assert_eq!(module(&modules, "allidioms.concat")["all"], json!(["b1", "b2", "c1"]));
    assert_eq!(module(&modules, "allidioms.splat")["all"], json!(["e1", "s1"]));
    assert_eq!(module(&modules, "allidioms.inherit")["all"], json!(["b1", "b2"]), "from m import __all__");
    assert_eq!(module(&modules, "allidioms.tupled")["all"], json!(["t1"]));
    let dynamic = module(&modules, "allidioms.dynamic");
    assert_eq!((dynamic["all_complete"].as_bool(), dynamic["exports_complete"].as_bool()), (Some(false), Some(false)));
    // Star chains three deep.
    assert_eq!(module(&modules, "stars.a")["exports"], json!(["A", "B", "C"]));
    assert_eq!(module(&modules, "stars.a")["star_imports"], json!(["stars.b"]));
    // A star-import cycle: each module may run while the other is half initialized (whichever
    // is imported first), so the other's names are maybe, its own definite.
    assert_eq!(module(&modules, "cycle.x")["exports"], json!(["X1", "X2"]));
    assert_eq!(module(&modules, "cycle.x")["exports_maybe"], json!(["Y1", "Y2"]));
    assert_eq!(module(&modules, "cycle.y")["exports"], json!(["Y1", "Y2"]));
    assert_eq!(module(&modules, "cycle.y")["exports_maybe"], json!(["X1", "X2"]));
    // __all__ naming a submodule the package never imports itself.
    assert_eq!(module(&modules, "suball")["exports"], json!(["child", "value"]));
    // Re-export chains are followed to the defining module; the package's own submodule
    // attribute (`api`) is exported but is not a re-export.
    let chain = module(&modules, "chain");
    assert_eq!(chain["exports"], json!(["Client", "api", "make"]), "the imported submodule `api` is bound");
    assert_eq!(
        chain["reexports"],
        json!([
            {"name": "Client", "from": "chain.api", "origin": "chain._impl", "origin_name": "Client"},
            {"name": "make", "from": "chain.api", "origin": "chain.api", "origin_name": "make"}
        ])
    );
    // Bindings of every kind; TYPE_CHECKING bodies and except aliases do not count.
    let conditional = module(&modules, "conditional.mod");
    let names = |field: &str| -> Vec<String> {
        conditional[field].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    let (exports, maybe) = (names("exports"), names("exports_maybe"));
    // Bound on every path.
    for name in ["compat", "loads", "OrderedDict", "handle", "walrus", "first", "rest", "left", "right", "annotated",
        "counter", "chained", "also_chained", "os", "cabc", "Public", "function", "index"]
    {
        assert!(exports.iter().any(|e| e == name), "{name} missing from {exports:?}");
    }
    // Bound on some paths: a comprehension's walrus (maybe no element), `match` captures.
    assert_eq!(maybe, ["last", "matched", "platform_name"]);
    let exports: Vec<&str> = exports.iter().map(String::as_str).collect();
    for name in ["only_annotation", "temp", "err", "n", "_private", "local_name", "inner_attribute", "collections"] {
        assert!(!exports.contains(&name), "{name} must not be exported: {exports:?}");
    }
    // The cycle is in the graph artifact.
    let cycles: Value = serde_json::from_str(&read(&out, "graphs/cycles.json")).unwrap();
    assert!(cycles["all"].as_array().unwrap().contains(&json!(["cycle.x", "cycle.y"])), "{cycles}");
}

#[test]
fn idioms_fixture_is_sound_against_cpython() {
    let repo = repo("idioms");
    let out = repo.out();
    let output = build_for_oracle(&repo.root, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // `registry.unresolved` imports a package that is not installed; `from shims.unbound_all
    // import *` raises (its __all__ names what nothing binds); `compiled` is shadowed by an
    // empty extension module CPython cannot load.
    let report = runtime_oracle(&out, Some(&repo.root), &["registry.unresolved", "shims.unbound_all", "compiled"]);
    let modules = jsonl(&out, "modules.jsonl");
    assert_sound(&report, &modules);
    assert_eq!(report["import_errors"], json!([]), "{report:#}");
    assert!(report["exports_claimed_complete"].as_u64().unwrap() >= 20, "{report:#}");
    insta::assert_snapshot!("idioms_modules.jsonl", read(&out, "modules.jsonl"));
}

#[test]
fn idioms_fixture_cases() {
    let repo = repo("idioms");
    let out = repo.out();
    build(&repo.root, &out, &["--python-version", "3.11", "--python-platform", "linux"]);
    let modules = jsonl(&out, "modules.jsonl");
    let field = |name: &str, key: &str| module(&modules, name)[key].clone();
    let complete = |name: &str| field(name, "exports_complete").as_bool().unwrap();
    // Registration decorators create or extend __all__, in decoration order.
    assert_eq!(field("registry.api", "all"), json!(["alpha", "Beta"]));
    assert_eq!(field("registry.api", "exports"), json!(["Beta", "alpha"]));
    assert_eq!(field("registry.mixed", "all"), json!(["first", "second", "Third"]));
    assert_eq!(field("registry.reexported", "all"), json!(["one", "two"]), "through a re-export and a module attribute");
    assert!(!complete("registry.unresolved"));
    assert_eq!(
        field("registry.unresolved", "exports_incomplete_reasons"),
        json!(["decorator @atpublic_not_installed.public on maybe_listed may add to __all__ and cannot be resolved"])
    );
    // Helpers extending __all__ from other modules' __all__.
    assert_eq!(field("helpers", "all"), json!(["helper_value", "b1", "b2", "shared", "o1"]));
    assert_eq!(field("helpers.plain", "all"), json!(["p1", "b1", "b2", "shared"]));
    assert!(!complete("helpers.opaque"));
    assert_eq!(field("helpers.opaque", "all_complete"), json!(false));
    // Conditions decided for 3.11 on linux.
    let versions = field("conditions.versions", "exports");
    assert_eq!(
        versions,
        json!(["TYPE_CHECKING", "ge310", "ge311", "linux", "new_api", "not_windows", "os", "posix_only", "short_circuit", "sys"])
    );
    assert_eq!(field("conditions.versions", "exports_maybe"), json!([]));
    let undecided = &module(&modules, "conditions.undecided");
    assert_eq!(undecided["exports"], json!(["have_json", "item", "load", "random"]));
    assert_eq!(undecided["exports_maybe"], json!(["empty_loop_target", "fast_path", "json", "not_a_real_module_for_sure", "unlikely"]));
    assert!(undecided["exports_complete"].as_bool().unwrap());
    assert_eq!(field("conditions.raising", "exports"), json!(["encoder", "supported", "sys"]));
    // PEP 562 shims.
    assert_eq!(field("shims.delegate", "exports"), json!(["i1", "i2"]));
    assert_eq!(field("shims.lazy", "exports"), json!(["visible"]));
    assert!(complete("shims.lazy"));
    assert!(!complete("shims.opaque"));
    // Walruses at module level: defaults, decorators, bases bind; a comprehension's or the
    // right side of `or` maybe.
    assert_eq!(field("walrus.places", "exports"), json!(["WithBase", "decorated", "either", "from_base", "from_decorator", "from_default", "picked", "with_default"]));
    assert_eq!(field("walrus.places", "exports_maybe"), json!(["from_comprehension", "from_or"]));
    // Submodules loaded by the package's import closure are attributes; the others maybe.
    assert_eq!(field("submods", "exports"), json!(["a", "b"]));
    assert_eq!(field("submods", "exports_maybe"), json!(["c", "d"]));
    // globals() read is not dynamic; written is.
    assert!(complete("precise.readonly"));
    assert!(!complete("precise.writes"));
    assert_eq!(field("precise.writes", "exports_incomplete_reasons"), json!(["globals() is written"]));
    assert_eq!(field("precise.setattr_all", "all_complete"), json!(false), "__all__ set through sys.modules[__name__]");
    assert!(!complete("precise.setattr_all"));
    // NFKC: the MICRO SIGN and the fi ligature as CPython spells them.
    assert_eq!(field("precise.unicode_names", "exports"), json!(["file_name", "\u{3bc}"]));
    // Regressions found on real packages: locals() written at module level, a try body whose
    // every path raises, a handler starting after a prefix, __all__ naming unbound names, a
    // compiled module beside the source.
    assert_eq!(field("precise.locals_write", "exports_incomplete_reasons"), json!(["locals() is written at module level"]));
    assert_eq!(field("conditions.nested_raise", "exports"), json!(["keep", "sys", "windll"]));
    assert_eq!(field("conditions.nested_raise", "exports_maybe"), json!(["dumps", "json"]));
    assert_eq!(field("conditions.prefix", "exports_maybe"), json!(["x"]));
    assert!(!complete("shims.unbound_all"));
    assert!(!complete("compiled"));
    assert!(field("compiled", "exports_incomplete_reasons")[0].as_str().unwrap().contains("compiled module beside it"));
    // `import regmod.sub` resolves to the module that registers it in sys.modules.
    let imports = jsonl(&out, "imports.jsonl");
    let row = imports.iter().find(|r| r["path"] == "uses_regmod.py").unwrap();
    assert_eq!(row["resolved_path"], json!("regmod.py"));
    assert_eq!(row["unresolved"], json!(false));
    assert!(!read(&out, "diagnostics.jsonl").contains("regmod.sub"));
}

#[test]
fn standard_library_exports_are_sound() {
    let stdlib = python_stdlib();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build_for_oracle(&stdlib, &out, &["--exclude", "site-packages", "--quiet", "--no-cache"]);
    // Not imported: the test suite (slow, side effects), GUI and demo packages, modules that
    // print or open a browser on import.
    let skip = ["test", "idlelib", "tkinter", "turtledemo", "turtle", "antigravity", "this", "lib2to3.tests",
        "ensurepip", "pydoc_data", "__phello__", "__hello__"];
    let report = runtime_oracle(&out, None, &skip);
    let modules = jsonl(&out, "modules.jsonl");
    assert_sound(&report, &modules);
    assert!(report["all_checked"].as_u64().unwrap() > 150, "{report:#}");
    assert!(report["exports_claimed_complete"].as_u64().unwrap() > 650, "{report:#}");
    assert!(report["incomplete_pct"].as_f64().unwrap() < 8.0, "{report:#}");
}
