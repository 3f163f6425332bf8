"""Recording one CUDA graph: a warm-up run on a side stream, then the captured run, in a shared memory pool.

Used by the language model's decode graphs (`graphs.DecodeRunner`) and the codec's decode graphs
(`codec_graphs.ShapeGraphs`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE


_capture_streams = threading.local()


def capture_stream() -> torch.cuda.Stream:
    """This thread's side stream for warm-up runs and captures on the current device, made once. The caching allocator
    keeps freed blocks per stream: a new stream per capture made every warm-up run hold memory of its own (the codec's
    captures at load reached 64.5 GB on an H100 once nothing emptied the cache between them)."""
    streams: dict[int, torch.cuda.Stream] = _capture_streams.__dict__.setdefault("by_device", {})
    device = torch.cuda.current_device()
    if device not in streams:
        streams[device] = torch.cuda.Stream(device)
    return streams[device]


def record_graph(
    run: Callable[[], None], pool: _POOL_HANDLE, after_warm_up: Callable[[], None] | None = None
) -> torch.cuda.CUDAGraph:
    """Run ``run`` once for real on a side stream (lazy initialisation, autotuning and compilation happen there,
    outside the capture), then ``after_warm_up``, then capture ``run`` into a graph allocating from ``pool``."""
    side = capture_stream()
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
