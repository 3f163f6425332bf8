"""Recording CUDA graphs (voicereel.engine.cuda_graph), GPU only."""

from __future__ import annotations

import pytest
import torch

from voicereel.engine.cuda_graph import capture_stream, record_graph

MIB = 1 << 20


@pytest.mark.gpu
def test_warm_up_runs_of_successive_captures_reuse_one_streams_memory() -> None:
    """Each capture's warm-up run allocates outside the graphs' pool. On a new side stream per capture, freed memory
    cached for one stream was never reused by the next: the codec's captures at load grew to 64.5 GB (H100,
    fourteenth session). One side stream per thread reuses it."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: CUDA graphs cannot be captured")
    x = torch.full((4096, 4096), 0.5, device="cuda")  # 64 MiB; so is each product below

    def run() -> None:
        torch.relu(x @ x).sum()

    pool = torch.cuda.graph_pool_handle()
    graphs = [record_graph(run, pool)]
    torch.cuda.synchronize()
    reserved = torch.cuda.memory_reserved()
    graphs += [record_graph(run, pool) for _ in range(8)]
    torch.cuda.synchronize()
    assert torch.cuda.memory_reserved() - reserved < 128 * MIB  # a stream each: >= 8 x 64 MiB more
    assert capture_stream() is capture_stream()
    for graph in graphs:
        graph.replay()
    torch.cuda.synchronize()
