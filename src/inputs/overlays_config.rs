//! `--overlays-config FILE`: named sets of modules that get overlays, chosen with
//! `--overlays-set NAME` (or the file's `default`).
//!
//! ```yaml
//! default: api
//! sets:
//!   api:
//!     paths: ["pkg/**"]
//!     tags: [public-api]
//!     min_exports: 10
//!   hubs:
//!     min_fan_in: 20
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, anyhow};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::OverlaySet;
use crate::inputs::{check_glob, check_tag, located, read, yaml_error};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    default: Option<Spanned<String>>,
    sets: BTreeMap<String, SetEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetEntry {
    #[serde(default)]
    paths: Vec<Spanned<String>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    #[serde(default)]
    min_exports: Option<u32>,
    #[serde(default)]
    min_fan_in: Option<u32>,
    #[serde(default)]
    min_params: Option<u32>,
}

/// Read the overlays config and pick the set `name` (or the file's `default`; `None` when
/// neither names one).
pub fn load(path: &Path, name: Option<&str>) -> Result<Option<OverlaySet>> {
    let text = read(path)?;
    parse(path, &text, name)
}

pub fn parse(path: &Path, text: &str, name: Option<&str>) -> Result<Option<OverlaySet>> {
    let file: File = serde_saphyr::from_str(text).map_err(|e| yaml_error(path, &e))?;
    let mut sets = BTreeMap::new();
    for (set_name, entry) in &file.sets {
        let paths = entry.paths.iter().map(|p| check_glob(path, p, &format!("sets.{set_name}.paths"))).collect::<Result<Vec<_>>>()?;
        let tags = entry.tags.iter().map(|t| check_tag(path, t, &format!("sets.{set_name}.tags"))).collect::<Result<Vec<_>>>()?;
        let set = OverlaySet {
            name: set_name.clone(),
            paths,
            tags,
            min_exports: entry.min_exports,
            min_fan_in: entry.min_fan_in,
            min_params: entry.min_params,
        };
        if set.paths.is_empty() && set.tags.is_empty() && set.min_exports.is_none() && set.min_fan_in.is_none() && set.min_params.is_none() {
            return Err(anyhow!("{}: sets.{set_name}: the set has no criterion (paths, tags, min_exports, min_fan_in, min_params)", path.display()));
        }
        sets.insert(set_name.clone(), set);
    }
    let chosen = match (name, &file.default) {
        (Some(name), _) => Some(name.to_string()),
        (None, Some(default)) => {
            if !sets.contains_key(&default.value) {
                return Err(located(path, default.referenced.line(), default.referenced.column(), "default", format!("no set named {:?}", default.value)));
            }
            Some(default.value.clone())
        }
        (None, None) => None,
    };
    match chosen {
        None => Ok(None),
        Some(name) => match sets.remove(&name) {
            Some(set) => Ok(Some(set)),
            None => {
                let known: Vec<&String> = file.sets.keys().collect();
                Err(anyhow!("{}: no overlay set named {name:?} (sets: {known:?})", path.display()))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_named_or_default_set() {
        let text = "default: api\nsets:\n  api:\n    paths: [\"pkg/**\"]\n    min_exports: 3\n  hubs:\n    min_fan_in: 2\n";
        let api = parse(Path::new("o.yaml"), text, None).unwrap().unwrap();
        assert_eq!((api.name.as_str(), api.min_exports), ("api", Some(3)));
        let hubs = parse(Path::new("o.yaml"), text, Some("hubs")).unwrap().unwrap();
        assert_eq!(hubs.min_fan_in, Some(2));
        let missing = parse(Path::new("o.yaml"), text, Some("nope")).unwrap_err().to_string();
        assert_eq!(missing, "o.yaml: no overlay set named \"nope\" (sets: [\"api\", \"hubs\"])");
        assert!(parse(Path::new("o.yaml"), "sets:\n  empty: {}\n", Some("empty")).is_err());
    }
}
