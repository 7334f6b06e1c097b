//! Reading a source file: its content hash (blake3 of the raw bytes) and its text, decoded the
//! way CPython decodes it (PEP 263 coding cookie, UTF-8 BOM, UTF-8 by default).
//!
//! A cookie's label is looked up as CPython's codec registry does (`codecs.lookup`: the
//! normalized name, then `encodings.aliases`), so a label CPython does not know is an unknown
//! encoding even where WHATWG knows it (`x-cp1252`, `iso88591`), and a label names CPython's
//! codec even where WHATWG maps it to another (`latin5` is ISO-8859-9, not windows-1254).
//! Single-byte codecs decode with CPython's own tables (`charmaps`, generated), which leave
//! bytes undefined that WHATWG maps (cp1252's 0x81, 0x8D, 0x8F, 0x90, 0x9D); multi-byte
//! codecs go through encoding_rs.
//!
//! The text handed to the parser keeps byte offsets comparable with Python's `ast`: the BOM is
//! dropped (CPython does not count it), and a lone `\r` line break becomes `\n` (same length),
//! because tree-sitter counts rows by `\n` only while CPython accepts all three line endings.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use regex::bytes::Regex;
use serde::{Deserialize, Serialize};

mod charmaps;

/// Bump when decoding changes: folded into the engine fingerprint (see
/// [`crate::cache::engine_fingerprint`]), because every stage reads decoded text and the stat
/// fast path records each file's encoding.
pub const DECODE_VERSION: u32 = 2;

/// blake3 of a file's raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContentHash(#[serde(with = "crate::digest::bytes")] pub [u8; 32]);

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
    #[error("coding cookie {0:?} after a UTF-8 BOM")]
    CookieWithBom(String),
}

/// Decode raw source bytes like CPython does.
pub fn decode(bytes: &[u8]) -> Result<DecodedSource, DecodeError> {
    let hash = ContentHash::of(bytes);
    let (body, has_bom) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, true),
        None => (bytes, false),
    };
    let declared = coding_cookie(body);
    let codec = match declared.as_deref() {
        None => Codec::Utf8,
        // After a BOM, CPython accepts only a cookie that says utf-8 (`utf-8`, `utf_8_sig`, …).
        Some(label) if has_bom => {
            if !is_utf8_label(label) {
                return Err(DecodeError::CookieWithBom(label.to_string()));
            }
            Codec::Utf8
        }
        Some(label) => codec_for_label(label).ok_or_else(|| DecodeError::UnknownEncoding(label.to_string()))?,
    };
    let encoding = codec.name().to_string();
    let text: Cow<'_, str> = match codec {
        Codec::Utf8 => match std::str::from_utf8(body) {
            Ok(text) => Cow::Borrowed(text),
            Err(err) => {
                return Err(DecodeError::Invalid {
                    encoding,
                    offset: err.valid_up_to() + usize::from(has_bom) * 3,
                });
            }
        },
        Codec::Latin1 => Cow::Owned(body.iter().map(|&b| char::from(b)).collect()),
        Codec::Ascii => match body.iter().position(|b| !b.is_ascii()) {
            None => Cow::Borrowed(std::str::from_utf8(body).expect("ASCII is UTF-8")),
            Some(offset) => return Err(DecodeError::Invalid { encoding, offset }),
        },
        Codec::Charmap(_, table) => match decode_charmap(body, table) {
            Ok(text) => Cow::Owned(text),
            Err(offset) => return Err(DecodeError::Invalid { encoding, offset }),
        },
        Codec::Whatwg(_, codec) => match codec.decode_without_bom_handling_and_without_replacement(body) {
            Some(text) => Cow::Owned(text.into_owned()),
            None => return Err(DecodeError::Invalid { encoding, offset: first_error_offset(codec, body) }),
        },
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

/// How a codec CPython names is decoded here.
#[derive(Debug, Clone, Copy)]
enum Codec {
    Utf8,
    Latin1,
    Ascii,
    /// A single-byte codec (its reported name): ASCII below 0x80, CPython's table above.
    Charmap(&'static str, &'static [char; 128]),
    /// A multi-byte codec (its reported name), through its WHATWG counterpart.
    Whatwg(&'static str, &'static encoding_rs::Encoding),
}

impl Codec {
    /// The name reported as a module's `encoding`: CPython's codec module, `-` for `_`
    /// (`utf-8`, `latin-1`, `cp1252`, `iso8859-15`, …).
    fn name(self) -> &'static str {
        match self {
            Codec::Utf8 => "utf-8",
            Codec::Latin1 => "latin-1",
            Codec::Ascii => "ascii",
            Codec::Charmap(name, _) | Codec::Whatwg(name, _) => name,
        }
    }
}

