"""CUDA graphs of the codec's waveform decoder (codec_decoder knob ``cuda_graphs``).

Once a codec's shapes are fixed (`Codec.fix_shapes`: batches padded to bucket sizes, the waveform decoder at the
lengths of `codec.window_spans`), the waveform decoder (~98 % of a decode's time, a stack of convolutions) sees only
a few input shapes, each of which is captured once and replayed: one launch instead of its hundreds of kernels,
which otherwise queue one by one beside the language model's work on a shared GPU. The quantizer before it stays
eager: fish-speech's causal transformer there builds its attention mask on the CPU on every call, which a capture
cannot contain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from voicereel.engine.cuda_graph import record_graph

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE


class ShapeGraphs:
    """One captured call of ``run`` per input shape, all in one memory pool (they never run at once)."""

    def __init__(self, run: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.run = run
        self._pool: _POOL_HANDLE | None = None
        self._graphs: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor, torch.cuda.CUDAGraph]] = {}

    def __len__(self) -> int:
        return len(self._graphs)

    def capture(self, example: torch.Tensor) -> None:
        """Capture ``run`` of inputs shaped, typed and placed like ``example`` (its values are used once, for the
        warm-up run)."""
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        static = example.clone()
        outputs: list[torch.Tensor] = []
        graph = record_graph(lambda: outputs.append(self.run(static)), self._pool)
        self._graphs[tuple(example.shape)] = (static, outputs[-1], graph)  # the captured run's output

    def __call__(self, given: torch.Tensor) -> torch.Tensor:
        """``run(given)``: replayed when its shape was captured, else run directly. A replay's result is a copy
        (the next replay overwrites the graph's own output)."""
        entry = self._graphs.get(tuple(given.shape))
        if entry is None:
            return self.run(given)
        static, output, graph = entry
        static.copy_(given)
        graph.replay()
        return output.clone()
