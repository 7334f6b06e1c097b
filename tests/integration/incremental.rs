//! In one process, a rebuild re-executes only what an edit invalidates (asserted on salsa's
//! execution events), and its outputs equal a cold build's.

use codeintel_enrich::build::build_in;
use codeintel_enrich::config::Config;
use codeintel_enrich::db::{Database, ExecutionLog, Workspace};

use crate::support::{Repo, repo};

const ARTIFACTS: [&str; 6] = [
    "modules.jsonl",
    "symbols.jsonl",
    "imports.jsonl",
    "graphs/imports.json",
    "graphs/imports_runtime.json",
    "graphs/cycles.json",
];

struct Session {
    repo: Repo,
    config: Config,
    workspace: Workspace,
    log: ExecutionLog,
}

impl Session {
    fn new() -> Self {
        Session::of("basic", &["pkg/bad_utf8.py"])
    }

    fn of(fixture: &str, exclude: &[&str]) -> Self {
        let repo = repo(fixture);
        let mut config = Config::new(repo.root.canonicalize().unwrap(), repo.out());
        config.jobs = 2;
        config.exclude = exclude.iter().map(|e| e.to_string()).collect();
        let (db, log) = Database::with_execution_log();
        let mut session = Session { repo, config, workspace: Workspace::new(db), log };
        session.rebuild();
        session
    }

    /// Rebuild and return the executed queries, sorted.
    fn rebuild(&mut self) -> Vec<String> {
        build_in(&mut self.workspace, &self.config).unwrap();
        self.log.take(&self.workspace.db)
    }

    fn edit(&self, path: &str, from: &str, to: &str) {
        let file = self.repo.root.join(path);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(from), "{path} does not contain {from:?}");
        std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
    }

    /// The outputs equal those of a cold build of the same tree in a fresh database.
    fn assert_matches_cold_build(&self) {
        let mut cold = self.config.clone();
        cold.out = self.repo.tmp.path().join("cold");
        build_in(&mut Workspace::default(), &cold).unwrap();
        for file in ARTIFACTS {
            let warm = std::fs::read(self.config.out.join(file)).unwrap();
            assert!(warm == std::fs::read(cold.out.join(file)).unwrap(), "{file} differs from a cold build");
        }
    }
}

fn queries(ran: &[String], query: &str) -> Vec<String> {
    ran.iter().filter(|q| q.starts_with(&format!("{query}("))).cloned().collect()
}

fn of(path: &str, names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().map(|q| format!("{q}({path})")).collect();
    out.sort();
    out
}

#[test]
fn no_change_reruns_nothing() {
    let mut session = Session::new();
    assert_eq!(session.rebuild(), Vec::<String>::new());
}

#[test]
fn comment_edit_reruns_only_that_files_syntax_queries() {
    let mut session = Session::new();
    session.edit("pkg/sub/deep.py", "a comment inside the parentheses", "an edited comment, same length!!");
    let ran = session.rebuild();
    assert_eq!(
        ran,
        of(
            "pkg/sub/deep.py",
            &[
                "imports",
                "module_docstring",
                "module_record",
                "module_scope",
                "module_summary",
                "outline",
                "parsed_module",
                "pattern_tags",
                "source_text",
                "syntax_errors"
            ]
        ),
        "outline, imports and the scope re-ran and cut off: no export, resolution or graph query ran \
         (nor the warnings: without one they read no text)"
    );
    session.assert_matches_cold_build();
}

#[test]
fn blank_line_reruns_positions_but_no_semantic_query() {
    let mut session = Session::new();
    session.edit("pkg/sub/deep.py", "import os.path as osp, sys\n", "import os.path as osp, sys\n\n");
    let ran = session.rebuild();
    // `import_edges` reads the (moved) import rows, re-runs and cuts off: nothing after it runs.
    for semantic in ["exports", "traced_reexports", "module_loads", "load_cycles", "import_graph", "module_fan"] {
        assert_eq!(queries(&ran, semantic), Vec::<String>::new(), "{semantic} re-ran after a blank line: {ran:#?}");
    }
    assert!(ran.contains(&"outline(pkg/sub/deep.py)".to_string()));
    assert!(ran.contains(&"resolved_imports(pkg/sub/deep.py)".to_string()), "import rows moved: {ran:#?}");
    assert!(ran.iter().all(|q| q.ends_with("(pkg/sub/deep.py)")), "another file's query ran: {ran:#?}");
    session.assert_matches_cold_build();
}

#[test]
fn function_body_edit_reruns_no_exports() {
    let mut session = Session::new();
    session.edit("pkg/models.py", "return Model(name)\n", "return Model(name or 'x')\n");
    let ran = session.rebuild();
    assert_eq!(queries(&ran, "exports"), Vec::<String>::new(), "{ran:#?}");
    assert_eq!(queries(&ran, "traced_reexports"), Vec::<String>::new(), "{ran:#?}");
    assert!(ran.iter().all(|q| q.ends_with("(pkg/models.py)")), "another file's query ran: {ran:#?}");
    session.assert_matches_cold_build();
}

#[test]
fn new_public_name_reruns_exports_and_dependents() {
    let mut session = Session::new();
    session.edit("pkg/sub/deep.py", "def helper(", "NEW_NAME = 1\n\n\ndef helper(");
    let ran = session.rebuild();
    assert!(ran.contains(&"exports(pkg/sub/deep.py)".to_string()), "{ran:#?}");
    assert!(ran.contains(&"traced_reexports(pkg/__init__.py)".to_string()), "pkg re-exports helper from deep: {ran:#?}");
    assert_eq!(queries(&ran, "exports"), vec!["exports(pkg/sub/deep.py)"], "only deep's exports changed input: {ran:#?}");
    assert!(queries(&ran, "parsed_module").iter().all(|q| q == "parsed_module(pkg/sub/deep.py)"));
    session.assert_matches_cold_build();
}

