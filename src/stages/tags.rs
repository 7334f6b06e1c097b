//! Tags: short labels that slice the records ("public API modules with star imports", "hubs
//! with low coverage"). Computed from the module's facts, its place in the import graph and
//! its syntax (pattern tags), plus manual tags and rules from `--tags-yaml`; and the overlay
//! decision that reads them.
//!
//! Tags are a function of per-module facts that are already computed (the record's counts,
//! fan-in/out, cycle membership, pattern tags) and of the settings: they need no tree, so a
//! changed tags YAML re-tags modules and re-renders the rows whose tags changed, and parses
//! nothing (a changed user *query* does re-run the pattern tags, which need trees).

use std::collections::BTreeSet;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;

use crate::config::{Config, OverlaySet, RuleCondition, RuleField, RuleOp, TagRule, Thresholds};

/// Bump when the computed tags or the overlay decision change.
pub const TAGS_VERSION: u32 = 1;

/// The computed tags, documented in the README (`Tags`).
pub const COMPUTED_TAGS: &[&str] = &[
    "entrypoint",
    "export-hub",
    "fan-in-hub",
    "has-all",
    "has-stub",
    "import-cycle",
    "incomplete-exports",
    "low-coverage",
    "many-params",
    "package",
    "private",
    "public-api",
    "reexport-hub",
    "star-import",
    "syntax-error",
    "test",
    "type-checking-imports",
    "type-errors",
];

/// What the tags of one module are computed from (everything but the settings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TagFacts {
    pub path: String,
    pub is_package: bool,
    pub fan_in: u32,
    pub fan_out: u32,
    pub in_cycle: bool,
    pub exports: u32,
    pub exports_maybe: u32,
    pub exports_complete: bool,
    pub reexports: u32,
    pub star_imports: u32,
    pub has_all: bool,
    pub lines: u32,
    pub symbols: u32,
    pub imports: u32,
    pub parse_errors: u32,
    pub has_main_guard: bool,
    pub type_checking_imports: bool,
    pub max_params: u32,
    pub has_stub: bool,
    /// A module below this package gets an overlay (mypy reads a stub package only through
    /// its `__init__.pyi`, so the package needs one too).
    pub overlay_parent: bool,
    /// Line rate from the coverage report, in thousandths.
    pub coverage_permille: Option<u32>,
    /// Errors in the pyrefly report.
    pub type_errors: Option<u32>,
    /// Tags of the syntactic patterns that matched (built-in and user queries), sorted.
    pub pattern_tags: Vec<String>,
}

impl TagFacts {
    fn field(&self, field: RuleField) -> u64 {
        u64::from(match field {
            RuleField::FanIn => self.fan_in,
            RuleField::FanOut => self.fan_out,
            RuleField::Exports => self.exports,
            RuleField::ExportsMaybe => self.exports_maybe,
            RuleField::Reexports => self.reexports,
            RuleField::StarImports => self.star_imports,
            RuleField::Lines => self.lines,
            RuleField::Symbols => self.symbols,
            RuleField::Imports => self.imports,
            RuleField::ParseErrors => self.parse_errors,
        })
    }
}

/// A module's overlay decision: whether it gets `overlays/<path>.pyi`, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OverlayDecision {
    pub needed: bool,
    /// Sorted: `export-hub`, `overlay-needed`, `parent-of-overlay`, `set:<name>`, `star-import`.
    pub reasons: Vec<String>,
}

/// The overlay reason of a package whose submodule gets an overlay.
pub const PARENT_OF_OVERLAY: &str = "parent-of-overlay";

/// A module's tags and overlay decision: the value of its `tags(path)` node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Labels {
    pub tags: Vec<String>,
    pub overlay: OverlayDecision,
}

struct CompiledRule {
    rule: TagRule,
    paths: Option<GlobSet>,
}

/// The settings tags and the overlay decision read, compiled once per build.
pub struct TagSettings {
    thresholds: Thresholds,
    rules: Vec<CompiledRule>,
    overlay_set: Option<(OverlaySet, Option<GlobSet>)>,
    /// Digest of the settings every module's tags read (thresholds, `when`-only rules, the
    /// overlay set). Path rules are keyed per module: only the ones matching it.
    shared_digest: String,
    /// The user's pattern queries (their tags reach each module through `pattern_tags`).
    queries: Vec<crate::config::UserQuery>,
    /// `low-coverage` under this line rate, in thousandths.
    low_coverage_permille: u32,
}

fn globset(globs: &[String]) -> Option<GlobSet> {
    if globs.is_empty() {
        return None;
    }
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        builder.add(Glob::new(glob).expect("globs are validated when the configuration is read"));
    }
    Some(builder.build().expect("globs are validated when the configuration is read"))
}