/// CPython's codec modules decoded through encoding_rs, and the name each is reported by.
/// The WHATWG decoders accept a little more than some of CPython's (WHATWG's Shift_JIS is
/// Windows-31J, its EUC-KR is UHC, its Big5 is Big5-HKSCS, its GBK is GB18030).
const WHATWG: &[(&str, &str, &encoding_rs::Encoding)] = &[
    ("big5", "big5", encoding_rs::BIG5),
    ("big5hkscs", "big5hkscs", encoding_rs::BIG5),
    ("cp932", "cp932", encoding_rs::SHIFT_JIS),
    ("euc_jp", "euc-jp", encoding_rs::EUC_JP),
    ("euc_kr", "euc-kr", encoding_rs::EUC_KR),
    ("gb18030", "gb18030", encoding_rs::GB18030),
    ("gb2312", "gb2312", encoding_rs::GBK),
    ("gbk", "gbk", encoding_rs::GBK),
    ("iso2022_jp", "iso2022-jp", encoding_rs::ISO_2022_JP),
    ("shift_jis", "shift-jis", encoding_rs::SHIFT_JIS),
    ("utf_16", "utf-16", encoding_rs::UTF_16LE),
    ("utf_16_be", "utf-16-be", encoding_rs::UTF_16BE),
    ("utf_16_le", "utf-16-le", encoding_rs::UTF_16LE),
];

/// The tokenizer's `get_normal_name` test for utf-8: `utf-8` or `utf-8-…`, any case, `_`
/// for `-`. Only such a cookie is allowed after a BOM.
fn is_utf8_label(label: &str) -> bool {
    let lower = label.to_ascii_lowercase().replace('_', "-");
    lower == "utf-8" || lower.starts_with("utf-8-")
}

/// The tokenizer's `get_normal_name` test for latin-1 (`latin-1`, `iso-8859-1`,
/// `iso-latin-1`, each maybe followed by `-…`).
fn is_latin1_label(label: &str) -> bool {
    let lower = label.to_ascii_lowercase().replace('_', "-");
    ["latin-1", "iso-8859-1", "iso-latin-1"]
        .iter()
        .any(|base| lower == *base || lower.strip_prefix(base).is_some_and(|rest| rest.starts_with('-')))
}

/// `codecs.lookup`'s normalization: lower case, every run of characters other than ASCII
/// letters, digits and `.` becomes one `_` between kept characters (`encodings.normalize_encoding`).
fn normalize_label(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut punct = false;
    for c in label.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            if punct && !out.is_empty() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            punct = false;
        } else {
            punct = true;
        }
    }
    out
}

/// The codec CPython decodes a source with when its coding cookie says `label`: the
/// tokenizer's utf-8 and latin-1 names first, then the codec registry (an alias of the
/// normalized name, or of it with `.` as `_`, else a codec module of that name). `None` when
/// CPython does not know the label, or knows a codec not supported here.
fn codec_for_label(label: &str) -> Option<Codec> {
    if is_utf8_label(label) {
        return Some(Codec::Utf8);
    }
    if is_latin1_label(label) {
        return Some(Codec::Latin1);
    }
    let normalized = normalize_label(label);
    let alias = |name: &str| {
        charmaps::ALIASES
            .binary_search_by(|(alias, _)| (*alias).cmp(name))
            .ok()
            .map(|i| charmaps::ALIASES[i].1)
    };
    let module = match alias(&normalized).or_else(|| alias(&normalized.replace('.', "_"))) {
        Some(module) => module,
        None if normalized.contains('.') => return None,
        None => normalized.as_str(),
    };
    codec_of_module(module)
}

/// The codec of one of CPython's `encodings` modules.
fn codec_of_module(module: &str) -> Option<Codec> {
    match module {
        "utf_8" => return Some(Codec::Utf8),
        "latin_1" => return Some(Codec::Latin1),
        "ascii" => return Some(Codec::Ascii),
        _ => {}
    }
    if let Ok(i) = charmaps::CHARMAPS.binary_search_by(|(name, _, _)| (*name).cmp(module)) {
        let (_, reported, table) = &charmaps::CHARMAPS[i];
        return Some(Codec::Charmap(reported, table));
    }
    WHATWG.iter().find(|(m, _, _)| *m == module).map(|(_, reported, codec)| Codec::Whatwg(reported, codec))
}

