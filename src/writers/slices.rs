//! Slices: one compact JSON document per selected module for AI tools — its record, its
//! outline, who imports it and what it imports — small enough to put in a prompt.
//!
//! A slice is a pure function of three artifacts (`modules.jsonl`, `symbols.jsonl`,
//! `graphs/imports.json`), so it is rendered from their bytes after they are assembled, for
//! the modules `--slices-filter` selects (all when empty), and an unchanged slice is not
//! rewritten.

use std::collections::BTreeMap;

use globset::GlobSet;
use serde_json::{Map, Value, json};

/// Fields of a module record left out of its slice (content and bookkeeping, not meaning).
const RECORD_FIELDS_LEFT_OUT: &[&str] = &["content_hash", "encoding"];

/// At most this many symbols in a slice (public first, in document order); the slice says
/// how many were left out.
const MAX_SYMBOLS: usize = 200;

/// `slices/<path>.json` for each module of `modules` whose path `filter` matches (all when
/// `None`), from the assembled artifacts.
pub fn render(modules: &[u8], symbols: &[u8], graph: &[u8], filter: Option<&GlobSet>) -> Vec<(String, Vec<u8>)> {
    let graph: BTreeMap<String, Vec<String>> = serde_json::from_slice(graph).unwrap_or_default();
    let mut imported_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (module, targets) in &graph {
        for target in targets {
            imported_by.entry(target).or_default().push(module);
        }
    }
    let mut by_path: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let selected = |path: &str| filter.is_none_or(|f| f.is_match(path));
    for line in symbols.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        // Cheap path test before parsing: rows start with their sorted keys, `decorators` …
        let Ok(row) = serde_json::from_slice::<Value>(line) else { continue };
        let Some(path) = row["path"].as_str() else { continue };
        if selected(path) {
            by_path.entry(path.to_string()).or_default().push(row);
        }
    }
    let mut out = Vec::new();
    for line in modules.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(Value::Object(mut record)) = serde_json::from_slice::<Value>(line) else { continue };
        let Some(path) = record.get("path").and_then(Value::as_str).map(str::to_string) else { continue };
        if !selected(&path) {
            continue;
        }
        for field in RECORD_FIELDS_LEFT_OUT {
            record.remove(*field);
        }
        let module = record.get("module").and_then(Value::as_str).unwrap_or("").to_string();
        let mut symbols = by_path.remove(&path).unwrap_or_default();
        symbols.sort_by_key(|s| (!s["is_public"].as_bool().unwrap_or(false), s["line"].as_u64().unwrap_or(0)));
        let total = symbols.len();
        let outline: Vec<Value> = symbols.iter().take(MAX_SYMBOLS).map(outline_entry).collect();
        let mut slice = Map::new();
        slice.insert("module".into(), Value::Object(record));
        slice.insert("outline".into(), Value::Array(outline));
        slice.insert("outline_left_out".into(), json!(total.saturating_sub(MAX_SYMBOLS)));
        let mut by = imported_by.get(module.as_str()).cloned().unwrap_or_default();
        by.sort_unstable();
        slice.insert("imported_by".into(), json!(by));
        let mut bytes = serde_json::to_vec(&super::jsonl::sorted(Value::Object(slice))).expect("slices serialize");
        bytes.push(b'\n');
        out.push((format!("slices/{path}.json"), bytes));
    }
    out
}

/// A symbol as one line of an outline: `def name(params) -> returns`, its kind, where, and
/// its docstring's first line.
fn outline_entry(symbol: &Value) -> Value {
    let params: Vec<String> = symbol["params"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let name = p["name"].as_str().unwrap_or("");
                    let prefix = match p["kind"].as_str() {
                        Some("var_positional") => "*",
                        Some("var_keyword") => "**",
                        _ => "",
                    };
                    let annotation = p["annotation"].as_str().map(|a| format!(": {a}")).unwrap_or_default();
                    let default = if p["has_default"].as_bool().unwrap_or(false) { "=…" } else { "" };
                    format!("{prefix}{name}{annotation}{default}")
                })
                .collect()
        })
        .unwrap_or_default();
    let kind = symbol["kind"].as_str().unwrap_or("");
    let qualname = symbol["qualname"].as_str().unwrap_or("");
    let signature = if kind == "class" {
        let bases: Vec<&str> = symbol["bases"].as_array().map(|b| b.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if bases.is_empty() { format!("class {qualname}") } else { format!("class {qualname}({})", bases.join(", ")) }
    } else {
        let returns = symbol["returns"].as_str().map(|r| format!(" -> {r}")).unwrap_or_default();
        let asyncness = if symbol["is_async"].as_bool().unwrap_or(false) { "async " } else { "" };
        format!("{asyncness}def {qualname}({}){returns}", params.join(", "))
    };
    json!({
        "signature": signature,
        "kind": kind,
        "line": symbol["line"],
        "public": symbol["is_public"],
        "decorators": symbol["decorators"],
        "doc": symbol["docstring"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_has_the_record_outline_and_neighbours() {
        let modules = br#"{"content_hash":"x","imports":["pkg.b"],"module":"pkg.a","path":"pkg/a.py"}
{"content_hash":"y","imports":[],"module":"pkg.b","path":"pkg/b.py"}
"#;
        let symbols = br#"{"bases":[],"decorators":[],"docstring":"Do it.","is_async":false,"is_public":true,"kind":"function","line":3,"params":[{"annotation":"int","has_default":true,"kind":"positional_or_keyword","name":"n"}],"path":"pkg/b.py","qualname":"run","returns":"str"}
"#;
        let graph = br#"{"pkg.a": ["pkg.b"], "pkg.b": []}"#;
        let slices = render(modules, symbols, graph, None);
        assert_eq!(slices.len(), 2);
        let b: Value = serde_json::from_slice(&slices[1].1).unwrap();
        assert_eq!(slices[1].0, "slices/pkg/b.py.json");
        assert_eq!(b["imported_by"], json!(["pkg.a"]));
        assert_eq!(b["outline"][0]["signature"], "def run(n: int=…) -> str");
        assert!(b["module"].get("content_hash").is_none());
        let mut builder = globset::GlobSetBuilder::new();
        builder.add(globset::Glob::new("pkg/a.py").unwrap());
        assert_eq!(render(modules, symbols, graph, Some(&builder.build().unwrap())).len(), 1);
    }
}
