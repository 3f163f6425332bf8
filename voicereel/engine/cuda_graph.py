"""Recording one CUDA graph: a warm-up run on a side stream, then the captured run, in a shared memory pool.

Used by the language model's decode graphs (`graphs.DecodeRunner`) and the codec's decode graphs
(`codec_graphs.ShapeGraphs`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE


def record_graph(
    run: Callable[[], None], pool: _POOL_HANDLE, after_warm_up: Callable[[], None] | None = None
) -> torch.cuda.CUDAGraph:
    """Run ``run`` once for real on a side stream (lazy initialisation, autotuning and compilation happen there,
    outside the capture), then ``after_warm_up``, then capture ``run`` into a graph allocating from ``pool``."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        run()
    torch.cuda.current_stream().wait_stream(side)
    if after_warm_up is not None:
        after_warm_up()
    graph = torch.cuda.CUDAGraph()
    # thread_local: other threads of the process may use the GPU meanwhile (the in-process codec worker,
    # pcm_render); the default, global, makes their allocations and synchronisations fail the capture.
    with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
        run()
    return graph
