#!/usr/bin/env python3
"""Write a synthetic Python repository for benchmarks: PACKAGES packages of MODULES modules.

Usage: generate_tree.py DIR [--packages 200] [--modules 100]

Each module has a docstring, absolute and relative imports (some under TYPE_CHECKING, some in
functions), an `__all__` in every third module, a star import in every fifth, classes with
methods and functions with annotated parameters — about 1.3 KB per module.
"""
import argparse
import os


def module_text(p, m, modules):
    nxt, prev = (m + 1) % modules, (m - 1) % modules
    lines = [
        f'"""Module {m} of package {p}."""',
        "from __future__ import annotations",
        "import os",
        "from typing import TYPE_CHECKING",
        f"from . import m{nxt}",
        f"from pkg{(p + 1) % 200}.m{m} import Model0 as Other",
    ]
    if m % 5 == 0:
        lines.append(f"from .m{prev} import *")
    lines += ["", "if TYPE_CHECKING:", f"    from .m{prev} import Model1", ""]
    if m % 3 == 0:
        lines += ['__all__ = ["Model0", "helper"]', ""]
    for c in range(3):
        lines += [
            f"class Model{c}(Other if False else object):",
            f'    """A model {c}."""',
            "",
            f"    def method(self, a: int, *args: str, b: int = {c}, **kw) -> int:",
            f"        return a + {c}",
            "",
            "    @property",
            "    def name(self) -> str:",
            f'        return "model{c}"',
            "",
        ]
    lines += [
        "def helper(path: str = os.sep) -> str:",
        "    import json",
        "    return json.dumps(path)",
        "",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--packages", type=int, default=200)
    parser.add_argument("--modules", type=int, default=100)
    args = parser.parse_args()
    for p in range(args.packages):
        package = os.path.join(args.dir, f"pkg{p}")
        os.makedirs(package, exist_ok=True)
        with open(os.path.join(package, "__init__.py"), "w") as f:
            f.write('"""Package."""\nfrom .m0 import Model0\n')
        for m in range(args.modules):
            with open(os.path.join(package, f"m{m}.py"), "w") as f:
                f.write(module_text(p, m, args.modules))


if __name__ == "__main__":
    main()
