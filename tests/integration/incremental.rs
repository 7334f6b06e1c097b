//! In one process, a rebuild re-executes only the queries of changed files (asserted on
//! salsa's execution events), and its outputs equal a cold build's.

use codeintel_enrich::build::build_in;
use codeintel_enrich::config::Config;
use codeintel_enrich::db::{Database, Workspace};

use crate::support::repo;

const PER_FILE_QUERIES: [&str; 6] =
    ["imports", "module_docstring", "module_record", "outline", "parsed_module", "syntax_errors"];

fn queries_of(path: &str) -> Vec<String> {
    let mut expected: Vec<String> = PER_FILE_QUERIES.iter().map(|q| format!("{q}({path})")).collect();
    expected.sort();
    expected
}

#[test]
fn rebuild_reexecutes_only_what_changed() {
    let repo = repo("basic");
    let mut config = Config::new(repo.root.canonicalize().unwrap(), repo.out());
    config.jobs = 2;
    config.exclude = vec!["pkg/bad_utf8.py".into()];
    let (db, log) = Database::with_execution_log();
    let mut workspace = Workspace::new(db);

    build_in(&mut workspace, &config).unwrap();
    let cold = log.take(&workspace.db);
    assert_eq!(cold.len(), 9 * PER_FILE_QUERIES.len(), "every query of every module ran once: {cold:#?}");

    // No change: nothing executes.
    build_in(&mut workspace, &config).unwrap();
    assert_eq!(log.take(&workspace.db), Vec::<String>::new());

    // A comment's text edited in place: only that file's queries run again.
    let deep = repo.root.join("pkg/sub/deep.py");
    let text = std::fs::read_to_string(&deep).unwrap();
    std::fs::write(&deep, text.replace("a comment inside the parentheses", "edited comment text, same meaning")).unwrap();
    build_in(&mut workspace, &config).unwrap();
    assert_eq!(log.take(&workspace.db), queries_of("pkg/sub/deep.py"));

    // A new file runs its own queries only; the outputs match a cold build of the same tree.
    std::fs::write(repo.root.join("pkg/extra.py"), "def extra():\n    import os\n").unwrap();
    build_in(&mut workspace, &config).unwrap();
    assert_eq!(log.take(&workspace.db), queries_of("pkg/extra.py"));
    let warm: Vec<Vec<u8>> =
        ["modules.jsonl", "symbols.jsonl", "imports.jsonl"].iter().map(|f| std::fs::read(config.out.join(f)).unwrap()).collect();
    let mut cold_config = config.clone();
    cold_config.out = repo.tmp.path().join("cold");
    build_in(&mut Workspace::default(), &cold_config).unwrap();
    for (i, file) in ["modules.jsonl", "symbols.jsonl", "imports.jsonl"].iter().enumerate() {
        assert!(warm[i] == std::fs::read(cold_config.out.join(file)).unwrap(), "{file} differs from a cold build");
    }

    // A deleted file disappears from the outputs without running anything.
    std::fs::remove_file(repo.root.join("pkg/extra.py")).unwrap();
    build_in(&mut workspace, &config).unwrap();
    assert_eq!(log.take(&workspace.db), Vec::<String>::new());
    let modules = std::fs::read_to_string(config.out.join("modules.jsonl")).unwrap();
    assert!(!modules.contains("pkg/extra.py"));
}
