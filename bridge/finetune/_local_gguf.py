"""Writing a trained LoRA as a llama.cpp adapter file (GGUF), so the embedded runtime can run it.

llama.cpp reads an adapter whose metadata says ``general.type = "adapter"``, ``adapter.type =
"lora"`` and ``adapter.lora.alpha`` (the runtime scale is alpha / rank), whose architecture is the
base model's, and whose tensors are named after the base tensor they change, with ``.lora_a`` and
``.lora_b`` after it. In llama.cpp's dimension order (``ne``) A is ``[in, rank]`` and B is
``[rank, out]``; gguf writes numpy arrays with their axes reversed, so A is written as PEFT holds it,
``(rank, in)``, and B as ``(out, rank)``.

One trap: for the llama architecture, the GGUF converter reorders the rows of the query and key
weights (the rotary embedding's pairs), and transformers undoes that when it loads the GGUF. A B
matrix trained for ``q_proj`` or ``k_proj`` therefore gets the converter's row order before it is
written (``_rope_rows``). Gemma 3's converter reorders nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
"""A transformers module (within a decoder layer) and the llama.cpp tensor it becomes."""

_LAYER = re.compile(r"layers\.(\d+)\.(.+)$")


def gguf_tensor_name(module: str) -> str:
    """The llama.cpp base tensor for a transformers module path (``...layers.3.mlp.up_proj`` ->
    ``blk.3.ffn_up.weight``)."""
    found = _LAYER.search(module)
    if found is None or found.group(2) not in GGUF_NAMES:
        raise ValueError(f"no llama.cpp tensor for module {module!r}; LoRA targets must be among {sorted(GGUF_NAMES)}")
    return f"blk.{found.group(1)}.{GGUF_NAMES[found.group(2)]}.weight"


def _rope_rows(b: Any, heads: int) -> Any:
    """B's rows in the llama GGUF converter's order for a query/key weight with ``heads`` heads: within
    each head, the two halves of the rotary dimensions are interleaved."""
    rows = b.shape[0]
    return b.reshape(heads, 2, rows // heads // 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def adapter_tensors(pairs: Mapping[str, tuple[Any, Any]], arch: str, heads: int,
                    kv_heads: int) -> dict[str, Any]:
    """The adapter's tensors by llama.cpp name, from ``(A, B)`` float32 arrays by transformers module
    path, with the llama converter's row order applied to query and key B matrices."""
    tensors: dict[str, Any] = {}
    for module, (a, b) in pairs.items():
        name = gguf_tensor_name(module)
        if arch == "llama" and name.endswith((".attn_q.weight", ".attn_k.weight")):
            b = _rope_rows(b, heads if ".attn_q." in name else kv_heads)
        tensors[f"{name}.lora_a"] = a
        tensors[f"{name}.lora_b"] = b
    return tensors


def write_adapter(path: Path, tensors: Mapping[str, Any], arch: str, alpha: float) -> None:
    """Write a llama.cpp LoRA adapter file at ``path``."""
    import gguf  # the `finetune` extra: imported only when an adapter is written

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    for name in sorted(tensors):
        writer.add_tensor(name, tensors[name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
