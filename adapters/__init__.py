"""Integrations with LangChain and LlamaIndex.

``lmbridge.adapters.langchain`` and ``lmbridge.adapters.llamaindex`` import their framework when a function or class
of theirs is used; importing this package imports neither framework.
"""

from __future__ import annotations

__all__ = ["langchain", "llamaindex"]
