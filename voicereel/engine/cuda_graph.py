"""Recording one CUDA graph: a warm-up run on a side stream, then the captured run, in a shared memory pool.

Used by the language model's decode graphs (`graphs.DecodeRunner`) and the codec's decode graphs
(`codec_graphs.ShapeGraphs`).
"""

from __future__ import annotations

import contextlib
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
    # Captured with capture_begin/capture_end on the side stream rather than `torch.cuda.graph`, whose entry
    # synchronises the whole device and empties the allocator's cache: another thread of the process using the GPU
    # meanwhile (the in-process codec worker, pcm_render) would then have to get fresh memory from the driver while
    # the capture runs, which invalidates it. thread_local: that thread's own allocations and synchronisations
    # may proceed during the capture (the default, global, fails the capture on them).
    current = torch.cuda.current_stream()
    side.wait_stream(current)
    with torch.cuda.stream(side):
        graph.capture_begin(pool=pool, capture_error_mode="thread_local")
        try:
            run()
        except BaseException:
            # End the capture so the stream is usable again; the run's own error is the one worth raising.
            with contextlib.suppress(RuntimeError):
                graph.capture_end()
            raise
        graph.capture_end()
    current.wait_stream(side)
    return graph
