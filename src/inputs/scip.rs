//! Placeholder until the SCIP reader lands (branch `scip`): the API the joins use.

use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScipFileStats {
    pub symbols_defined: u32,
    pub definitions: u32,
    pub references: u32,
    pub references_to_other_files: u32,
    pub referencing_files: u32,
}

pub struct ScipIndex;

impl ScipIndex {
    pub fn load(path: &Path) -> anyhow::Result<ScipIndex> {
        anyhow::bail!("{}: SCIP indexes are not supported yet", path.display())
    }
    pub fn project_root(&self) -> &str {
        ""
    }
    pub fn documents(&self) -> Vec<&str> {
        Vec::new()
    }
    pub fn file_stats(&self, _relative_path: &str) -> Option<ScipFileStats> {
        None
    }
}

pub fn rebase(_project_root_uri: &str, _repo_root: &Path, relative_path: &str) -> Option<String> {
    Some(relative_path.to_string())
}
