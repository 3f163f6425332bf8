"""The text2semantic decode step as two exportable graphs, with the KV caches as explicit inputs and outputs.

Both are composed from the serving engine's pieces (`voicereel.engine.batched`: the frame embedding, the
per-block q/k/v projection with RoPE, grouped-query attention and block tail, over fish-speech's own modules and
weights) and checked against the engine's own `decode_slow` / `fast_forward` (`export/verify.py`). What differs is
how the cache is written: the engine writes its static slot cache in place (`cache[rows, :, positions] = k`),
which ONNX cannot express on an input; here the slow graph returns the updated cache, written by `scatter`, and
attends over the whole cache with a position mask. The fast graph is the engine's own `fast_position` (it already
returns its cache, written by `where`).

- `t2s_slow_step`: `frame` INT64 `[batch, C + 1]` (token id, then C codes) at `position` INT64 `[batch]`, with
  `k_cache`/`v_cache` FP32 `[layers, batch, kv_heads, cache_len, head_dim]` -> `slow_hidden` `[batch, dim]`,
  `logits` `[batch, num_semantic + 1]` (the engine's restricted head: semantic tokens, then `<|im_end|>`), and
  `k_cache_out`/`v_cache_out` (the input caches with this position written).
- `t2s_fast_step`: codebook position `codebook_index` INT64 `[]` of the fast transformer. Its input is the
  projected `slow_hidden` at position 0 and the embedding of `previous_code` INT64 `[batch]` after that (both
  inputs are always given; the index picks one). Caches `[fast_layers, batch, heads, C, head_dim]`. Outputs
  `logits` `[batch, residual_size]` (residual codes) and the updated caches.

Sampling stays outside both graphs (it is the engine's counter-based random streams).
"""

from __future__ import annotations

from pathlib import Path

import torch

from voicereel.engine.batched import BatchedDualAR, _attend, _block_tail, _project_qkv, fast_position
from voicereel.engine.checkpoints import load_text2semantic


def load_export_engine(ckpt_dir: Path | str) -> BatchedDualAR:
    """The checkpoint's language model in float32, seen through the serving engine."""
    return BatchedDualAR(load_text2semantic(ckpt_dir, "cpu", torch.float32))


class SlowStepGraph(torch.nn.Module):
    """One slow-transformer token per row, each row at its own cache position."""

    def __init__(self, engine: BatchedDualAR) -> None:
        super().__init__()
        self.engine = engine
        self.model = engine.model

    def forward(
        self, frame: torch.Tensor, position: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        engine = self.engine
        x = engine.embed(frame[:, :, None])
        freqs = self.model.freqs_cis[position][:, None]
        slots = torch.arange(k_cache.shape[3], device=position.device)
        mask = (slots[None, :] <= position[:, None])[:, None, None, :]
        batch, kv_heads, head_dim = k_cache.shape[1], k_cache.shape[2], k_cache.shape[4]
        at_position = position[:, None, None, None].expand(batch, kv_heads, 1, head_dim)
        keys_out, values_out = [], []
        for index, block in enumerate(self.model.layers):
            q, k, v = _project_qkv(block.attention, block.attention_norm(x), freqs)
            keys = k_cache[index].scatter(2, at_position, k)
            values = v_cache[index].scatter(2, at_position, v)
            keys_out.append(keys)
            values_out.append(values)
            x = _block_tail(block, x, _attend(block.attention, q, keys, values, mask, causal=False))
        hidden = x[:, 0]
        return hidden, engine.slow_logits(hidden), torch.stack(keys_out), torch.stack(values_out)


class FastStepGraph(torch.nn.Module):
    """One fast-transformer position (codebook `codebook_index`) for every row."""

    def __init__(self, engine: BatchedDualAR) -> None:
        super().__init__()
        self.engine = engine
        self.model = engine.model

    def forward(
        self,
        slow_hidden: torch.Tensor,
        previous_code: torch.Tensor,
        codebook_index: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        engine = self.engine
        first = codebook_index == 0
        x = torch.where(first, engine.fast_input(slow_hidden), engine.fast_code_input(previous_code))
        # The engine's own position function (the same maths the engine runs, attention as products over the C keys).
        return fast_position(
            self.model.fast_layers,
            k_cache,
            v_cache,
            x,
            codebook_index,
            self.model.fast_freqs_cis,
            self.model.fast_norm,
            engine.fast_head_weight,
        )
