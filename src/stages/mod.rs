//! The per-file stages, each a salsa tracked query named for what it returns:
//! [`parse::parsed_module`] (the tree, `no_eq`, LRU-bounded), [`parse::syntax_errors`],
//! [`outline::outline`], [`imports::imports`] and [`record::module_record`].
//!
//! Stages return values, never `Result`s, for anything about the user's Python: a syntax
//! error yields a tree with error nodes and whatever could still be read.

pub mod imports;
pub mod outline;
pub mod parse;
pub mod patterns;
pub mod record;
pub mod text;
pub mod cached;
pub mod exports;
pub mod flow;
pub mod graph;
pub mod resolve;
pub mod scope;
pub mod stub;
pub mod tags;
pub mod validate;