/// Decode with a single-byte table; `Err(offset)` at the first byte the codec leaves undefined.
fn decode_charmap(body: &[u8], table: &[char; 128]) -> Result<String, usize> {
    let mut out = String::with_capacity(body.len() + body.len() / 4);
    for (offset, &byte) in body.iter().enumerate() {
        if byte.is_ascii() {
            out.push(char::from(byte));
        } else {
            match table[usize::from(byte - 0x80)] {
                charmaps::UNDEFINED => return Err(offset),
                c => out.push(c),
            }
        }
    }
    Ok(out)
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

    fn decode_with(label: &str, body: &[u8]) -> Result<DecodedSource, DecodeError> {
        let mut source = format!("# coding: {label}\n").into_bytes();
        source.extend_from_slice(body);
        decode(&source)
    }

    #[test]
    fn cp1252_leaves_five_bytes_undefined() {
        for label in ["cp1252", "windows-1252", "WINDOWS_1252", "1252"] {
            let decoded = decode_with(label, b"x = '\x80\x9f'\n").unwrap();
            assert!(decoded.text.contains("'\u{20ac}\u{178}'"), "{label}");
            assert_eq!(decoded.encoding, "cp1252");
            let offset = format!("# coding: {label}\nx = '").len();
            for byte in [0x81, 0x8D, 0x8F, 0x90, 0x9D] {
                assert_eq!(
                    decode_with(label, &[b'x', b' ', b'=', b' ', b'\'', byte, b'\'']).unwrap_err(),
                    DecodeError::Invalid { encoding: "cp1252".into(), offset },
                    "{label} {byte:#x}"
                );
            }
        }
    }

    #[test]
    fn single_byte_codecs_are_cpythons() {
        // Bytes CPython leaves undefined where WHATWG maps them.
        for (label, byte) in [("cp1250", 0x81), ("cp1253", 0xAA), ("cp1255", 0xCA), ("tis-620", 0xA0), ("cp874", 0xDB)] {
            assert!(matches!(decode_with(label, &[byte]), Err(DecodeError::Invalid { .. })), "{label} {byte:#x}");
        }
        // Labels that name another codec for CPython than for WHATWG.
        let text = |label: &str, byte: u8| decode_with(label, &[byte]).unwrap().text.chars().last().unwrap();
        assert_eq!(text("latin5", 0x80), '\u{80}', "ISO-8859-9, not windows-1254");
        assert_eq!(text("iso-8859-9", 0xD0), '\u{11e}');
        assert_eq!(text("iso_ir_100", 0x80), '\u{80}', "latin-1, not windows-1252");
        assert_eq!(text("iso-8859-11", 0x80), '\u{80}', "ISO-8859-11, not windows-874");
        assert_eq!(text("koi8-u", 0xAE), '\u{255d}', "KOI8-U, not WHATWG's KOI8-RU");
        assert_eq!(text("mac_roman", 0xDB), '\u{20ac}');
        assert_eq!(text("cp866", 0x80), '\u{410}');
        assert_eq!(decode_with("iso8859-15", b"").unwrap().encoding, "iso8859-15");
        assert_eq!(decode_with("u8", b"").unwrap().encoding, "utf-8");
        assert_eq!(decode_with("646", b"").unwrap().encoding, "ascii");
    }

    #[test]
    fn labels_are_looked_up_as_cpython_does() {
        for unknown in ["iso88591", "x-cp1252", "windows-874", "x-mac-cyrillic", "iso-8859-8-i", "cp-1252", "iso8859.15", "koi8"] {
            assert_eq!(
                decode_with(unknown, b"").unwrap_err(),
                DecodeError::UnknownEncoding(unknown.into()),
                "CPython does not know {unknown}"
            );
        }
        for (label, encoding) in [
            ("-CP1252-", "cp1252"),
            ("iso.8859.15", "iso8859-15"),
            ("ISO_8859-15", "iso8859-15"),
            ("latin-1-unix", "latin-1"),
            ("utf_8_sig", "utf-8"),
            ("ms_kanji", "cp932"),
            ("euc-kr", "euc-kr"),
        ] {
            assert_eq!(decode_with(label, b"").unwrap().encoding, encoding, "{label}");
        }
    }

    #[test]
    fn a_cookie_after_a_bom_must_say_utf8() {
        assert_eq!(decode(b"\xEF\xBB\xBF# coding: utf-8\nx = 1\n").unwrap().encoding, "utf-8");
        assert_eq!(decode(b"\xEF\xBB\xBF# coding: UTF_8_sig\nx = 1\n").unwrap().encoding, "utf-8");
        for label in ["latin-1", "utf8", "klingon"] {
            let source = format!("\u{feff}# coding: {label}\nx = 1\n");
            assert_eq!(decode(source.as_bytes()).unwrap_err(), DecodeError::CookieWithBom(label.into()));
        }
    }

    #[test]
    fn lone_carriage_returns_become_newlines() {
        assert_eq!(&*decode(b"a = 1\rb = 2\r\nc = 3\n").unwrap().text, "a = 1\nb = 2\r\nc = 3\n");
    }
}
