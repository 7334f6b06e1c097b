//! Deterministic JSON Lines: one object per line, keys sorted, `\n` line ends, no trailing
//! spaces. Rows arrive already sorted by their natural key. Keys are sorted explicitly: a
//! dependency turns on serde_json's `preserve_order`, so `Value`'s map keeps insertion order.

use serde::Serialize;
use serde_json::Value;

/// Render rows as JSON Lines with sorted keys.
pub fn render<T: Serialize>(rows: impl IntoIterator<Item = T>) -> (usize, Vec<u8>) {
    render_in_key_order(rows.into_iter().map(|row| sorted(serde_json::to_value(&row).expect("rows serialize to JSON"))))
}

/// Render rows whose fields (and nested fields) are declared in key order, directly — no
/// intermediate `Value`. The determinism test checks the key order of every line written.
pub fn render_in_key_order<T: Serialize>(rows: impl IntoIterator<Item = T>) -> (usize, Vec<u8>) {
    let mut out = Vec::new();
    let mut count = 0;
    for row in rows {
        serde_json::to_writer(&mut out, &row).expect("rows serialize to JSON");
        out.push(b'\n');
        count += 1;
    }
    (count, out)
}

/// Rebuild a value so every object's keys are sorted, whatever map type serde_json uses.
pub(crate) fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        zeta: u32,
        alpha: &'static str,
        nested: Vec<(u8, Option<u8>)>,
    }

    #[test]
    fn keys_sorted_one_row_per_line() {
        let (n, bytes) = render([Row { zeta: 1, alpha: "a", nested: vec![(1, None)] }, Row { zeta: 2, alpha: "b", nested: vec![] }]);
        assert_eq!(n, 2);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "{\"alpha\":\"a\",\"nested\":[[1,null]],\"zeta\":1}\n{\"alpha\":\"b\",\"nested\":[],\"zeta\":2}\n"
        );
    }
}