impl TagSettings {
    pub fn new(config: &Config) -> Self {
        let rules: Vec<CompiledRule> =
            config.tags.rules.iter().map(|rule| CompiledRule { rule: rule.clone(), paths: globset(&rule.paths) }).collect();
        let overlay_set = config.overlay_set.clone().map(|set| {
            let paths = globset(&set.paths);
            (set, paths)
        });
        let shared = (&config.thresholds, config.tags.rules.iter().filter(|r| r.paths.is_empty()).collect::<Vec<_>>(), &config.overlay_set);
        let shared_digest = blake3::hash(&serde_json::to_vec(&shared).expect("settings serialize")).to_hex()[..16].to_string();
        let low_coverage_permille = (config.inputs.low_coverage * 1000.0).round() as u32;
        let shared = (&shared_digest, low_coverage_permille);
        let shared_digest = blake3::hash(&serde_json::to_vec(&shared).expect("settings serialize")).to_hex()[..16].to_string();
        TagSettings {
            thresholds: config.thresholds.clone(),
            rules,
            overlay_set,
            shared_digest,
            queries: config.tags.queries.clone(),
            low_coverage_permille,
        }
    }

    /// The settings `path`'s tags and decision read, as a short digest for its cache key: a
    /// path rule that does not match `path` is not part of it.
    pub fn digest_for(&self, path: &str) -> String {
        let matching: Vec<&TagRule> = self
            .rules
            .iter()
            .filter(|r| r.paths.as_ref().is_some_and(|p| p.is_match(path)))
            .map(|r| &r.rule)
            .collect();
        if matching.is_empty() {
            return self.shared_digest.clone();
        }
        let digest = blake3::hash(&serde_json::to_vec(&(&self.shared_digest, matching)).expect("rules serialize"));
        digest.to_hex()[..16].to_string()
    }

    /// The tags and overlay decision of a module.
    pub fn labels(&self, facts: &TagFacts) -> Labels {
        let tags = self.tags(facts);
        let overlay = self.overlay(facts, &tags);
        Labels { tags, overlay }
    }

    /// Digest of all the settings (for the build key and the layout digest: a change re-keys
    /// every module).
    pub fn digest(&self) -> String {
        let rules: Vec<&TagRule> = self.rules.iter().map(|r| &r.rule).collect();
        let value = (&self.shared_digest, rules, &self.queries);
        blake3::hash(&serde_json::to_vec(&value).expect("rules serialize")).to_hex()[..16].to_string()
    }

    /// The tags of a module, sorted.
    pub fn tags(&self, facts: &TagFacts) -> Vec<String> {
        let t = &self.thresholds;
        let mut tags: BTreeSet<String> = facts.pattern_tags.iter().cloned().collect();
        let private = is_private_path(&facts.path);
        let test = is_test_path(&facts.path);
        let computed = [
            ("package", facts.is_package),
            ("test", test),
            ("private", private),
            ("public-api", !private && !test),
            ("star-import", facts.star_imports > 0),
            ("has-all", facts.has_all),
            ("export-hub", facts.exports + facts.exports_maybe >= t.export_hub),
            ("reexport-hub", facts.reexports >= t.reexport_hub),
            ("fan-in-hub", facts.fan_in >= t.fan_in),
            ("many-params", facts.max_params >= t.params),
            ("import-cycle", facts.in_cycle),
            ("entrypoint", facts.has_main_guard || facts.path == "__main__.py" || facts.path.ends_with("/__main__.py")),
            ("type-checking-imports", facts.type_checking_imports),
            ("syntax-error", facts.parse_errors > 0),
            ("incomplete-exports", !facts.exports_complete),
            ("has-stub", facts.has_stub),
            ("low-coverage", facts.coverage_permille.is_some_and(|c| c < self.low_coverage_permille)),
            ("type-errors", facts.type_errors.is_some_and(|e| e > 0)),
        ];
        tags.extend(computed.iter().filter(|(_, on)| *on).map(|(tag, _)| tag.to_string()));
        // Rules in file order; each sees the tags given so far.
        for compiled in &self.rules {
            let rule = &compiled.rule;
            let path_ok = compiled.paths.as_ref().is_none_or(|p| p.is_match(&facts.path));
            if path_ok && rule.when.iter().all(|c| holds(c, facts, &tags)) {
                tags.insert(rule.tag.clone());
            }
        }
        tags.into_iter().collect()
    }

    /// Whether a module gets an overlay: it star-imports, is an export hub, is tagged
    /// `overlay-needed`, or the chosen overlay set selects it.
    pub fn overlay(&self, facts: &TagFacts, tags: &[String]) -> OverlayDecision {
        let mut reasons = Vec::new();
        if facts.star_imports > 0 {
            reasons.push("star-import".to_string());
        }
        if facts.exports + facts.exports_maybe >= self.thresholds.export_hub {
            reasons.push("export-hub".to_string());
        }
        if facts.overlay_parent {
            reasons.push(PARENT_OF_OVERLAY.to_string());
        }
        if tags.iter().any(|t| t == "overlay-needed") {
            reasons.push("overlay-needed".to_string());
        }
        if let Some((set, paths)) = &self.overlay_set {
            let selected = paths.as_ref().is_none_or(|p| p.is_match(&facts.path))
                && (set.tags.is_empty() || set.tags.iter().any(|t| tags.contains(t)))
                && set.min_exports.is_none_or(|n| facts.exports + facts.exports_maybe >= n)
                && set.min_fan_in.is_none_or(|n| facts.fan_in >= n)
                && set.min_params.is_none_or(|n| facts.max_params >= n);
            if selected {
                reasons.push(format!("set:{}", set.name));
            }
        }
        // A module that failed to parse gets no overlay: its surface is not known.
        if facts.parse_errors > 0 {
            reasons.clear();
        }
        reasons.sort();
        OverlayDecision { needed: !reasons.is_empty(), reasons }
    }
}

