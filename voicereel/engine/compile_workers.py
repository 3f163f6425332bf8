"""Starting inductor's kernel-compile workers early, so text2semantic's compile warm-up finds them ready.

torch starts its pool of compile worker processes only when the first graph reaches inductor, and until the pool
answers, kernels compile one at a time in the calling process. Started before the weights load, the pool's start
(a process that imports torch, then its workers) overlaps the load instead of the first compile.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def start_compile_workers() -> bool:
    """Ask torch to start (and wake) its compile worker pool now; returns whether it uses one (False where torch
    compiles in-process: one compile thread, no Triton, or a torch without this private entry point)."""
    try:
        from torch._inductor.async_compile import AsyncCompile, maybe_warm_pool
    except ImportError:  # private API: a torch without it compiles as before, its pool started at first compile
        log.warning("torch has no inductor compile-worker pool entry point; compile workers start at first compile")
        return False
    maybe_warm_pool()
    return AsyncCompile._ready_future is not None


def compile_workers_ready() -> bool:
    """Whether torch's compile worker pool has answered (kernels then compile in parallel, not in-process)."""
    from torch._inductor.async_compile import AsyncCompile

    future = AsyncCompile._ready_future
    return future is not None and future.done()
