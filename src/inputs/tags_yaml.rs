//! `--tags-yaml FILE`: manual tags by path glob and by rules over record fields, and user
//! pattern tags (tree-sitter queries, inline or in a file next to the YAML).
//!
//! ```yaml
//! tags:
//!   - tag: overlay-needed
//!     paths: ["pkg/api/**", "pkg/core.py"]
//!   - tag: big-hub
//!     when: ["exports >= 50", "tags contains public-api"]
//! queries:
//!   - tag: uses-requests
//!     query: |
//!       (call function: (attribute object: (identifier) @m (#eq? @m "requests")))
//!   - tag: custom
//!     file: queries/custom.scm
//! ```

use std::path::Path;

use anyhow::Result;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::{RuleCondition, RuleField, RuleOp, TagRule, TagsConfig, UserQuery};
use crate::inputs::{check_glob, check_tag, located, read, yaml_error};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tags: Vec<RuleEntry>,
    #[serde(default)]
    queries: Vec<QueryEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    tag: Spanned<String>,
    #[serde(default)]
    paths: Vec<Spanned<String>>,
    #[serde(default)]
    when: Option<Spanned<OneOrMany>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryEntry {
    tag: Spanned<String>,
    #[serde(default)]
    query: Option<Spanned<String>>,
    #[serde(default)]
    file: Option<Spanned<String>>,
}

/// Read and validate a tags YAML file.
pub fn load(path: &Path) -> Result<TagsConfig> {
    let text = read(path)?;
    parse(path, &text)
}

/// Parse `text` (the contents of `path`).
pub fn parse(path: &Path, text: &str) -> Result<TagsConfig> {
    let file: File = if text.trim().is_empty() {
        File { tags: Vec::new(), queries: Vec::new() }
    } else {
        serde_saphyr::from_str(text).map_err(|e| yaml_error(path, &e))?
    };
    let mut config = TagsConfig::default();
    for entry in file.tags {
        let tag = check_tag(path, &entry.tag, "tags[].tag")?;
        let paths = entry.paths.iter().map(|p| check_glob(path, p, "tags[].paths")).collect::<Result<Vec<_>>>()?;
        let (when, at) = match entry.when {
            None => (Vec::new(), (0, 0)),
            Some(spanned) => {
                let at = (spanned.referenced.line(), spanned.referenced.column());
                match spanned.value {
                    OneOrMany::One(one) => (vec![one], at),
                    OneOrMany::Many(many) => (many, at),
                }
            }
        };
        if paths.is_empty() && when.is_empty() {
            return Err(located(
                path,
                entry.tag.referenced.line(),
                entry.tag.referenced.column(),
                "tags[]",
                format!("tag {tag:?} has neither `paths` nor `when`: it would apply to nothing"),
            ));
        }
        let when = when
            .iter()
            .map(|w| parse_condition(w).map_err(|e| located(path, at.0, at.1, "tags[].when", e)))
            .collect::<Result<Vec<_>>>()?;
        config.rules.push(TagRule { tag, paths, when });
    }
    for entry in file.queries {
        let tag = check_tag(path, &entry.tag, "queries[].tag")?;
        let (line, column) = (entry.tag.referenced.line(), entry.tag.referenced.column());
        let (source, origin) = match (entry.query, entry.file) {
            (Some(query), None) => (query.value, (query.referenced.line(), query.referenced.column())),
            (None, Some(file)) => {
                let relative = path.parent().unwrap_or(Path::new(".")).join(&file.value);
                let source = read(&relative).map_err(|e| {
                    located(path, file.referenced.line(), file.referenced.column(), "queries[].file", e)
                })?;
                (source, (file.referenced.line(), file.referenced.column()))
            }
            _ => {
                return Err(located(path, line, column, "queries[]", format!("query {tag:?} needs exactly one of `query` and `file`")));
            }
        };
        if let Err(error) = crate::stages::patterns::PatternSet::compile(&[(tag.clone(), source.clone())]) {
            return Err(located(
                path,
                origin.0,
                origin.1,
                "queries[].query",
                format!(
                    "tree-sitter query {tag:?}: {:?} error at query line {} column {}: {}",
                    error.kind,
                    error.line,
                    error.column + 1,
                    error.message
                ),
            ));
        }
        config.queries.push(UserQuery { tag, source });
    }
    Ok(config)
}

