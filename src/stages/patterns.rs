//! Syntactic pattern tags: tree-sitter queries from the top-level `queries/` directory, one
//! `.scm` per tag, compiled once and run on a file's tree while it is in memory.
