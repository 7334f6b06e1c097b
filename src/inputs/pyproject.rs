//! `[tool.codeintel-enrich]` in `<root>/pyproject.toml`, as ruff, mypy and pyright read theirs:
//! defaults the command line overrides.
//!
//! ```toml
//! [tool.codeintel-enrich]
//! python-version = "3.11"
//! python-platform = "linux"
//! export-hub-threshold = 50
//! reexport-hub-threshold = 20
//! fan-in-threshold = 20
//! param-count-threshold = 10
//! tags-yaml = "codeintel-tags.yaml"        # relative to the root
//! overlays-config = "codeintel-overlays.yaml"
//! overlays-set = "api"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use serde::Deserialize;

/// The settings of `[tool.codeintel-enrich]` (all optional).
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolSettings {
    pub python_version: Option<String>,
    pub python_platform: Option<String>,
    pub export_hub_threshold: Option<u32>,
    pub reexport_hub_threshold: Option<u32>,
    pub fan_in_threshold: Option<u32>,
    pub param_count_threshold: Option<u32>,
    pub tags_yaml: Option<PathBuf>,
    pub overlays_config: Option<PathBuf>,
    pub overlays_set: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PyProject {
    #[serde(default)]
    tool: Option<Tool>,
}

#[derive(Debug, Deserialize)]
struct Tool {
    #[serde(rename = "codeintel-enrich", default)]
    codeintel_enrich: Option<ToolSettings>,
}

/// The settings in `root/pyproject.toml`; empty when there is no such file or table. Paths
/// are made relative to `root`.
pub fn load(root: &Path) -> Result<ToolSettings> {
    let path = root.join("pyproject.toml");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(ToolSettings::default()) };
    parse(&path, &text, root)
}

pub fn parse(path: &Path, text: &str, root: &Path) -> Result<ToolSettings> {
    let project: PyProject = toml::from_str(text).map_err(|e| {
        let position = e.span().map(|span| {
            let line = text[..span.start].matches('\n').count() + 1;
            let column = span.start - text[..span.start].rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{line}:{column}: ")
        });
        anyhow!("{}:{}{}", path.display(), position.unwrap_or_default(), e.message())
    })?;
    let mut settings = project.tool.and_then(|t| t.codeintel_enrich).unwrap_or_default();
    settings.tags_yaml = settings.tags_yaml.map(|p| root.join(p));
    settings.overlays_config = settings.overlays_config.map(|p| root.join(p));
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tool_table() {
        let text = "[project]\nname = 'x'\n[tool.codeintel-enrich]\npython-version = '3.10'\nexport-hub-threshold = 7\ntags-yaml = 'tags.yaml'\n";
        let settings = parse(Path::new("pyproject.toml"), text, Path::new("/r")).unwrap();
        assert_eq!(settings.python_version.as_deref(), Some("3.10"));
        assert_eq!(settings.export_hub_threshold, Some(7));
        assert_eq!(settings.tags_yaml, Some(PathBuf::from("/r/tags.yaml")));
        assert_eq!(parse(Path::new("p.toml"), "[tool.other]\nx = 1\n", Path::new("/r")).unwrap(), ToolSettings::default());
        let error = parse(Path::new("pyproject.toml"), "[tool.codeintel-enrich]\nexport-hub-treshold = 3\n", Path::new("/r"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("pyproject.toml:2:1: unknown field `export-hub-treshold`"), "{error}");
    }
}
