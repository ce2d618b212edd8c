"""The PEP 562 ``__getattr__`` both adapter packages use for the names whose modules subclass framework
classes at import time, so that importing an adapter package never imports its framework."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, modules: Mapping[str, str], require: Callable[[], None]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``modules[name]`` on first access, after ``require()`` (the
    check that the framework is installed, which raises ``MissingDependencyError`` naming the extra)."""

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        require()
        return getattr(importlib.import_module(module), name)

    return __getattr__


__all__ = ["lazy_getattr"]