#[test]
fn new_and_deleted_files() {
    let mut session = Session::new();
    std::fs::write(session.repo.root.join("pkg/extra.py"), "from .models import *\n\ndef extra():\n    import os\n").unwrap();
    let ran = session.rebuild();
    assert_eq!(queries(&ran, "parsed_module"), vec!["parsed_module(pkg/extra.py)"], "{ran:#?}");
    assert!(ran.contains(&"module_index(*)".to_string()));
    assert!(ran.contains(&"exports(pkg/extra.py)".to_string()));
    session.assert_matches_cold_build();
    let modules = std::fs::read_to_string(session.config.out.join("modules.jsonl")).unwrap();
    assert!(modules.contains("\"path\":\"pkg/extra.py\""));

    std::fs::remove_file(session.repo.root.join("pkg/extra.py")).unwrap();
    let ran = session.rebuild();
    assert_eq!(queries(&ran, "parsed_module"), Vec::<String>::new(), "no file is parsed again: {ran:#?}");
    let modules = std::fs::read_to_string(session.config.out.join("modules.jsonl")).unwrap();
    assert!(!modules.contains("pkg/extra.py"));
    session.assert_matches_cold_build();
}

#[test]
fn target_change_reruns_only_modules_with_decided_conditions() {
    let mut session = Session::new();
    session.config.target.platform = "win32".into();
    let ran = session.rebuild();
    // Only pkg/typing_imports.py tests `sys.platform`: its evaluations re-run, nothing parses.
    assert_eq!(queries(&ran, "exports"), vec!["exports(pkg/typing_imports.py)"], "{ran:#?}");
    assert!(queries(&ran, "module_loads").iter().all(|q| q == "module_loads(pkg/typing_imports.py)"), "{ran:#?}");
    for parse_bound in ["parsed_module", "module_scope", "outline", "imports"] {
        assert_eq!(queries(&ran, parse_bound), Vec::<String>::new(), "{ran:#?}");
    }
    session.assert_matches_cold_build();
    let modules = std::fs::read_to_string(session.config.out.join("modules.jsonl")).unwrap();
    let record = modules.lines().find(|l| l.contains("\"path\":\"pkg/typing_imports.py\"")).unwrap();
    assert!(record.contains("\"winreg\""), "on win32 the winreg branch is taken: {record}");

    // A version change touches no module of this fixture (none tests sys.version_info).
    session.config.target.version = (3, 9);
    let ran = session.rebuild();
    assert_eq!(queries(&ran, "exports"), Vec::<String>::new(), "{ran:#?}");
    session.assert_matches_cold_build();
}

#[test]
fn registration_decorator_edit_reruns_its_users_exports() {
    let mut session = Session::of("idioms", &[]);
    // An edit that keeps `export` a registration decorator changes no scope: no exports re-run.
    session.edit("registry/_export.py", "    module = sys.modules[obj.__module__]\n", "    module = sys.modules[obj.__module__]  # the defining module\n");
    let ran = session.rebuild();
    assert_eq!(queries(&ran, "exports"), Vec::<String>::new(), "{ran:#?}");
    // `export` stops registering: every module decorating with it is re-evaluated, no other.
    session.edit("registry/_export.py", "        module.__all__.append(obj.__name__)\n    else:\n        module.__all__ = [obj.__name__]\n", "        pass\n");
    let ran = session.rebuild();
    assert_eq!(
        queries(&ran, "exports"),
        of_each(&["registry/_export.py", "registry/api.py", "registry/mixed.py", "registry/reexported.py"], "exports"),
        "{ran:#?}"
    );
    assert_eq!(queries(&ran, "parsed_module"), vec!["parsed_module(registry/_export.py)"], "{ran:#?}");
    session.assert_matches_cold_build();
    let modules = std::fs::read_to_string(session.config.out.join("modules.jsonl")).unwrap();
    let api = modules.lines().find(|l| l.contains("\"path\":\"registry/api.py\"")).unwrap();
    assert!(api.contains("\"all\":null"), "registry.api no longer has an __all__: {api}");
}

fn of_each(paths: &[&str], query: &str) -> Vec<String> {
    let mut out: Vec<String> = paths.iter().map(|p| format!("{query}({p})")).collect();
    out.sort();
    out
}

/// With the cache, a package's edit behind the graph firewall reads the loads its closure
/// walk needs from the recorded graph facts, a file at a time, through a reader the
/// workspace's inputs keep after the build (it finds nothing once its cache is closed). In one
/// process, the next builds open the cache again as the last one left it (no note that it was
/// started anew) and their outputs equal a cold build's.
#[test]
fn package_edits_with_the_cache_in_one_process_keep_the_cache() {
    let mut session = Session::of("edits", &[]);
    let cache = session.repo.tmp.path().join("cache");
    session.config.cache_dir = Some(cache.clone());
    session.rebuild();
    let notes = || -> Vec<String> {
        let log: serde_json::Value = serde_json::from_slice(&std::fs::read(cache.join(codeintel_enrich::explain::RUN_LOG_FILE)).unwrap()).unwrap();
        serde_json::from_value(log["notes"].clone()).unwrap()
    };
    for (from, to) in [("from .core import *", "from .core import *  # a comment"), ("*  # a comment", "*  # another")] {
        session.edit("hub/__init__.py", from, to);
        let ran = session.rebuild();
        assert!(ran.contains(&"load_steps(hub/core.py)".to_string()), "the closure walk read its loads again: {ran:?}");
        assert_eq!(notes(), Vec::<String>::new(), "after '{to}'");
        session.assert_matches_cold_build();
    }
}
