//! Small helpers over source text shared by the stages: node text, Python string literal
//! values and docstring cleaning (as `ast.get_docstring(clean=True)` does).

use crate::stages::parse::field;
use tree_sitter::Node;

/// The source text of `node`.
pub fn node_text<'a>(node: Node<'_>, text: &'a str) -> &'a str {
    &text[node.byte_range()]
}

/// An identifier as CPython spells it: NFKC-normalized (PEP 3131), so `µ` (MICRO SIGN) is `μ`
/// and `ª` is `a`. ASCII — nearly every identifier — is returned as is, without allocating.
pub fn identifier(raw: &str) -> std::borrow::Cow<'_, str> {
    use unicode_normalization::UnicodeNormalization as _;
    if raw.is_ascii() {
        std::borrow::Cow::Borrowed(raw)
    } else {
        std::borrow::Cow::Owned(raw.nfkc().collect())
    }
}

/// [`identifier`] of an owned string, reusing it when it is ASCII.
pub fn identifier_owned(raw: String) -> String {
    if raw.is_ascii() { raw } else { identifier(&raw).into_owned() }
}

/// The text of an identifier node, NFKC-normalized (see [`identifier`]).
pub fn identifier_text<'a>(node: Node<'_>, text: &'a str) -> std::borrow::Cow<'a, str> {
    identifier(node_text(node, text))
}

/// Whether a name is public by Python convention: no leading underscore, or a dunder.
pub fn is_public_name(name: &str) -> bool {
    !name.starts_with('_') || (name.len() > 4 && name.starts_with("__") && name.ends_with("__"))
}

