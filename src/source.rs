//! Reading a source file: its content hash (blake3 of the raw bytes) and its text, decoded the
//! way CPython decodes it (PEP 263 coding cookie, UTF-8 BOM, UTF-8 by default).
//!
//! The text handed to the parser keeps byte offsets comparable with Python's `ast`: the BOM is
//! dropped (CPython does not count it), and a lone `\r` line break becomes `\n` (same length),
//! because tree-sitter counts rows by `\n` only while CPython accepts all three line endings.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use regex::bytes::Regex;
use serde::{Deserialize, Serialize};

/// blake3 of a file's raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(*blake3::hash(bytes).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

impl std::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", &self.to_hex()[..12])
    }
}

/// A decoded source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedSource {
    pub hash: ContentHash,
    /// Normalized name of the encoding the bytes were decoded from (`utf-8`, `latin-1`, …).
    pub encoding: String,
    pub text: Arc<str>,
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown encoding {0:?} in coding cookie")]
    UnknownEncoding(String),
    #[error("invalid {encoding} at byte {offset}")]
    Invalid { encoding: String, offset: usize },
}

/// Decode raw source bytes like CPython does.
pub fn decode(bytes: &[u8]) -> Result<DecodedSource, DecodeError> {
    let hash = ContentHash::of(bytes);
    let (body, has_bom) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, true),
        None => (bytes, false),
    };
    let declared = if has_bom { None } else { coding_cookie(body) };
    let encoding = match declared.as_deref() {
        None => "utf-8".to_string(),
        Some(name) => normalize_encoding_name(name),
    };
    let text: Cow<'_, str> = match encoding.as_str() {
        "utf-8" => match std::str::from_utf8(body) {
            Ok(text) => Cow::Borrowed(text),
            Err(err) => {
                return Err(DecodeError::Invalid {
                    encoding,
                    offset: err.valid_up_to() + usize::from(has_bom) * 3,
                });
            }
        },
        "latin-1" => Cow::Owned(body.iter().map(|&b| char::from(b)).collect()),
        "ascii" => match body.iter().position(|b| !b.is_ascii()) {
            None => Cow::Borrowed(std::str::from_utf8(body).expect("ASCII is UTF-8")),
            Some(offset) => return Err(DecodeError::Invalid { encoding, offset }),
        },
        other => {
            let Some(codec) = encoding_rs::Encoding::for_label(other.as_bytes()) else {
                return Err(DecodeError::UnknownEncoding(declared.unwrap_or_default()));
            };
            match codec.decode_without_bom_handling_and_without_replacement(body) {
                Some(text) => Cow::Owned(text.into_owned()),
                None => {
                    return Err(DecodeError::Invalid { encoding, offset: first_error_offset(codec, body) });
                }
            }
        }
    };
    Ok(DecodedSource { hash, encoding, text: normalize_line_breaks(text).into() })
}

fn first_error_offset(codec: &'static encoding_rs::Encoding, body: &[u8]) -> usize {
    let mut decoder = codec.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(body.len() * 3 + 16);
    let (result, read) = decoder.decode_to_string_without_replacement(body, &mut out, true);
    match result {
        encoding_rs::DecoderResult::Malformed(bad, _) => read - bad as usize,
        _ => read,
    }
}

/// The encoding named by a PEP 263 cookie on line 1, or on line 2 when line 1 is blank or a
/// comment (the rule of CPython's tokenizer).
fn coding_cookie(bytes: &[u8]) -> Option<String> {
    static COOKIE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[ \t\x0c]*#.*?coding[:=][ \t]*([-\w.]+)").expect("valid regex"));
    static BLANK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[ \t\x0c]*(?:[#\r\n]|$)").expect("valid regex"));
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    let first = lines.next()?;
    let find = |line: &[u8]| {
        COOKIE
            .captures(line)
            .map(|c| String::from_utf8_lossy(&c[1]).into_owned())
    };
    if let Some(name) = find(first) {
        return Some(name);
    }
    if !BLANK.is_match(first) {
        return None;
    }
    find(lines.next()?)
}

/// CPython's `get_normal_name`, extended with the aliases its codec registry accepts for the
/// encodings that need exact handling here.
fn normalize_encoding_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase().replace('_', "-");
    let is = |base: &str| lower == base || lower.starts_with(&format!("{base}-"));
    if is("utf-8") || lower == "utf8" {
        "utf-8".into()
    } else if is("latin-1") || is("iso-8859-1") || is("iso-latin-1")
        || matches!(lower.as_str(), "latin1" | "iso8859-1" | "l1" | "cp819" | "8859" | "latin")
    {
        "latin-1".into()
    } else if matches!(lower.as_str(), "ascii" | "us-ascii" | "646") {
        "ascii".into()
    } else {
        lower
    }
}

/// Replace each lone `\r` with `\n` (a same-length change; `\r\n` stays).
fn normalize_line_breaks(text: Cow<'_, str>) -> String {
    let bytes = text.as_bytes();
    let has_lone_cr = bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
    if !has_lone_cr {
        return text.into_owned();
    }
    let mut out = bytes.to_vec();
    for i in 0..out.len() {
        if out[i] == b'\r' && out.get(i + 1) != Some(&b'\n') {
            out[i] = b'\n';
        }
    }
    String::from_utf8(out).expect("replacing ASCII with ASCII keeps UTF-8 valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_default_and_bom() {
        assert_eq!(&*decode(b"x = 1\n").unwrap().text, "x = 1\n");
        let with_bom = decode(b"\xEF\xBB\xBFx = '\xC3\xA9'\n").unwrap();
        assert_eq!(&*with_bom.text, "x = 'é'\n");
        assert_eq!(with_bom.encoding, "utf-8");
    }

    #[test]
    fn latin1_cookie_on_first_or_second_line() {
        let src = b"# -*- coding: latin-1 -*-\nname = '\xE9t\xE9'\n";
        let decoded = decode(src).unwrap();
        assert_eq!(decoded.encoding, "latin-1");
        assert!(decoded.text.contains("'été'"));
        let second = decode(b"#!/usr/bin/env python\n# vim: set fileencoding=iso-8859-1 :\nx = '\x80'\n").unwrap();
        assert_eq!(second.encoding, "latin-1");
        assert!(second.text.contains('\u{80}'), "latin-1 is not windows-1252");
        // A cookie on line 2 does not count when line 1 is code.
        assert!(decode(b"x = 1\n# coding: latin-1\ny = '\xE9'\n").is_err());
    }

    #[test]
    fn other_codecs_and_errors() {
        let cp = decode(b"# coding: cp1252\nx = '\x80'\n").unwrap();
        assert!(cp.text.contains('€'));
        assert_eq!(
            decode(b"x = '\xFF'\n").unwrap_err(),
            DecodeError::Invalid { encoding: "utf-8".into(), offset: 5 }
        );
        assert!(matches!(decode(b"# coding: klingon\n"), Err(DecodeError::UnknownEncoding(_))));
        assert!(decode(b"# coding: ascii\nx = '\xE9'\n").is_err());
    }

    #[test]
    fn lone_carriage_returns_become_newlines() {
        assert_eq!(&*decode(b"a = 1\rb = 2\r\nc = 3\n").unwrap().text, "a = 1\nb = 2\r\nc = 3\n");
    }
}
