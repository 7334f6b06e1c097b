#!/usr/bin/env python3
"""Compare codeintel-enrich's symbols.jsonl and imports.jsonl with what Python's `ast` finds.

Usage: ast_oracle.py --root DIR --out DIR [--src-layout]

For every module in OUT/modules.jsonl (and every .py file the tool reported as skipped for a
reason `ast` disagrees with), parse the same file with `ast` and compare:
  symbols: qualname, name, kind, line, col, end_line, end_col, is_async, parameters (name,
           kind, has_default, annotation text), decorator and base texts, return annotation
           text, first docstring line;
  imports: line, absolute target, level, star, names, asname, and the flags type_checking,
           conditional, in_try, in_function.
Names are compared as `ast` spells them: NFKC-normalized identifiers (PEP 3131). Texts are
`ast.get_source_segment` of the node, widened to the parentheses around it, if any.
Files `ast` itself cannot parse are left out. Prints a JSON report on stdout.
"""
import argparse
import ast
import inspect
import io
import json
import os
import sys
import tokenize
import warnings
from collections import defaultdict


def module_name(path, src_layout):
    rel = path[4:] if src_layout and path.startswith("src/") else path
    parts = rel[:-3].split("/")
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def resolve(package, level, module):
    bits = package.split(".") if package else []
    if level > len(bits):
        return "." * level + (module or "")
    base = bits[: len(bits) - level + 1]
    if module:
        base.append(module)
    return ".".join(base)


def is_tc(node):
    if isinstance(node, ast.Name):
        return node.id == "TYPE_CHECKING"
    if isinstance(node, ast.Attribute):
        return node.attr == "TYPE_CHECKING"
    return False


def is_not_tc(node):
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not) and is_tc(node.operand)


def docstring(node):
    doc = ast.get_docstring(node, clean=False)
    if doc is None:
        return None
    return inspect.cleandoc(doc).split("\n")[0].strip()


class Source:
    """The decoded text of a module, for the source text of nodes."""

    def __init__(self, text):
        # ast's offsets are UTF-8 byte columns; lines as bytes, split the way ast counts rows.
        self.blines = [line.encode("utf-8") for line in ast._splitlines_no_ff(text)]

    def char(self, line, col):
        """The byte at 1-based `line`, 0-based byte `col` (None outside the text)."""
        if 1 <= line <= len(self.blines) and 0 <= col < len(self.blines[line - 1]):
            return self.blines[line - 1][col : col + 1]
        return None

    def segment(self, node, inside_parens=False):
        """The source text of `node`, with the parentheses around it (ast positions leave
        them out, tree-sitter's nodes include them). `inside_parens`: the node is the only
        item between a statement's own parentheses (`class A(B)`), which do not count."""
        start, end = (node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)
        layers = [(start, end)]
        while True:
            before, after = self.skip_back(*start), self.skip_forward(*end)
            if before is None or after is None:
                break
            if self.char(*before) != b"(" or self.char(*after) != b")":
                break
            start, end = before, (after[0], after[1] + 1)
            layers.append((start, end))
        if inside_parens and len(layers) > 1:
            layers.pop()
        return self.text(*layers[-1])

    def skip_back(self, line, col):
        """The position of the last non-blank byte before (line, col), within a few lines."""
        for _ in range(8):
            while col > 0:
                col -= 1
                if self.blines[line - 1][col : col + 1] not in (b" ", b"\t", b"\f"):
                    return line, col
            line -= 1
            if line < 1:
                return None
            col = len(self.blines[line - 1].rstrip(b"\r\n"))
        return None

    def skip_forward(self, line, col):
        """The position of the first non-blank byte at or after (line, col), within a few lines."""
        for _ in range(8):
            text = self.blines[line - 1]
            while col < len(text):
                if text[col : col + 1] not in (b" ", b"\t", b"\f", b"\r", b"\n"):
                    return line, col
                col += 1
            line += 1
            if line > len(self.blines):
                return None
            col = 0
        return None

    def text(self, start, end):
        (l1, c1), (l2, c2) = start, end
        if l1 == l2:
            return self.blines[l1 - 1][c1:c2].decode("utf-8")
        parts = [self.blines[l1 - 1][c1:]] + self.blines[l1 : l2 - 1] + [self.blines[l2 - 1][:c2]]
        return b"".join(parts).decode("utf-8")


