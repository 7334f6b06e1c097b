//! Validation warnings: names in `__all__` the module never binds, duplicate `__all__`
//! entries, public modules without a docstring. Never errors: counted in the summary and
//! listed in `diagnostics.jsonl` with their line.

use serde::{Deserialize, Serialize};

use crate::db::{Db, Project, SourceFile};
use crate::diagnostics::ProblemKind;
use crate::stages::exports::exports;
use crate::stages::outline::outline;
use crate::stages::record::module_docstring;
use crate::stages::resolve::module_index;
use crate::stages::scope::module_scope;
use crate::stages::tags::{is_private_path, is_test_path};

/// One warning about a module: its kind, line (1-based) and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub kind: ProblemKind,
    pub line: Option<u32>,
    pub message: String,
}

/// The validation warnings of `file`.
#[salsa::tracked(returns(ref))]
pub fn module_warnings(db: &dyn Db, file: SourceFile) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let exports = exports(db, file);
    let scope = module_scope(db, file);
    // Read only for a warning's line: after the cross-module stages a one-shot build has let
    // go of the loaded texts (see `crate::db::LoadedText`).
    let text = || crate::db::source_text(db, file);
    if let Some(all) = &exports.all {
        let index = module_index(db, Project::get(db));
        let module = file.module(db);
        // Names a `__getattr__` or dynamic globals may provide cannot be judged.
        // …and so may a star import whose names are unknown.
        let judged = scope.dynamic_globals.is_none()
            && !exports.bound.contains_key("__getattr__")
            && exports.all_complete
            && exports.incomplete_reasons.iter().all(|r| r.starts_with("__all__ names "));
        let mut seen = std::collections::BTreeSet::new();
        for name in all {
            if !seen.insert(name) {
                warnings.push(Warning {
                    kind: ProblemKind::AllDuplicate,
                    line: all_entry_line(text(), name, 2),
                    message: format!("{name:?} appears more than once in __all__"),
                });
                continue;
            }
            let bound = exports.bound.contains_key(name) || (file.is_package(db) && index.exists(&format!("{module}.{name}")));
            if judged && !bound {
                warnings.push(Warning {
                    kind: ProblemKind::AllUnbound,
                    line: all_entry_line(text(), name, 1),
                    message: format!("__all__ names {name:?}, which the module never binds: `from {module} import *` raises AttributeError"),
                });
            }
        }
    }
    if let Some(stub) = crate::stages::stub::stub_star_names(db, file)
        && exports.complete
    {
        let stub: std::collections::BTreeSet<&String> = stub.iter().collect();
        let module: std::collections::BTreeSet<&String> =
            exports.names.iter().chain(&exports.maybe).filter(|n| crate::stages::stub::is_identifier(n)).collect();
        if stub != module {
            let only_stub: Vec<&&String> = stub.difference(&module).take(5).collect();
            let only_module: Vec<&&String> = module.difference(&stub).take(5).collect();
            warnings.push(Warning {
                kind: ProblemKind::StubMismatch,
                line: None,
                message: format!(
                    "{}i: `from m import *` binds other names on the stub than on the module (stub only: {only_stub:?}; module only: {only_module:?})",
                    file.path(db)
                ),
            });
        }
    }
    let path = file.path(db);
    let public_symbols = outline(db, file).decode().symbols.iter().any(|s| s.is_public && !s.qualname.contains('.'));
    // A module with syntax errors may have a docstring the parse lost.
    let parsed = crate::stages::parse::syntax_errors(db, file).count == 0;
    if parsed && public_symbols && !is_private_path(path) && !is_test_path(path) && module_docstring(db, file).is_none() {
        warnings.push(Warning { kind: ProblemKind::MissingDocstring, line: Some(1), message: "public module without a docstring".into() });
    }
    warnings
}

/// The line of the `nth` quoted occurrence of `name` after the first `__all__` (1-based).
fn all_entry_line(text: &str, name: &str, nth: usize) -> Option<u32> {
    let start = text.find("__all__")?;
    let mut found = 0;
    let mut at = None;
    for quote in ['"', '\''] {
        let needle = format!("{quote}{name}{quote}");
        for (i, _) in text[start..].match_indices(&needle) {
            let position = start + i;
            found += 1;
            if found == nth || at.is_none() {
                at = Some(position);
            }
            if found == nth {
                break;
            }
        }
    }
    let position = at.unwrap_or(start);
    Some(text[..position].matches('\n').count() as u32 + 1)
}
