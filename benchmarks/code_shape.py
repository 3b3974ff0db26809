"""The shape of the code a maintainer reads: lines per module (the largest first) and the widest
function signatures (parameters, self excluded). For a refactor's before and after:

    python benchmarks/code_shape.py [ROOT]      # ROOT: a checkout (default: this one)
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path


def shape(root: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    modules, signatures = [], []
    for path in sorted((root / "pipeline").rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(root))
        modules.append((len(text.splitlines()), name))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ("self", "cls")]
                params += [f"*{a.vararg.arg}"] if a.vararg else []
                params += [f"**{a.kwarg.arg}"] if a.kwarg else []
                signatures.append((len(params), f"{name}:{node.name}"))
    return sorted(modules, reverse=True), sorted(signatures, reverse=True)


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    modules, signatures = shape(root)
    total = sum(n for n, _ in modules)
    print(f"{len(modules)} modules, {total} lines; over 400: {sum(n > 400 for n, _ in modules)}")
    print("largest: " + ", ".join(f"{m} {n}" for n, m in modules[:6]))
    print("widest: " + ", ".join(f"{s} {n}" for n, s in signatures[:6]))


if __name__ == "__main__":
    main()
