//! `codeintel-enrich`: an incremental build engine that turns a Python repository into
//! code-intelligence artifacts (outline, imports, module records).
//!
//! The layers, top to bottom: [`cli`] (clap, the only module that knows about it) builds a
//! plain [`config::Config`]; [`build`] runs discovery, loads sources into the salsa
//! [`db::Database`], evaluates the per-file [`stages`] in parallel and hands the rows to the
//! [`writers`]. See `ARCHITECTURE.md` for the invariants.

pub mod build;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod diagnostics;
pub mod digest;
pub mod discover;
pub mod explain;
pub mod floor;
pub mod inputs;
pub mod module_path;
pub mod query;
pub mod rows;
pub mod sinks;
pub mod source;
pub mod stat;
pub mod stages;
pub mod writers;
#[cfg(target_os = "linux")]
pub mod zstd_contexts;
