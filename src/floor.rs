//! The floor: what any tool that parses every file must pay — walk, read, hash (blake3),
//! decode and tree-sitter parse of every file, on all cores, and nothing else. The bench
//! script (`benches/floor.sh`) puts every build figure next to it.

use std::time::Instant;

use anyhow::Result;
use rayon::prelude::*;

use crate::config::Config;

/// What the floor measured.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    pub files: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// Walk, read, hash, decode and parse every file `config` selects.
pub fn measure(config: &Config) -> Result<Floor> {
    let started = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(config.jobs).build()?;
    let discovery = crate::discover::discover(config)?;
    let bytes: u64 = pool.install(|| {
        discovery
            .files
            .par_iter()
            .map_init(
                || {
                    let mut parser = tree_sitter::Parser::new();
                    parser.set_language(&tree_sitter_python::LANGUAGE.into()).expect("the grammar loads");
                    parser
                },
                |parser, file| {
                    let Ok(bytes) = std::fs::read(&file.abs_path) else { return 0 };
                    let Ok(decoded) = crate::source::decode(&bytes) else { return bytes.len() as u64 };
                    let tree = parser.parse(decoded.text.as_bytes(), None);
                    std::hint::black_box(tree);
                    bytes.len() as u64
                },
            )
            .sum()
    });
    Ok(Floor { files: discovery.files.len(), bytes, seconds: started.elapsed().as_secs_f64() })
}
