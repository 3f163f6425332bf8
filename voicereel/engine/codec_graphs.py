"""CUDA graphs of the codec's decode calls (codec_decoder knob ``cuda_graphs``).

Once a codec's shapes are fixed (`Codec.fix_shapes`: batches padded to bucket sizes, the waveform decoder at the
lengths of `codec.window_spans`), a decode call is one of a few `(batch bucket, skip, end)` shapes
(`codec.graph_calls`), each of which can be captured once and replayed: one launch instead of the hundreds of
kernels of the quantizer's transformer and the waveform decoder, which matters when the language model's process
keeps the GPU busy beside the codec's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from voicereel.engine.cuda_graph import record_graph

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE

Decode = Callable[[torch.Tensor, int], torch.Tensor]  # (codes [B, 10, end] int64, skip) -> float32 PCM [B, samples]


class SpanGraphs:
    """One captured decode per `(batch, skip, end)`, all in one memory pool (they never run at once)."""

    def __init__(self) -> None:
        self._pool: _POOL_HANDLE | None = None
        self._graphs: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor, torch.cuda.CUDAGraph]] = {}

    def __len__(self) -> int:
        return len(self._graphs)

    def capture(self, decode: Decode, codes_shape: tuple[int, int, int], skip: int, device: torch.device) -> None:
        """Capture ``decode`` of int64 codes of ``codes_shape`` `(batch, codebooks, end)`."""
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        batch, _, end = codes_shape
        codes = torch.zeros(codes_shape, dtype=torch.int64, device=device)
        outputs: list[torch.Tensor] = []

        def run() -> None:
            outputs.append(decode(codes, skip))

        graph = record_graph(run, self._pool)
        self._graphs[(batch, skip, end)] = (codes, outputs[-1], graph)  # the captured run's output

    def replay(self, codes: torch.Tensor, skip: int) -> torch.Tensor | None:
        """The decode of ``codes`` (on the graphs' device, int64) through its graph; None when none was captured
        for its shape. The result is a copy: the next replay overwrites the graph's own output."""
        entry = self._graphs.get((codes.shape[0], skip, codes.shape[2]))
        if entry is None:
            return None
        static, audio, graph = entry
        static.copy_(codes)
        graph.replay()
        return audio.clone()
