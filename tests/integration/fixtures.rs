//! Snapshot tests over the fixture repositories, plus explicit assertions on the cases each
//! fixture exists for (so a wrong snapshot cannot hide them).

use serde_json::{Value, json};

use crate::support::{build, jsonl, read, repo, stderr};

fn rows_for<'a>(rows: &'a [Value], path: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["path"] == path).collect()
}

fn import_at<'a>(rows: &'a [Value], path: &str, target: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["path"] == path && r["target"] == target)
        .unwrap_or_else(|| panic!("no import of {target} in {path}"))
}

#[test]
fn basic_fixture_snapshots() {
    let repo = repo("basic");
    let out = repo.out();
    let output = build(&repo.root, &out, &["--max-file-bytes", "4096", "--follow-links"]);
    assert_eq!(output.status.code(), Some(1), "bad_utf8.py makes the exit code 1: {}", stderr(&output));
    for file in ["modules.jsonl", "symbols.jsonl", "imports.jsonl", "diagnostics.jsonl"] {
        insta::assert_snapshot!(format!("basic_{file}"), read(&out, file));
    }
}

#[test]
fn basic_discovery_and_problems() {
    let repo = repo("basic");
    let out = repo.out();
    let output = build(&repo.root, &out, &["--max-file-bytes", "4096", "--follow-links"]);
    let modules = jsonl(&out, "modules.jsonl");
    let paths: Vec<&str> = modules.iter().map(|m| m["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "pkg/__init__.py",
            "pkg/broken.py",
            "pkg/latin1.py",
            "pkg/models.py",
            "pkg/sub/__init__.py",
            "pkg/sub/deep.py",
            "pkg/typing_imports.py",
            "scripts/run.py",
        ],
        "gitignored, stubs/, overlays/, oversized, undecodable and looped paths are left out"
    );
    let problems: Vec<(String, String)> = jsonl(&out, "diagnostics.jsonl")
        .iter()
        .map(|p| (p["path"].as_str().unwrap().to_string(), p["kind"].as_str().unwrap().to_string()))
        .collect();
    assert!(problems.contains(&("pkg/bad_utf8.py".into(), "undecodable".into())), "{problems:?}");
    assert!(problems.contains(&("pkg/big_table.py".into(), "oversized".into())), "{problems:?}");
    assert!(problems.contains(&("pkg/broken.py".into(), "syntax".into())), "{problems:?}");
    assert!(problems.iter().any(|(_, kind)| kind == "symlink_loop"), "{problems:?}");
    let err = stderr(&output);
    assert!(err.contains("pkg/bad_utf8.py") && err.contains("invalid utf-8 at byte 5"), "{err}");
    assert!(err.contains("1 skipped, 1 errors, 1 with syntax errors"), "{err}");
}

#[test]
fn basic_module_records() {
    let repo = repo("basic");
    let out = repo.out();
    build(&repo.root, &out, &["--max-file-bytes", "4096"]);
    let modules = jsonl(&out, "modules.jsonl");
    let by_path = |p: &str| modules.iter().find(|m| m["path"] == p).unwrap().clone();
    let init = by_path("pkg/__init__.py");
    assert_eq!(init["module"], "pkg");
    assert_eq!(init["is_package"], true);
    assert_eq!(init["docstring"], "The fixture package.");
    let latin1 = by_path("pkg/latin1.py");
    assert_eq!(latin1["encoding"], "latin-1");
    assert_eq!(latin1["docstring"], "Latin-1 source: café.");
    let broken = by_path("pkg/broken.py");
    assert!(broken["parse_errors"].as_u64().unwrap() > 0);
    let deep = by_path("pkg/sub/deep.py");
    assert_eq!(deep["module"], "pkg.sub.deep");
    assert_eq!(deep["is_package"], false);
    let bytes = std::fs::read(repo.root.join("pkg/sub/deep.py")).unwrap();
    assert_eq!(deep["content_hash"], blake3::hash(&bytes).to_hex().as_str());
    assert_eq!(deep["lines"], 15);
}