/// The value of a string literal node (`string` or `concatenated_string`) when it is a plain
/// `str` constant: `None` for bytes, f-strings (and t-strings), or anything else.
pub fn string_value(node: Node<'_>, text: &str) -> Option<String> {
    match node.kind() {
        "string" => literal_value(node_text(node, text)),
        "concatenated_string" => {
            let mut out = String::new();
            let mut cursor = node.walk();
            for part in node.named_children(&mut cursor) {
                match part.kind() {
                    "string" => out.push_str(&literal_value(node_text(part, text))?),
                    "comment" => {}
                    _ => return None,
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// Evaluate one `str` literal's source text, prefix and quotes included.
fn literal_value(literal: &str) -> Option<String> {
    let quote_at = literal.find(['"', '\''])?;
    let prefix = literal[..quote_at].to_ascii_lowercase();
    if prefix.contains(['b', 'f', 't']) {
        return None;
    }
    let rest = &literal[quote_at..];
    let quote_len = if rest.starts_with("\"\"\"") || rest.starts_with("'''") { 3 } else { 1 };
    if rest.len() < 2 * quote_len {
        return None;
    }
    let body = rest[quote_len..rest.len() - quote_len].replace("\r\n", "\n");
    Some(if prefix.contains('r') { body } else { unescape(&body) })
}

/// Process the escape sequences of a non-raw `str` literal body.
fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            out.push('\\');
            break;
        };
        match next {
            '\n' => {}
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '0'..='7' => {
                let mut value = next.to_digit(8).unwrap();
                for _ in 0..2 {
                    match chars.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.extend(char::from_u32(value));
            }
            'x' | 'u' | 'U' => {
                let width = match next {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let digits: String = chars.clone().take(width).collect();
                match (digits.len() == width)
                    .then(|| u32::from_str_radix(&digits, 16).ok().and_then(char::from_u32))
                    .flatten()
                {
                    Some(ch) => {
                        out.push(ch);
                        for _ in 0..width {
                            chars.next();
                        }
                    }
                    None => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            other => {
                // Unknown escapes (and `\N{...}`, which needs the Unicode name table) stay.
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

/// The first line of `inspect.cleandoc(doc)`, stripped.
pub fn docstring_first_line(doc: &str) -> String {
    let lines: Vec<String> = doc.split('\n').map(expand_tabs).collect();
    let margin = lines
        .iter()
        .skip(1)
        .filter_map(|line| {
            let content = line.trim_start_matches(is_py_space);
            (!content.is_empty()).then(|| line.len() - content.len())
        })
        .min();
    let mut cleaned = lines.iter().enumerate().map(|(i, line)| {
        if i == 0 {
            line.trim_start_matches(is_py_space)
        } else {
            match margin {
                Some(m) => line.get(m..).unwrap_or(""),
                None => line.as_str(),
            }
        }
    });
    // cleandoc drops leading empty lines; the first remaining one is the summary.
    cleaned.find(|line| !line.is_empty()).unwrap_or("").trim_matches(is_py_space).to_string()
}

fn is_py_space(c: char) -> bool {
    c.is_whitespace()
}

/// `str.expandtabs(8)`.
fn expand_tabs(line: &str) -> String {
    if !line.contains('\t') {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len() + 8);
    let mut column = 0;
    for c in line.chars() {
        match c {
            '\t' => {
                let spaces = 8 - column % 8;
                out.extend(std::iter::repeat_n(' ', spaces));
                column += spaces;
            }
            '\n' | '\r' => {
                out.push(c);
                column = 0;
            }
            _ => {
                out.push(c);
                column += 1;
            }
        }
    }
    out
}

/// `TYPE_CHECKING` or `<anything>.TYPE_CHECKING`, maybe parenthesized.
pub fn is_type_checking(node: Node<'_>, text: &str) -> bool {
    match node.kind() {
        "identifier" => node_text(node, text) == "TYPE_CHECKING",
        "attribute" => node
            .child_by_field_id(field::ATTRIBUTE.get())
            .is_some_and(|attr| node_text(attr, text) == "TYPE_CHECKING"),
        "parenthesized_expression" => node.named_child(0).is_some_and(|inner| is_type_checking(inner, text)),
        _ => false,
    }
}

/// `__name__ == "__main__"` (either way round).
pub fn is_main_guard(node: Node<'_>, text: &str) -> bool {
    if node.kind() == "parenthesized_expression" {
        return node.named_child(0).is_some_and(|inner| is_main_guard(inner, text));
    }
    if node.kind() != "comparison_operator" || node.named_child_count() != 2 {
        return false;
    }
    let mut cursor = node.walk();
    let operands: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
    let operator_is_eq = node.child(1).is_some_and(|op| op.kind() == "==");
    let is_name = |n: Node<'_>| n.kind() == "identifier" && node_text(n, text) == "__name__";
    let is_main = |n: Node<'_>| string_value(n, text).as_deref() == Some("__main__");
    operator_is_eq && ((is_name(operands[0]) && is_main(operands[1])) || (is_main(operands[0]) && is_name(operands[1])))
}

/// `not TYPE_CHECKING`, maybe parenthesized.
pub fn is_not_type_checking(node: Node<'_>, text: &str) -> bool {
    match node.kind() {
        "not_operator" => node.child_by_field_id(field::ARGUMENT.get()).is_some_and(|arg| is_type_checking(arg, text)),
        "parenthesized_expression" => node.named_child(0).is_some_and(|inner| is_not_type_checking(inner, text)),
        _ => false,
    }
}

/// A dotted name's text without the whitespace or comments Python allows inside it.
pub fn dotted(node: Node<'_>, text: &str) -> String {
    let mut cursor = node.walk();
    let parts: Vec<&str> = node
        .named_children(&mut cursor)
        .filter(|c| c.kind() == "identifier")
        .map(|c| node_text(c, text))
        .collect();
    if parts.is_empty() { node_text(node, text).to_string() } else { parts.join(".") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(literal_value(r##""""Doc.""""##).as_deref(), Some("Doc."));
        assert_eq!(literal_value(r#"r'a\nb'"#).as_deref(), Some(r"a\nb"));
        assert_eq!(literal_value(r#"'a\nb\x41\101\u00e9'"#).as_deref(), Some("a\nbAAé"));
        assert_eq!(literal_value("'''a\\\nb'''").as_deref(), Some("ab"));
        assert_eq!(literal_value(r#"b"x""#), None);
        assert_eq!(literal_value(r#"f"x""#), None);
    }

    #[test]
    fn identifiers_are_nfkc_normalized() {
        assert_eq!(identifier("plain"), "plain");
        assert_eq!(identifier("\u{b5}"), "\u{3bc}", "MICRO SIGN becomes GREEK SMALL LETTER MU");
        assert_eq!(identifier("\u{aa}b"), "ab");
        assert_eq!(identifier("\u{fb01}le"), "file", "the fi ligature decomposes");
    }

    #[test]
    fn cleandoc_first_line() {
        assert_eq!(docstring_first_line("\n    Summary.\n\n    More.\n    "), "Summary.");
        assert_eq!(docstring_first_line("Summary.  \n  rest"), "Summary.");
        assert_eq!(docstring_first_line(""), "");
    }
}
