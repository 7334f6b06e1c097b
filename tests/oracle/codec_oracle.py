#!/usr/bin/env python3
"""What CPython makes of a PEP 263 coding cookie, for every label its codec registry knows
(aliases and codec modules, in a few spellings) and the WHATWG labels it does not.

Usage: codec_oracle.py  — prints a JSON list, one entry per label:
  {"label", "status": "ok" | "unknown" | "undecodable", "codec": CPython's codec name or null,
   "bytes": for a single-byte codec, what `x = '<byte>'` holds for each byte 0x80..=0xFF as
            `ast.parse` reads it (a code point, or null when the source is undecodable)}
"""
import ast
import codecs
import encodings
import encodings.aliases
import json
import pkgutil
import re
import sys
import warnings

# WHATWG labels (encoding_rs) that CPython's registry does not know.
WHATWG_ONLY = [
    "iso885910", "iso885913", "iso885914", "iso885915", "csisolatin9", "iso88592", "iso88593",
    "iso88594", "iso88595", "iso88596", "csiso88596e", "csiso88596i", "iso-8859-6-e",
    "iso-8859-6-i", "iso88597", "iso88598", "csiso88598e", "iso-8859-8-e", "visual",
    "csiso88598i", "iso-8859-8-i", "logical", "koi", "koi8", "koi8-ru", "cn-big5", "x-x-big5",
    "cseucpkdfmtjapanese", "x-euc-jp", "cseuckr", "csksc56011987", "iso-ir-149", "windows-949",
    "csgb2312", "x-gbk", "windows-31j", "x-sjis", "unicodefffe", "csunicode", "iso-10646-ucs-2",
    "ucs-2", "unicode", "unicodefeff", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8",
    "x-unicode20utf8", "iso-2022-cn", "iso-2022-cn-ext", "replacement", "csmacintosh", "mac",
    "x-mac-roman", "x-cp1250", "x-cp1251", "iso88591", "x-cp1252", "x-cp1253", "iso88599",
    "x-cp1254", "x-cp1255", "x-cp1256", "x-cp1257", "x-cp1258", "dos-874", "iso885911",
    "windows-874", "x-mac-cyrillic", "x-mac-ukrainian", "x-user-defined",
]
COOKIE_LABEL = re.compile(r"^[-\w.]+$", re.ASCII)


def parse(source):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source)


def status(label):
    """"ok" when CPython decodes the cookie line (even if the text is not Python), "unknown"
    when it does not know the label, "undecodable" when the codec fails on it."""
    source = b"# coding: " + label.encode() + b"\n"
    try:
        parse(source)
        return "ok"
    except SyntaxError as err:
        if str(err.msg).startswith("unknown encoding"):
            return "unknown"
    # Known, but the source is no Python: was it decoded (the tokenizer decodes it all)?
    try:
        source.decode(codec_name(label))
        return "ok"
    except (UnicodeError, LookupError):
        return "undecodable"


def codec_name(label):
    # The tokenizer's get_normal_name, then the registry.
    lower = label[:12].lower().replace("_", "-")
    if lower == "utf-8" or lower.startswith("utf-8-"):
        return "utf-8"
    if any(lower == b or lower.startswith(b + "-") for b in ("latin-1", "iso-8859-1", "iso-latin-1")):
        return "iso8859-1"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def single_byte(codec):
    """Whether `codec` decodes each byte on its own, ASCII below 0x80 (a charmap codec)."""
    try:
        if bytes(range(0x80)).decode(codec) != "".join(map(chr, range(0x80))):
            return False
        high = bytes(range(0x80, 0x100)).decode(codec, errors="replace")
        return high == "".join(bytes([b]).decode(codec, errors="replace") for b in range(0x80, 0x100))
    except Exception:
        return False


def byte_values(label):
    out = []
    for b in range(0x80, 0x100):
        source = b"# coding: " + label.encode() + b"\nx = '" + bytes([b]) + b"'\n"
        try:
            value = parse(source).body[0].value.value
            out.append(ord(value) if len(value) == 1 else -1)
        except SyntaxError:
            out.append(None)
    return out


def main():
    warnings.simplefilter("ignore")
    names = set(encodings.aliases.aliases) | {m.name for m in pkgutil.iter_modules(encodings.__path__)}
    names.discard("aliases")
    labels = set(WHATWG_ONLY)
    for name in names:
        labels |= {name, name.upper(), name.replace("_", "-"), "-" + name + "_", name.replace("_", ".")}
    entries = []
    for label in sorted(l for l in labels if COOKIE_LABEL.match(l)):
        entry = {"label": label, "status": status(label), "codec": codec_name(label), "bytes": None}
        if entry["status"] == "ok" and single_byte(entry["codec"]):
            entry["bytes"] = byte_values(label)
        entries.append(entry)
    json.dump(entries, sys.stdout)
    print()


if __name__ == "__main__":
    main()