#[test]
fn outline_cases() {
    let repo = repo("basic");
    let out = repo.out();
    build(&repo.root, &out, &[]);
    let symbols = jsonl(&out, "symbols.jsonl");
    let get = |path: &str, qualname: &str| {
        symbols
            .iter()
            .find(|s| s["path"] == path && s["qualname"] == qualname)
            .unwrap_or_else(|| panic!("no {qualname} in {path}"))
            .clone()
    };
    let model = get("pkg/models.py", "Model");
    assert_eq!((model["kind"].as_str(), model["line"].as_u64(), model["col"].as_u64()), (Some("class"), Some(26), Some(0)));
    assert_eq!(model["decorators"], json!(["dataclass(frozen=True)"]));
    assert_eq!(model["bases"], json!(["object", "metaclass=type"]));
    assert_eq!(model["docstring"], "A model.");
    let create = get("pkg/models.py", "Model.create");
    assert_eq!(create["kind"], "method");
    assert_eq!(create["line"], 40, "the def line, not the decorator line");
    assert_eq!(create["decorators"], json!(["staticmethod", "functools.lru_cache(maxsize=None)"]));
    assert_eq!(
        create["params"],
        json!([{"name": "name", "kind": "keyword_only", "annotation": "str", "has_default": true}])
    );
    assert_eq!(create["returns"], "\"Model\"");
    let describe = get("pkg/models.py", "Model.Meta.describe");
    assert_eq!(describe["kind"], "method");
    let local = get("pkg/models.py", "Model.Meta.describe.local_helper");
    assert_eq!((local["kind"].as_str(), local["is_public"].as_bool()), (Some("function"), Some(false)));
    let fetch = get("pkg/models.py", "fetch");
    assert_eq!((fetch["is_async"].as_bool(), fetch["col"].as_u64()), (Some(true), Some(0)));
    assert_eq!(fetch["docstring"], "Fetch A thing   tabbed.");
    assert_eq!(get("pkg/models.py", "fetch.inner")["is_async"], true);
    let positional = get("pkg/models.py", "positional");
    let kinds: Vec<&str> = positional["params"].as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["positional_only", "positional_only", "positional_or_keyword", "keyword_only"]);
    assert_eq!(positional["docstring"], "Summary after blank lines.");
    let plain = get("pkg/models.py", "plain");
    let kinds: Vec<(&str, bool)> = plain["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["kind"].as_str().unwrap(), p["has_default"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("positional_or_keyword", false),
            ("positional_or_keyword", true),
            ("var_positional", false),
            ("keyword_only", false),
            ("keyword_only", true),
            ("var_keyword", false)
        ]
    );
    assert_eq!(get("pkg/models.py", "Model._private")["is_public"], false);
    assert_eq!(get("pkg/models.py", "Model.__repr__")["is_public"], true);
    assert_eq!(get("pkg/models.py", "_Hidden.visible_name")["is_public"], false);
    assert_eq!(get("pkg/models.py", "conditional_def")["kind"], "function");
    assert_eq!(get("pkg/models.py", "ConditionalClass")["kind"], "class");
    // Latin-1: names decoded, columns in UTF-8 bytes of the decoded text.
    let cafe = get("pkg/latin1.py", "café");
    assert_eq!(cafe["docstring"], "Résumé of the function.");
    assert_eq!(cafe["params"][0]["name"], "naïve");
    assert_eq!(get("pkg/latin1.py", "Élève")["kind"], "class");
    // A syntax error keeps what could be read before and after it.
    assert!(symbols.iter().any(|s| s["path"] == "pkg/broken.py" && s["qualname"] == "fine"));
    assert!(symbols.iter().any(|s| s["path"] == "pkg/broken.py" && s["qualname"] == "AfterError.method"));
}

