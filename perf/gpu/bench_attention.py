"""Decode attention of the slow transformer, alone: candidate kernels side by side on one GPU.

One query per row over a slot cache ``[B, KV, T, D]`` with a position mask, as ``batched._attend_one`` does (the
query heads sharing a KV head folded into its query rows). Each candidate runs inside a CUDA graph (as in the
engine) and is timed by replay; its error is against a float32 reference. Writes ``attention.json`` to ``--out``
with the git SHA.

    python3 perf/gpu/bench_attention.py --out /tmp/out
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from voicereel.engine.batched import attend_used

HEADS, KV_HEADS, DIM = 16, 8, 128  # S1-mini's slow transformer


def sdpa(backend: SDPBackend | None) -> Callable[..., torch.Tensor]:
    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if backend is None:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    return run


def products(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scores as a batched product with float32 output, masked softmax in float32, probabilities in the cache dtype
    times the values (flash attention's precision)."""
    b, kv, g, d = q.shape
    scores = torch.bmm(q.reshape(b * kv, g, d), k.reshape(b * kv, -1, d).transpose(1, 2), out_dtype=torch.float32)
    scores = scores.view(b, kv, g, -1) * d**-0.5
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).to(v.dtype)
    return torch.bmm(weights.view(b * kv, g, -1), v.reshape(b * kv, -1, d)).view(b, kv, g, d)


def flash_used_length(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """FlashAttention's variable-length kernel over each row's used positions only (``batched.attend_used``); the
    lengths come from the mask here, one small reduction inside the timed graph (the engine would compute them once a
    step, not once a layer)."""
    return attend_used(q, k, v, mask[:, 0, 0].sum(-1, dtype=torch.int32))


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)


def replay_ms(fn: Callable[[], torch.Tensor], reps: int = 50) -> float:
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        graph.replay()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / reps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--batches", default="1,16,128")
    parser.add_argument("--kv", default="256,1024")
    args = parser.parse_args()
    candidates: dict[str, Callable[..., torch.Tensor]] = {
        "sdpa_default": sdpa(None),
        "sdpa_cudnn": sdpa(SDPBackend.CUDNN_ATTENTION),
        "sdpa_efficient": sdpa(SDPBackend.EFFICIENT_ATTENTION),
        "products": products,
        "products_compiled": torch.compile(products, dynamic=False),
        "flash_used_length": flash_used_length,
    }
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        for kv_len in (int(k) for k in args.kv.split(",")):
            torch.manual_seed(0)
            q = torch.randn(batch, KV_HEADS, HEADS // KV_HEADS, DIM, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(batch, KV_HEADS, kv_len, DIM, device="cuda", dtype=torch.bfloat16)
            v = torch.randn_like(k)
            positions = torch.randint(kv_len // 2, kv_len, (batch,), device="cuda")
            mask = (torch.arange(kv_len, device="cuda")[None, :] <= positions[:, None])[:, None, None, :]
            expected = reference(q, k, v, mask)
            for name, fn in candidates.items():
                try:
                    got = fn(q, k, v, mask)
                    ms = replay_ms(functools.partial(fn, q, k, v, mask))
                    error = float((got.float() - expected).abs().max())
                    row = {"batch": batch, "kv": kv_len, "kernel": name, "us": round(ms * 1000, 1), "max_err": error}
                except Exception as exc:  # a backend may refuse a shape: record why
                    row = {"batch": batch, "kv": kv_len, "kernel": name, "error": f"{type(exc).__name__}: {exc}"[:200]}
                print(json.dumps(row), flush=True)
                rows.append(row)
    sha = (
        os.environ.get("BENCH_GIT_SHA")
        or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    )
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"git_sha": sha, "device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}
    (args.out / "attention.json").write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