fn holds(condition: &RuleCondition, facts: &TagFacts, tags: &BTreeSet<String>) -> bool {
    match condition {
        RuleCondition::HasTag(tag) => tags.contains(tag),
        RuleCondition::LacksTag(tag) => !tags.contains(tag),
        RuleCondition::Compare { field, op, value } => {
            let actual = facts.field(*field);
            match op {
                RuleOp::Lt => actual < *value,
                RuleOp::Le => actual <= *value,
                RuleOp::Eq => actual == *value,
                RuleOp::Ne => actual != *value,
                RuleOp::Gt => actual > *value,
                RuleOp::Ge => actual >= *value,
            }
        }
    }
}

/// A path with a component (directory or module) starting with `_`, dunders such as
/// `__init__.py` and `__main__.py` excepted.
pub fn is_private_path(path: &str) -> bool {
    path.split('/').any(|part| {
        let stem = part.strip_suffix(".py").unwrap_or(part);
        stem.starts_with('_') && !(stem.starts_with("__") && stem.ends_with("__"))
    })
}

/// Tests by pytest's and unittest's conventions: a `test`/`tests` directory, `test_*.py`,
/// `*_test.py`, `conftest.py`.
pub fn is_test_path(path: &str) -> bool {
    let mut parts = path.split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            let stem = part.strip_suffix(".py").unwrap_or(part);
            return stem.starts_with("test_") || stem.ends_with("_test") || stem == "conftest" || stem == "tests" || stem == "test";
        }
        if part == "test" || part == "tests" {
            return true;
        }
    }
    false
}

impl OverlayDecision {
    /// Selected for itself, not only as the parent of an overlaid module.
    pub fn selected_for_itself(&self) -> bool {
        self.reasons.iter().any(|r| r != PARENT_OF_OVERLAY)
    }

    pub fn is_parent(&self) -> bool {
        self.reasons.iter().any(|r| r == PARENT_OF_OVERLAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TagsConfig;

    fn config() -> Config {
        Config::new("/r".into(), "/r/out".into())
    }

    #[test]
    fn path_conventions() {
        assert!(is_private_path("pkg/_impl.py") && is_private_path("_vendor/x.py"));
        assert!(!is_private_path("pkg/__init__.py") && !is_private_path("pkg/__main__.py"));
        assert!(is_test_path("tests/unit/a.py") && is_test_path("pkg/test_a.py") && is_test_path("pkg/a_test.py"));
        assert!(is_test_path("conftest.py") && !is_test_path("pkg/testing.py") && !is_test_path("contest.py"));
    }

    #[test]
    fn computed_tags_rules_and_overlay_decision() {
        let mut config = config();
        config.thresholds.export_hub = 3;
        config.tags = TagsConfig {
            rules: vec![
                TagRule { tag: "overlay-needed".into(), paths: vec!["pkg/special.py".into()], when: vec![] },
                TagRule {
                    tag: "busy".into(),
                    paths: vec![],
                    when: vec![
                        RuleCondition::Compare { field: RuleField::FanIn, op: RuleOp::Ge, value: 2 },
                        RuleCondition::HasTag("public-api".into()),
                    ],
                },
            ],
            queries: vec![],
        };
        let settings = TagSettings::new(&config);
        let facts = TagFacts { path: "pkg/mod.py".into(), fan_in: 2, exports: 2, exports_maybe: 1, star_imports: 1, exports_complete: true, ..TagFacts::default() };
        let tags = settings.tags(&facts);
        assert_eq!(tags, ["busy", "export-hub", "public-api", "star-import"]);
        let decision = settings.overlay(&facts, &tags);
        assert_eq!(decision, OverlayDecision { needed: true, reasons: vec!["export-hub".into(), "star-import".into()] });
        let special = TagFacts { path: "pkg/special.py".into(), exports_complete: true, ..TagFacts::default() };
        let tags = settings.tags(&special);
        assert_eq!(tags, ["overlay-needed", "public-api"]);
        assert_eq!(settings.overlay(&special, &tags).reasons, ["overlay-needed"]);
        // A path rule is part of the key of the paths it matches only.
        assert_eq!(settings.digest_for("pkg/mod.py"), settings.digest_for("pkg/other.py"));
        assert_ne!(settings.digest_for("pkg/mod.py"), settings.digest_for("pkg/special.py"));
    }
}
