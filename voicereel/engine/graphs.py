"""Running the decode step: eagerly, or as CUDA graphs captured per (batch bucket, kv-length bucket).

A decode step over ``batch`` slots attending ``kv_len`` cache positions has static shapes, and it reads
and writes only the engine's static slot tensors, so on CUDA one graph per bucket pair replays it
without any Python or launch overhead. Buckets keep the number of graphs small: batch rounds up to a
power of two (capped at the slot count), kv length to a multiple of a block (capped at the capacity).

Capturing needs a warm-up run, which executes the step for real. The warm-up's effects on the slot
rows (frame, position, counters, penalty ring) are undone from a snapshot; its cache writes land at the
same positions the replay writes next, with the same values, so they need no undo.

Admissions use the same machinery for their first frames (``sample_first``): the frame sampler over static
input rows, one graph per batch bucket. Graphs are captured at first use, or all of them at load
(``Engine.capture_graphs``, knob ``capture_at_load``: every decode bucket and every first-frame batch bucket).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from voicereel.engine.batched import BatchedDualAR
from voicereel.engine.cuda_graph import record_graph
from voicereel.engine.sampling import SamplingRows
from voicereel.engine.step import HashTables, SlotState, decode_step, sample_frame

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE


def bucket_batch(needed: int, max_slots: int) -> int:
    """Smallest power of two >= ``needed``, capped at ``max_slots``."""
    if not 0 < needed <= max_slots:
        raise ValueError(f"batch {needed} outside 1..{max_slots}")
    return min(1 << (needed - 1).bit_length(), max_slots)


def bucket_kv_len(needed: int, block: int, capacity: int) -> int:
    """``needed`` rounded up to a multiple of ``block``, capped at ``capacity``."""
    if not 0 < needed <= capacity:
        raise ValueError(f"kv length {needed} outside 1..{capacity}")
    return min(-(-needed // block) * block, capacity)


def batch_buckets(max_slots: int) -> list[int]:
    """Every batch ``bucket_batch`` can return, smallest first."""
    return sorted({bucket_batch(n, max_slots) for n in (1 << k for k in range(max_slots.bit_length()))} | {max_slots})


def all_buckets(max_slots: int, block: int, capacity: int) -> list[tuple[int, int]]:
    """Every (batch, kv length) pair ``bucket_batch`` and ``bucket_kv_len`` can return, smallest first."""
    batches = batch_buckets(max_slots)
    kv_lens = sorted({bucket_kv_len(n, block, capacity) for n in range(block, capacity, block)} | {capacity})
    return [(batch, kv_len) for batch in batches for kv_len in kv_lens]


def _columns(rows: SamplingRows) -> tuple[torch.Tensor, ...]:
    return rows.temperature, rows.top_p, rows.repetition_penalty, rows.seed


class DecodeRunner:
    """Runs ``decode_step`` for a bucket pair, through a captured CUDA graph when enabled."""

    def __init__(self, model: BatchedDualAR, state: SlotState, tables: HashTables, use_graphs: bool) -> None:
        if use_graphs and state.frame.device.type != "cuda":
            raise ValueError("CUDA graphs need the engine on a CUDA device")
        self.model = model
        self.state = state
        self.tables = tables
        self.use_graphs = use_graphs
        self.graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        self.first_graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._pool: _POOL_HANDLE | None = None
        # Static inputs and output of the first-frame graphs (admissions), one row per slot.
        slots, device = state.slots, state.frame.device
        self._first_hidden = torch.zeros((slots, model.config.dim), device=device, dtype=model.dtype)
        self._first_rows = SamplingRows(*(torch.zeros_like(column) for column in _columns(state.sampling)))
        self._first_history = torch.zeros_like(state.history)
        self._first_index = torch.zeros_like(state.frame_index)
        self._first_frame = torch.zeros_like(state.frame)

    def step(self, batch: int, kv_len: int) -> None:
        if not self.use_graphs:
            decode_step(self.model, self.state, self.tables, batch, kv_len)
            return
        graph = self.graphs.get((batch, kv_len))
        if graph is None:
            graph = self._capture(batch, kv_len)
            self.graphs[(batch, kv_len)] = graph
        graph.replay()

    def sample_first(
        self, hidden: torch.Tensor, rows: SamplingRows, history: torch.Tensor, frame_index: torch.Tensor
    ) -> torch.Tensor:
        """First frames of ``N`` admitted sequences (``step.FirstFrames``): the frame sampler from the fast
        zero cache, eagerly or as a CUDA graph per batch bucket. The sampler is a decode step's larger half (the fast
        transformer's ten positions and eleven draws, ~600 kernels at batch 1); launched one by one it cost an
        admission tens of milliseconds of host time."""
        count = hidden.shape[0]
        if not self.use_graphs:
            return sample_frame(self.model, hidden, rows, history, frame_index, self.tables)
        self._first_hidden[:count] = hidden
        for static, given in zip(_columns(self._first_rows), _columns(rows), strict=True):
            static[:count] = given
        self._first_history[:count] = history
        self._first_index[:count] = frame_index
        batch = bucket_batch(count, self.state.slots)
        self.capture_first([batch])
        self.first_graphs[batch].replay()
        return self._first_frame[:count].clone()

    def capture_first(self, batches: list[int]) -> int:
        """Capture the first-frame graphs of the batch buckets ``batches`` not captured yet; returns how many.
        Safe at any time between steps: the warm-up run writes only the static output."""
        if not self.use_graphs:
            return 0
        missing = [batch for batch in batches if batch not in self.first_graphs]
        for batch in missing:
            self.first_graphs[batch] = self._record(functools.partial(self._first_step, batch))
        return len(missing)

    def _first_step(self, batch: int) -> None:
        self._first_frame[:batch] = sample_frame(
            self.model,
            self._first_hidden[:batch],
            self._first_rows.narrow(0, batch),
            self._first_history[:batch],
            self._first_index[:batch],
            self.tables,
        )

    def capture(self, buckets: list[tuple[int, int]]) -> int:
        """Capture the graphs of ``buckets`` not captured yet (at load, so no request waits on a capture);
        returns how many were captured. Only while every slot is idle: a capture's warm-up run decodes them."""
        if not self.use_graphs:
            return 0
        missing = [bucket for bucket in buckets if bucket not in self.graphs]
        for batch, kv_len in missing:
            self.graphs[(batch, kv_len)] = self._capture(batch, kv_len)
        return len(missing)

    def forget_graphs(self) -> None:
        """Drop every captured graph (say, after the pieces they replay were replaced); later captures use a new
        memory pool: capturing into the pool of destroyed graphs trips an allocator assertion (torch 2.11)."""
        self.graphs.clear()
        self.first_graphs.clear()
        self._pool = None

    def _row_tensors(self, batch: int) -> list[torch.Tensor]:
        state = self.state
        return [state.frame[:batch], state.position[:batch], state.frame_index[:batch], state.history[:batch]]

    def _capture(self, batch: int, kv_len: int) -> torch.cuda.CUDAGraph:
        snapshot = [tensor.clone() for tensor in self._row_tensors(batch)]

        def undo() -> None:
            for tensor, saved in zip(self._row_tensors(batch), snapshot, strict=True):
                tensor.copy_(saved)

        return self._record(lambda: decode_step(self.model, self.state, self.tables, batch, kv_len), undo)

    def _record(self, run: Callable[[], None], after_warm_up: Callable[[], None] | None = None) -> torch.cuda.CUDAGraph:
        """``run`` captured into a graph that shares this runner's memory pool (``cuda_graph.record_graph``)."""
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        return record_graph(run, self._pool, after_warm_up)
