"""allow_graphs_per_function raises dynamo's per-function and overall graph limits and never lowers them."""

from __future__ import annotations

import torch._dynamo

from voicereel.engine.compile_limits import allow_graphs_per_function


def test_limits_are_raised_and_never_lowered() -> None:
    config = torch._dynamo.config
    with config.patch(cache_size_limit=8, accumulated_cache_size_limit=256):
        allow_graphs_per_function()
        assert (config.cache_size_limit, config.accumulated_cache_size_limit) == (64, 512)
    with config.patch(cache_size_limit=100, accumulated_cache_size_limit=10_000):
        allow_graphs_per_function()
        assert (config.cache_size_limit, config.accumulated_cache_size_limit) == (100, 10_000)
