"""ONNX translations for two aten ops the TorchScript exporter lacks at the opset we target, and a context that
registers them only while an export runs.

- `aten::rms_norm` (fish-speech's attention q/k norms are `torch.nn.RMSNorm`): ONNX has RMSNormalization only
  from opset 23, which the TorchScript exporter does not reach (its maximum is 20). Written as
  `x * 1 / sqrt(mean(x * x) + eps) * weight`, torch's own definition.
- `aten::scaled_dot_product_attention` with `enable_gqa=True` (the engine's grouped-query attention): the
  exporter's translation refuses GQA. Here the key/value heads are repeated to the query heads first (what
  `enable_gqa` means: query head h reads key/value head h // (query heads / kv heads)), then plain attention.

Why the TorchScript exporter at all (`dynamo=False`): measured on this machine, the dynamo exporter took 23 s
for the tiny language model's slow step (the TorchScript one 0.4 s) and never finished the codec encoder (its
symbolic shapes explode on the codec's ceil-based padding arithmetic; see `export/README.md`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.onnx import symbolic_helper

OPSET = 17


def _rms_norm(g: Any, x: Any, normalized_shape: Any, weight: Any, eps: Any) -> Any:
    shape = symbolic_helper._get_const(normalized_shape, "is", "normalized_shape")
    axes = list(range(-len(shape), 0))
    # torch uses the dtype's machine epsilon when eps is None (fish-speech always passes one)
    epsilon = (
        float(torch.finfo(torch.float32).eps)
        if symbolic_helper._is_none(eps)
        else float(symbolic_helper._get_const(eps, "f", "eps"))
    )
    mean_square = g.op("ReduceMean", g.op("Mul", x, x), axes_i=axes, keepdims_i=1)
    denominator = g.op("Sqrt", g.op("Add", mean_square, g.op("Constant", value_t=torch.tensor(epsilon))))
    normed = g.op("Div", x, denominator)
    return normed if symbolic_helper._is_none(weight) else g.op("Mul", normed, weight)


def _repeat_heads(g: Any, tensor: Any, repeats: int) -> Any:
    """`[B, KV, T, D]` -> `[B, KV * repeats, T, D]`, each head repeated `repeats` times in place (interleave)."""
    if repeats == 1:
        return tensor
    sizes = symbolic_helper._get_tensor_sizes(tensor)
    kv_heads, head_dim = sizes[1], sizes[3]
    if kv_heads is None or head_dim is None:
        raise RuntimeError("grouped-query attention export needs static head counts and head size")
    expanded = g.op("Unsqueeze", tensor, g.op("Constant", value_t=torch.tensor([2])))
    tiled = g.op("Tile", expanded, g.op("Constant", value_t=torch.tensor([1, 1, repeats, 1, 1])))
    # 0 keeps the (dynamic) batch size, -1 infers the (dynamic) length
    target = torch.tensor([0, kv_heads * repeats, -1, head_dim])
    return g.op("Reshape", tiled, g.op("Constant", value_t=target))


@symbolic_helper.parse_args("v", "v", "v", "v", "f", "b", "v", "b")
def _attention(
    g: Any,
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: Any = None,
    enable_gqa: bool = False,
) -> Any:
    if is_causal or dropout_p != 0.0 or not symbolic_helper._is_none(scale):
        raise RuntimeError("only inference attention with an explicit or no mask and the default scale is exported")
    query_heads = symbolic_helper._get_tensor_sizes(query)[1]
    key_heads = symbolic_helper._get_tensor_sizes(key)[1]
    head_dim = symbolic_helper._get_tensor_sizes(query)[3]
    if query_heads is None or key_heads is None or head_dim is None:
        raise RuntimeError("attention export needs static head counts and head size")
    if enable_gqa:
        key = _repeat_heads(g, key, query_heads // key_heads)
        value = _repeat_heads(g, value, query_heads // key_heads)
    scores = g.op("MatMul", query, g.op("Transpose", key, perm_i=[0, 1, 3, 2]))
    scores = g.op("Mul", scores, g.op("Constant", value_t=torch.tensor(head_dim**-0.5)))
    if not symbolic_helper._is_none(attn_mask):
        # boolean mask: False positions get -inf (every row here sees at least its own position)
        blocked = g.op(
            "Where",
            attn_mask,
            g.op("Constant", value_t=torch.tensor(0.0)),
            g.op("Constant", value_t=torch.tensor(float("-inf"))),
        )
        scores = g.op("Add", scores, blocked)
    return g.op("MatMul", g.op("Softmax", scores, axis_i=-1), value)


@contextmanager
def decode_step_symbolics() -> Iterator[None]:
    """Register the two translations for the duration of an export, then restore the exporter's own."""
    names: dict[str, Callable[..., Any]] = {
        "aten::rms_norm": _rms_norm,
        "aten::scaled_dot_product_attention": _attention,
    }
    for name, function in names.items():
        torch.onnx.register_custom_op_symbolic(name, function, OPSET)
    try:
        yield
    finally:
        for name in names:
            torch.onnx.unregister_custom_op_symbolic(name, OPSET)
