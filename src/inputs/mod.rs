//! Files a build reads besides the sources — configuration (`--tags-yaml`,
//! `--overlays-config`, `[tool.codeintel-enrich]` in `pyproject.toml`) and external inputs
//! (SCIP, pyrefly, coverage.py, CODEOWNERS, git history; joined in [`joins`]). Each is read
//! and validated before any output is touched; an error names the file, the position (line
//! and column, or byte offset) and the key.

pub mod coverage;
pub mod history;
pub mod joins;
pub mod overlays_config;
pub mod owners;
pub mod pyproject;
pub mod pyrefly;
pub mod scip;
pub mod tags_yaml;

use std::path::Path;

use anyhow::{Result, anyhow};

/// `file:line:column: key: message` — the shape of every configuration error.
pub(crate) fn located(path: &Path, line: u64, column: u64, key: &str, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}:{line}:{column}: {key}: {message}", path.display())
}

/// Read a configuration file as UTF-8.
pub(crate) fn read(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| anyhow!("{}: not UTF-8: {e}", path.display()))
}

/// A YAML error from serde-saphyr, as `file:line:column: message`.
pub(crate) fn yaml_error(path: &Path, error: &serde_saphyr::Error) -> anyhow::Error {
    let message = error.without_snippet().to_string();
    let message = message.lines().next().unwrap_or("invalid YAML").trim().to_string();
    match error.location() {
        Some(location) => anyhow!("{}:{}:{}: {message}", path.display(), location.line(), location.column()),
        None => anyhow!("{}: {message}", path.display()),
    }
}

/// Validate a repo-relative glob.
pub(crate) fn check_glob(path: &Path, value: &serde_saphyr::Spanned<String>, key: &str) -> Result<String> {
    globset::Glob::new(&value.value)
        .map_err(|e| located(path, value.referenced.line(), value.referenced.column(), key, format!("invalid glob: {e}")))?;
    Ok(value.value.clone())
}

/// Validate a tag name: lowercase letters, digits and `-_.:`, starting with a letter or digit.
pub(crate) fn check_tag(path: &Path, value: &serde_saphyr::Spanned<String>, key: &str) -> Result<String> {
    let tag = &value.value;
    let ok = tag.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && tag.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.:".contains(c));
    if !ok {
        return Err(located(
            path,
            value.referenced.line(),
            value.referenced.column(),
            key,
            format!("invalid tag {tag:?}: use lowercase letters, digits and - _ . :"),
        ));
    }
    Ok(tag.clone())
}
