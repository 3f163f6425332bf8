"""Which CUDA libraries a process loads, and how fast a decode-sized bf16 GEMV and attention run with them.

Run it twice, once with the environment a Triton stub gets: a directory early on LD_LIBRARY_PATH can put other
cuBLAS/cuDNN builds ahead of torch's own (seventh/eighth sessions: the same decode step took 5.0 ms of GPU time in
text2semantic's stub and 3.8 ms in a plain process on the same H200).

    python3 perf/gpu/check_libs.py
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu python3 perf/gpu/check_libs.py
"""

from __future__ import annotations

import json
import os
import re

import torch
import torch.nn.functional as F


def mapped_cuda_libraries() -> list[str]:
    pattern = re.compile(r"lib(cublas|cublasLt|cudnn[a-z_]*|cudart|nvrtc|nvJitLink)[.-]")
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "/" in line}
    return sorted(p for p in paths if pattern.search(os.path.basename(p)))


def timed_ms(fn: object, repeats: int = 200) -> float:
    assert callable(fn)
    for _ in range(10):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def main() -> None:
    device = torch.device("cuda")
    x = torch.randn(1, 1024, device=device, dtype=torch.bfloat16)
    w = torch.randn(1024 * 3, 1024, device=device, dtype=torch.bfloat16)
    q = torch.randn(1, 16, 1, 64, device=device, dtype=torch.bfloat16)
    kv = torch.randn(1, 16, 1024, 64, device=device, dtype=torch.bfloat16)
    figures = {
        "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH", ""),
        "gemv_1x1024x3072_us": 1000 * timed_ms(lambda: F.linear(x, w)),
        "sdpa_1x16x1024_us": 1000 * timed_ms(lambda: F.scaled_dot_product_attention(q, kv, kv)),
        "cudnn_version": torch.backends.cudnn.version(),
        "libraries": mapped_cuda_libraries(),
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