#[test]
fn import_flags() {
    let repo = repo("basic");
    let out = repo.out();
    build(&repo.root, &out, &[]);
    let imports = jsonl(&out, "imports.jsonl");
    let path = "pkg/typing_imports.py";
    let flags = |target: &str| {
        let row = import_at(&imports, path, target);
        (
            row["type_checking"].as_bool().unwrap(),
            row["conditional"].as_bool().unwrap(),
            row["in_try"].as_bool().unwrap(),
            row["in_function"].as_bool().unwrap(),
        )
    };
    //                                   type_checking conditional in_try in_function
    assert_eq!(flags("collections.abc"), (true, true, false, false));
    assert_eq!(flags("pkg.models"), (true, true, false, false));
    assert_eq!(flags("decimal"), (true, true, false, false), "if typing.TYPE_CHECKING:");
    assert_eq!(flags("winreg"), (false, true, false, false), "elif of a TYPE_CHECKING if");
    assert_eq!(flags("posix"), (false, true, false, false), "else: is not type checking");
    assert_eq!(flags("json"), (false, true, false, false), "if not TYPE_CHECKING: body");
    assert_eq!(flags("pickle"), (true, true, false, false), "else of if not TYPE_CHECKING");
    assert_eq!(flags("ujson"), (false, false, true, false));
    assert_eq!(flags("csv"), (false, true, false, false), "try/else runs only without an exception");
    assert_eq!(flags("gc"), (false, false, false, false), "finally always runs");
    assert_eq!(flags("array"), (false, true, false, false));
    assert_eq!(flags("struct"), (false, true, false, false));
    assert_eq!(flags("fcntl"), (false, true, false, false));
    assert_eq!(flags("textwrap"), (false, false, false, true));
    assert_eq!(flags("pkg"), (false, false, true, true), "from . import sub inside try in a def");
    assert_eq!(flags("os"), (false, false, false, false), "class bodies are not functions");
    assert_eq!(flags("zlib"), (false, false, false, false));
    let json_rows: Vec<_> = rows_for(&imports, path).into_iter().filter(|r| r["target"] == "json").collect();
    assert_eq!(json_rows.len(), 2);
    assert_eq!(json_rows[1]["in_try"], true, "except ImportError: import json as fastjson");
    assert_eq!(json_rows[1]["asname"], "fastjson");

    let deep = "pkg/sub/deep.py";
    assert_eq!(import_at(&imports, deep, "os.path")["asname"], "osp");
    assert_eq!(import_at(&imports, deep, "sys")["line"], 2);
    assert_eq!(import_at(&imports, deep, "pkg.sub")["level"], 1);
    assert_eq!(import_at(&imports, deep, "pkg")["level"], 2);
    let models = import_at(&imports, deep, "pkg.models");
    assert_eq!(
        models["names"],
        json!([
            {"name": "Model", "asname": null, "resolved_path": null},
            {"name": "make_model", "asname": "mk", "resolved_path": null}
        ])
    );
    assert_eq!(models["resolved_path"], "pkg/models.py");
    assert_eq!((models["external"].is_null(), models["unresolved"].as_bool()), (true, Some(false)));
    let outside = import_at(&imports, deep, "...outside");
    assert_eq!((outside["level"].as_u64(), outside["unresolved"].as_bool()), (Some(3), Some(true)), "beyond the top-level package");
    // `from .. import models`: the name is a submodule.
    let parent = import_at(&imports, deep, "pkg");
    assert_eq!(parent["names"], json!([{"name": "models", "asname": null, "resolved_path": "pkg/models.py"}]));
    assert_eq!(parent["resolved_path"], "pkg/__init__.py");
    let os_path = import_at(&imports, deep, "os.path");
    assert_eq!((os_path["external"].as_str(), os_path["resolved_path"].is_null()), (Some("os"), true));
    assert_eq!(import_at(&imports, deep, "xml.etree.ElementTree")["external"], "xml");
    assert_eq!(import_at(&imports, "scripts/run.py", "scripts.relative")["unresolved"], true, "missing module of a namespace package");
    assert_eq!(
        import_at(&imports, "pkg/__init__.py", "pkg.sub.deep")["names"],
        json!([{"name": "helper", "asname": null, "resolved_path": null}])
    );
    assert_eq!(import_at(&imports, "scripts/run.py", "scripts.relative")["level"], 1);
    assert_eq!(import_at(&imports, path, "__future__")["names"], json!([{"name": "annotations", "asname": null, "resolved_path": null}]));
}

#[test]
fn src_layout_and_namespace_packages() {
    let repo = repo("srclayout");
    let out = repo.out();
    let output = build(&repo.root, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    insta::assert_snapshot!("srclayout_modules.jsonl", read(&out, "modules.jsonl"));
    insta::assert_snapshot!("srclayout_imports.jsonl", read(&out, "imports.jsonl"));
    let modules = jsonl(&out, "modules.jsonl");
    let names: Vec<(&str, &str)> =
        modules.iter().map(|m| (m["path"].as_str().unwrap(), m["module"].as_str().unwrap())).collect();
    assert_eq!(
        names,
        [
            ("src/mypkg/__init__.py", "mypkg"),
            ("src/mypkg/core.py", "mypkg.core"),
            ("src/nspkg/sub/mod.py", "nspkg.sub.mod"),
            ("tests/test_core.py", "tests.test_core"),
        ]
    );
    let imports = jsonl(&out, "imports.jsonl");
    assert_eq!(import_at(&imports, "src/nspkg/sub/mod.py", "nspkg.other")["level"], 2);
    assert_eq!(import_at(&imports, "src/mypkg/__init__.py", "mypkg.core")["level"], 1);
}