/// `fan_in >= 20`, `exports < 5`, `tags contains star-import`, `not tags contains test`.
pub fn parse_condition(text: &str) -> Result<RuleCondition, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["tags", "contains", tag] => Ok(RuleCondition::HasTag(tag.to_string())),
        ["not", "tags", "contains", tag] => Ok(RuleCondition::LacksTag(tag.to_string())),
        [field, op, value] => {
            let field = RuleField::ALL
                .iter()
                .find(|(name, _)| name == field)
                .map(|(_, f)| *f)
                .ok_or_else(|| {
                    let known: Vec<&str> = RuleField::ALL.iter().map(|(n, _)| *n).collect();
                    format!("unknown field {field:?} in {text:?} (fields: {})", known.join(", "))
                })?;
            let op = match *op {
                "<" => RuleOp::Lt,
                "<=" => RuleOp::Le,
                "==" => RuleOp::Eq,
                "!=" => RuleOp::Ne,
                ">" => RuleOp::Gt,
                ">=" => RuleOp::Ge,
                other => return Err(format!("unknown operator {other:?} in {text:?} (use < <= == != > >=)")),
            };
            let value = value.parse::<u64>().map_err(|_| format!("{value:?} in {text:?} is not a non-negative integer"))?;
            Ok(RuleCondition::Compare { field, op, value })
        }
        _ => Err(format!(
            "cannot read condition {text:?}: expected `FIELD OP NUMBER`, `tags contains TAG` or `not tags contains TAG`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("tags.yaml"), text).unwrap_err().to_string()
    }

    #[test]
    fn reads_rules_and_queries() {
        let config = parse(
            Path::new("tags.yaml"),
            "tags:\n  - tag: api\n    paths: [\"pkg/**\"]\n  - tag: hub\n    when: fan_in >= 3\nqueries:\n  - tag: prints\n    query: '(call function: (identifier) @f (#eq? @f \"print\"))'\n",
        )
        .unwrap();
        assert_eq!(config.rules.len(), 2);
        assert_eq!(config.rules[1].when, vec![RuleCondition::Compare { field: RuleField::FanIn, op: RuleOp::Ge, value: 3 }]);
        assert_eq!(config.queries[0].tag, "prints");
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        assert_eq!(
            err("tags:\n  - tag: hub\n    when: fan_inn >= 3\n"),
            "tags.yaml:3:11: tags[].when: unknown field \"fan_inn\" in \"fan_inn >= 3\" (fields: fan_in, fan_out, exports, exports_maybe, reexports, star_imports, lines, symbols, imports, parse_errors)"
        );
        assert_eq!(err("tags:\n  - tag: Bad Tag\n    paths: [a]\n"), "tags.yaml:2:10: tags[].tag: invalid tag \"Bad Tag\": use lowercase letters, digits and - _ . :");
        assert_eq!(err("tags:\n  - tag: x\n    paths: [\"a[\"]\n"), "tags.yaml:3:13: tags[].paths: invalid glob: error parsing glob 'a[': unclosed character class; missing ']'");
        assert!(err("queries:\n  - tag: q\n    query: '(call'\n").starts_with("tags.yaml:3:12: queries[].query: tree-sitter query \"q\""));
        assert!(err("tagz: []\n").starts_with("tags.yaml:1:1: "), "{}", err("tagz: []\n"));
        assert_eq!(err("tags:\n  - tag: lonely\n"), "tags.yaml:2:10: tags[]: tag \"lonely\" has neither `paths` nor `when`: it would apply to nothing");
    }
}