def params(args, source):
    out = []
    positional = [(a, "positional_only") for a in args.posonlyargs] + [
        (a, "positional_or_keyword") for a in args.args
    ]
    first_default = len(positional) - len(args.defaults)
    annotation = lambda a: source.segment(a.annotation) if a.annotation else None
    for i, (a, kind) in enumerate(positional):
        out.append([a.arg, kind, i >= first_default, annotation(a)])
    if args.vararg:
        out.append([args.vararg.arg, "var_positional", False, annotation(args.vararg)])
    for a, default in zip(args.kwonlyargs, args.kw_defaults):
        out.append([a.arg, "keyword_only", default is not None, annotation(a)])
    if args.kwarg:
        out.append([args.kwarg.arg, "var_keyword", False, annotation(args.kwarg)])
    return out


class Collector:
    def __init__(self, package, source):
        self.package = package
        self.source = source
        self.symbols = []
        self.imports = []

    def block(self, stmts, scopes, flags):
        for stmt in stmts:
            self.stmt(stmt, scopes, flags)

    def stmt(self, node, scopes, flags):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            is_class = isinstance(node, ast.ClassDef)
            if is_class:
                kind = "class"
            elif scopes and scopes[-1][1]:
                kind = "method"
            else:
                kind = "function"
            qualname = ".".join([s[0] for s in scopes] + [node.name])
            segment = self.source.segment
            bases = sorted(node.bases + node.keywords, key=lambda b: (b.lineno, b.col_offset)) if is_class else []
            entry = {
                "qualname": qualname,
                "name": node.name,
                "kind": kind,
                "line": node.lineno,
                "col": node.col_offset,
                "end_line": node.end_lineno,
                "end_col": node.end_col_offset,
                "is_async": isinstance(node, ast.AsyncFunctionDef),
                "params": [] if is_class else params(node.args, self.source),
                "decorators": [segment(d) for d in node.decorator_list],
                "bases": [segment(b, inside_parens=len(bases) == 1) for b in bases],
                "returns": segment(node.returns) if not is_class and node.returns else None,
                "docstring": docstring(node),
            }
            self.symbols.append(entry)
            inner = dict(flags)
            if not is_class:
                inner["in_function"] = True
            self.block(node.body, scopes + [(node.name, is_class)], inner)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.add_import(node, alias.name, 0, False, [], alias.asname, flags)
            return
        if isinstance(node, ast.ImportFrom):
            level = node.level or 0
            target = resolve(self.package, level, node.module) if level else node.module
            star = any(a.name == "*" for a in node.names)
            names = [] if star else [[a.name, a.asname] for a in node.names]
            self.add_import(node, target, level, star, names, None, flags)
            return
        if isinstance(node, ast.If):
            cond = dict(flags, conditional=True)
            self.block(node.body, scopes, dict(cond, type_checking=flags["type_checking"] or is_tc(node.test)))
            self.block(node.orelse, scopes, dict(cond, type_checking=flags["type_checking"] or is_not_tc(node.test)))
            return
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            cond = dict(flags, conditional=True)
            self.block(node.body, scopes, cond)
            self.block(node.orelse, scopes, cond)
            return
        if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            tried = dict(flags, in_try=True)
            self.block(node.body, scopes, tried)
            for handler in node.handlers:
                self.block(handler.body, scopes, tried)
            self.block(node.orelse, scopes, dict(flags, conditional=True))
            self.block(node.finalbody, scopes, flags)
            return
        if isinstance(node, ast.Match):
            for case in node.cases:
                self.block(case.body, scopes, dict(flags, conditional=True))
            return
        if isinstance(node, (ast.With, ast.AsyncWith)):
            self.block(node.body, scopes, flags)
            return

    def add_import(self, node, target, level, star, names, asname, flags):
        self.imports.append(
            {
                "line": node.lineno,
                "col": node.col_offset,
                "target": target,
                "level": level,
                "star": star,
                "names": names,
                "asname": asname,
                **flags,
            }
        )


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--src-layout", action="store_true")
    parser.add_argument("--max-diffs", type=int, default=200)
    args = parser.parse_args()

    modules = read_jsonl(os.path.join(args.out, "modules.jsonl"))
    tool_symbols = defaultdict(list)
    for row in read_jsonl(os.path.join(args.out, "symbols.jsonl")):
        tool_symbols[row["path"]].append(
            {
                "qualname": row["qualname"],
                "name": row["name"],
                "kind": row["kind"],
                "line": row["line"],
                "col": row["col"],
                "end_line": row["end_line"],
                "end_col": row["end_col"],
                "is_async": row["is_async"],
                "params": [[p["name"], p["kind"], p["has_default"], p["annotation"]] for p in row["params"]],
                "decorators": row["decorators"],
                "bases": row["bases"],
                "returns": row["returns"],
                "docstring": row["docstring"],
            }
        )
    tool_imports = defaultdict(list)
    for row in read_jsonl(os.path.join(args.out, "imports.jsonl")):
        tool_imports[row["path"]].append(
            {
                "line": row["line"],
                "col": row["col"],
                "target": row["target"],
                "level": row["level"],
                "star": row["star"],
                "names": [[n["name"], n["asname"]] for n in row["names"]],
                "asname": row["asname"],
                "type_checking": row["type_checking"],
                "conditional": row["conditional"],
                "in_try": row["in_try"],
                "in_function": row["in_function"],
            }
        )

    report = {
        "modules": len(modules),
        "compared": 0,
        "ast_failed": [],
        "symbols_compared": 0,
        "imports_compared": 0,
        "symbol_diffs": [],
        "import_diffs": [],
        "diff_count": 0,
    }
    flags0 = {"type_checking": False, "conditional": False, "in_try": False, "in_function": False}
    key_sym = lambda s: (s["line"], s["col"], s["qualname"])
    key_imp = lambda i: (i["line"], i["col"], i["target"] or "")
    for module in modules:
        path = module["path"]
        with open(os.path.join(args.root, path), "rb") as f:
            source = f.read()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(source, filename=path)
        except (SyntaxError, ValueError, UnicodeDecodeError) as err:
            report["ast_failed"].append(path)
            continue
        report["compared"] += 1
        name, is_package = module_name(path, args.src_layout)
        package = name if is_package else name.rpartition(".")[0]
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
        collector = Collector(package, Source(source.decode(encoding)))
        collector.block(tree.body, [], dict(flags0))
        expected_symbols = sorted(collector.symbols, key=key_sym)
        actual_symbols = sorted(tool_symbols.get(path, []), key=key_sym)
        expected_imports = sorted(collector.imports, key=key_imp)
        actual_imports = sorted(tool_imports.get(path, []), key=key_imp)
        report["symbols_compared"] += len(expected_symbols)
        report["imports_compared"] += len(expected_imports)
        for kind, expected, actual in (
            ("symbol_diffs", expected_symbols, actual_symbols),
            ("import_diffs", expected_imports, actual_imports),
        ):
            if expected == actual:
                continue
            missing = [e for e in expected if e not in actual]
            extra = [a for a in actual if a not in expected]
            report["diff_count"] += len(missing) + len(extra)
            if len(report[kind]) < args.max_diffs:
                report[kind].append({"path": path, "ast_only": missing[:5], "tool_only": extra[:5]})
    json.dump(report, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
