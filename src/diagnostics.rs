//! Problems found while scanning: one per file, with its repo-relative path.
//!
//! A problem never stops a build. File errors (unreadable, undecodable, invalid path) make the
//! exit code 1; skips by policy (oversized), symlink loops (which hide no file) and syntax
//! errors are reported but are not errors of the run.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The file is larger than `--max-file-bytes`; skipped.
    Oversized,
    /// The file or directory could not be read (permissions, I/O error, vanished); skipped.
    Unreadable,
    /// The bytes are not valid in the file's declared (PEP 263) or default encoding; skipped.
    Undecodable,
    /// A symlink points back into one of its ancestors; not followed.
    SymlinkLoop,
    /// The path is not valid UTF-8, so it has no portable name; skipped.
    InvalidPath,
    /// The module has syntax errors; it is still processed with what could be read.
    Syntax,
    /// A relative import climbs above the top-level package, or an in-repository module does
    /// not exist. The import row stays, flagged `unresolved`.
    UnresolvedImport,
    /// Validation: `__all__` names something the module never binds (importing `*` from it
    /// raises AttributeError).
    AllUnbound,
    /// Validation: a name appears twice in `__all__`.
    AllDuplicate,
    /// Validation: a public module with public definitions has no docstring.
    MissingDocstring,
    /// Validation: the `.pyi` stub beside a module declares other names than the module
    /// exports.
    StubMismatch,
    /// Paths in an input (coverage, pyrefly, SCIP) that match no module of the build.
    InputUnmatched,
    /// A CODEOWNERS line that does not parse (GitHub skips it too).
    CodeownersLine,
    /// An input that could not contribute (no CODEOWNERS, not a git repository, a shallow
    /// clone): its fields are null.
    InputNote,
}

impl ProblemKind {
    /// Whether this problem means some input was lost (exit code 1).
    pub fn is_file_error(self) -> bool {
        matches!(self, Self::Unreadable | Self::Undecodable | Self::InvalidPath)
    }

    /// Whether the file was left out of the outputs.
    pub fn is_skip(self) -> bool {
        !matches!(self, Self::Syntax | Self::UnresolvedImport) && !self.is_warning()
    }

    /// A validation warning: reported and counted, never an error of the run.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            Self::AllUnbound
                | Self::AllDuplicate
                | Self::MissingDocstring
                | Self::StubMismatch
                | Self::InputUnmatched
                | Self::CodeownersLine
                | Self::InputNote
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Oversized => "skipped (too large)",
            Self::Unreadable => "unreadable",
            Self::Undecodable => "undecodable",
            Self::SymlinkLoop => "symlink loop",
            Self::InvalidPath => "invalid path",
            Self::Syntax => "syntax error",
            Self::UnresolvedImport => "unresolved import",
            Self::AllUnbound => "__all__ name never bound",
            Self::AllDuplicate => "duplicate __all__ entry",
            Self::MissingDocstring => "public module without docstring",
            Self::StubMismatch => "stub differs from the module's exports",
            Self::InputUnmatched => "input paths matching no module",
            Self::CodeownersLine => "CODEOWNERS line skipped",
            Self::InputNote => "input not joined",
        }
    }
}

/// One reported problem; written to `diagnostics.jsonl` sorted by (path, kind, line).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Problem {
    /// Repo-relative `/` path (or the lossy form of an invalid path).
    pub path: String,
    pub kind: ProblemKind,
    /// 1-based line of the first error, for syntax errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub message: String,
}

/// The message of an unresolved import ends with its target: see [`Problem::import_target`].
const UNRESOLVED_PREFIX: &str = "cannot resolve import of ";

impl Problem {
    pub fn new(path: impl Into<String>, kind: ProblemKind, message: impl Into<String>) -> Self {
        Problem { path: path.into(), kind, line: None, message: message.into() }
    }

    /// An import of `target` at `line` of `path` that does not resolve.
    pub fn unresolved_import(path: impl Into<String>, line: u32, target: &str) -> Self {
        let mut problem = Problem::new(path, ProblemKind::UnresolvedImport, format!("{UNRESOLVED_PREFIX}{target}"));
        problem.line = Some(line);
        problem
    }

    /// The target module of an unresolved import (absolute, or with its leading dots when it
    /// climbs above the top-level package).
    pub fn import_target(&self) -> Option<&str> {
        match self.kind {
            ProblemKind::UnresolvedImport => self.message.strip_prefix(UNRESOLVED_PREFIX),
            _ => None,
        }
    }
}
