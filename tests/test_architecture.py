"""The layout's rules, read from the source with ``ast`` (nothing is imported or run):

* no import cycle between modules of ``bridge/`` and ``adapters/`` (an import inside a function counts;
  one under ``if TYPE_CHECKING:`` does not);
* no private name (a ``_module`` or a ``_name``) imported from outside the package that owns it; a
  package may use its own private modules and private subpackages;
* no module over 400 lines unless a comment near its top says why (it mentions "400 lines").
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = {"lmbridge": ROOT / "bridge", "lmbridge.adapters": ROOT / "adapters"}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    """Every module of the core and the adapters, by its import name (a package by its own name)."""
    found: dict[str, Path] = {}
    for prefix, folder in TREES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        else:
            yield from _imports(node)


def imported(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The full dotted names a module imports (``pkg.mod`` or ``pkg.mod.name``), relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            yield f"{base}.{alias.name}"


def target(full: str, known: dict[str, Path]) -> str | None:
    """The module of ours that an imported dotted name lands in, if any."""
    while full and full not in known:
        full = full.rpartition(".")[0]
    return full or None


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for full in imported(name, path, known):
            module = target(full, known)
            if module is not None and module != name:
                edges[name].add(module)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def private_owner(full: str) -> str | None:
    """The package that owns the first private part of a dotted name, or None if it is all public."""
    parts = full.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not (part.startswith("__") and part.endswith("__")):
            return ".".join(parts[:i])
    return None


def test_the_cycle_finder_finds_a_cycle_and_ignores_a_chain() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_import_reader_counts_function_level_imports_and_skips_type_checking(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lmbridge.a import X\n"
                      "def f():\n    from lmbridge.b import Y\n    from . import z\n")
    found = set(imported("lmbridge.m", source, {}))
    assert found == {"typing.TYPE_CHECKING", "lmbridge.b.Y", "lmbridge.z"}
    assert private_owner("lmbridge.programs._predict.Predict") == "lmbridge.programs"
    assert private_owner("lmbridge.programs.Predict") is None
    assert private_owner("lmbridge.__version__") is None


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_no_private_name_crosses_a_package() -> None:
    known = modules()
    crossings = []
    for name, path in known.items():
        for full in imported(name, path, known):
            if not full.startswith("lmbridge"):
                continue
            owner = private_owner(full)
            if owner is not None and not (name == owner or name.startswith(owner + ".")):
                crossings.append(f"{name} imports {full}")
    assert crossings == []


def test_no_module_is_over_400_lines_without_saying_why() -> None:
    long = []
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        head = "\n".join(line for line in lines[:15] if line.lstrip().startswith("#"))
        if len(lines) > MAX_LINES and not re.search(r"\b400 lines\b", head):
            long.append(f"{name}: {len(lines)} lines")
    assert long == []
