//! The one integration test binary: fixture snapshots, the `ast` oracle, determinism, the CLI
//! contract and in-process incrementality.

mod architecture;
mod cli;
mod columnar;
mod cache;
mod determinism;
mod exports;
mod fixtures;
mod incremental;
mod joins;
mod inputs;
mod oracle;
mod overlays;
mod scip;
mod support;
