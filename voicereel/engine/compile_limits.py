"""How many graphs torch.compile may keep per compiled function: one place for every compiled piece's limit."""

from __future__ import annotations


def allow_graphs_per_function(count: int = 64) -> None:
    """Let dynamo keep at least ``count`` graphs per function (default 8; past the limit it stops compiling new
    shapes and runs them eagerly), and 8x that over all functions. Never lowers a limit already higher."""
    import torch._dynamo

    config = torch._dynamo.config
    limit = max(int(config.cache_size_limit), count)
    config.cache_size_limit = limit
    config.accumulated_cache_size_limit = max(int(config.accumulated_cache_size_limit), 8 * limit)
