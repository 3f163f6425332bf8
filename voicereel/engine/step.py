"""Slot state and the two state transitions of generation: prefill a slot, decode one frame for a batch.

``SlotState`` is a set of static tensors indexed by slot. ``decode_step(engine, state, batch, kv_len)``
advances the first ``batch`` slots by one frame and mutates only those tensors, so it is a pure function
of (slot state, weights) with static shapes: on GPU it is captured once per (batch bucket, kv bucket)
into a CUDA graph. Slots inside the batch prefix that are idle compute throw-away frames; their cache
writes land at their own stale position, which a later prefill overwrites and the position mask hides.

A frame is ``C + 1`` ints: the slow head's token id (a semantic token or ``<|im_end|>``), the semantic
code (the token minus the first semantic id; 0 for ``<|im_end|>``, as upstream), then ``C - 1`` residual
codes from the fast transformer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from voicereel.engine.batched import BatchedDualAR, SlowCache
from voicereel.engine.sampling import SamplingRows, index_hash

# Repetition penalty looks at this many previous frames, as upstream.
PENALTY_WINDOW = 16


@dataclass
class SlotState:
    """Everything a decode step reads and writes, one row per slot."""

    frame: torch.Tensor  # [S, C + 1] int64: the last frame, input of the next step
    position: torch.Tensor  # [S] int64: cache position the last frame goes to
    frame_index: torch.Tensor  # [S] int64: frames produced so far (random-stream counter, ring cursor)
    active: torch.Tensor  # [S] int64: 1 while the slot decodes; idle rows' counters do not advance
    history: torch.Tensor  # [S, C, W] int64: ring of recent codes, for the repetition penalty
    sampling: SamplingRows  # [S] each
    rows: torch.Tensor  # [S] int64 arange: static row ids for per-row cache writes
    slow: SlowCache

    @property
    def slots(self) -> int:
        return int(self.position.shape[0])


@dataclass
class HashTables:
    """Hashed vocabulary indices of the two heads (constants of the random streams)."""

    slow: torch.Tensor
    fast: torch.Tensor
    streams: list[torch.Tensor]  # C 0-dim int64: random stream ids as tensors, so compiled samplers see no ints


def new_state(engine: BatchedDualAR, slots: int, capacity: int) -> SlotState:
    device, codebooks = engine.device, engine.num_codebooks

    def longs(*shape: int) -> torch.Tensor:
        return torch.zeros(shape, device=device, dtype=torch.long)

    def floats(value: float) -> torch.Tensor:
        return torch.full((slots,), value, device=device, dtype=torch.float32)

    return SlotState(
        frame=longs(slots, codebooks + 1),
        position=longs(slots),
        frame_index=longs(slots),
        active=longs(slots),
        history=longs(slots, codebooks, PENALTY_WINDOW),
        sampling=SamplingRows(floats(0.0), floats(1.0), floats(1.0), longs(slots)),
        rows=torch.arange(slots, device=device),
        slow=engine.new_slow_cache(slots, capacity),
    )


def hash_tables(engine: BatchedDualAR) -> HashTables:
    return HashTables(
        slow=index_hash(int(engine.head_weight.shape[0]), engine.device),
        fast=index_hash(engine.residual_size, engine.device),
        streams=engine.positions,  # stream k draws codebook k
    )


def sample_frame(
    engine: BatchedDualAR,
    hidden: torch.Tensor,
    sampling: SamplingRows,
    history: torch.Tensor,
    frame_index: torch.Tensor,
    tables: HashTables,
) -> torch.Tensor:
    """The next frame ``[B, C + 1]`` for slow hidden states ``[B, dim]``.

    The slow head picks the token (random stream 0); the fast transformer then runs over the codebook
    positions, fed the projected hidden state and then each sampled code, and picks residual code ``k``
    on random stream ``k``.
    """
    num_semantic = engine.tokens.num_semantic
    valid = torch.arange(PENALTY_WINDOW, device=history.device)[None, :] < frame_index[:, None]
    rows = (sampling.temperature, sampling.top_p, sampling.repetition_penalty, sampling.seed)
    draw = engine.kernels_for(hidden.shape[0]).sample

    def sample(logits: torch.Tensor, index: int, vocab_hash: torch.Tensor) -> torch.Tensor:
        return draw(logits, *rows, history[:, index], valid, frame_index, tables.streams[index], vocab_hash)

    choice = sample(engine.slow_logits(hidden), 0, tables.slow)
    is_end = choice >= num_semantic
    token = torch.where(is_end, engine.tokens.im_end_id, choice + engine.tokens.semantic_begin_id)
    code = torch.where(is_end, 0, choice)
    codes = [code]
    # The frame's fast cache starts as zeros of the batch's rows, made here: position 0 reads none of it, and the
    # compiled position then always gets a cache of the batch's rows made in the same mode (an S-row scratch of the
    # slot state, made outside inference mode, gave it two more variants to compile at start-up).
    _, cache = engine.fast_forward(engine.new_fast_cache(hidden.shape[0]), engine.fast_input(hidden), 0)
    for index in range(1, engine.num_codebooks):
        logits, cache = engine.fast_forward(cache, engine.fast_code_input(code), index)
        code = sample(logits, index, tables.fast)
        codes.append(code)
    return torch.stack([token, *codes], dim=1)


def _record(state: SlotState, batch: int, frame: torch.Tensor) -> None:
    """Store a new frame of the first ``batch`` slots: input of the next step, penalty ring, counters."""
    rows = state.rows[:batch]
    cursor = state.frame_index[:batch] % PENALTY_WINDOW
    state.history[:batch][rows, :, cursor] = frame[:, 1:]
    state.frame[:batch] = frame
    state.frame_index[:batch] += state.active[:batch]


def decode_step(engine: BatchedDualAR, state: SlotState, tables: HashTables, batch: int, kv_len: int) -> None:
    """Advance slots ``[0, batch)`` by one frame; the new frames are in ``state.frame[:batch]``."""
    position = state.position[:batch]
    hidden = engine.decode_slow(state.slow, state.frame[:batch], position, state.rows[:batch], kv_len)
    frame = sample_frame(
        engine,
        hidden,
        state.sampling.narrow(0, batch),
        state.history[:batch],
        state.frame_index[:batch],
        tables,
    )
    state.position[:batch] += state.active[:batch]
    _record(state, batch, frame)


@dataclass(frozen=True)
class Admission:
    """One sequence to start: its slot, prompt ``[C + 1, L]`` and sampling parameters."""

    slot: int
    prompt: torch.Tensor
    temperature: float
    top_p: float
    repetition_penalty: float
    seed: int


# The first frames of admitted sequences from their prompts' last hidden states ``[N, dim]``, sampling rows, penalty
# rings and frame counters: ``sample_frame`` (``DecodeRunner.sample_first`` replays it as a CUDA graph).
FirstFrames = Callable[[torch.Tensor, SamplingRows, torch.Tensor, torch.Tensor], torch.Tensor]


def prefill_slots(
    engine: BatchedDualAR,
    state: SlotState,
    tables: HashTables,
    admissions: list[Admission],
    sample_first: FirstFrames | None = None,
) -> None:
    """Start sequences in their slots together: set their sampling rows, run the prompts, first frames.

    Every per-slot tensor of those slots is rewritten (counters, penalty ring, cache rows up to the prompt
    length), so nothing of a slot's previous occupant can reach the new sequence. First frames come from
    ``sample_first`` (default: ``sample_frame``, eagerly).
    """
    device = state.position.device
    slots = torch.tensor([a.slot for a in admissions], device=device)
    lengths = torch.tensor([a.prompt.shape[1] for a in admissions], device=device)

    def column(values: list[float] | list[int], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(values, device=device, dtype=like.dtype)

    sampling = state.sampling
    count = len(admissions)
    # The frame sampler gets these as decode steps get the slot state's rows: as ordinary tensors even inside
    # inference mode, so its compiled code serves both (inference tensors would trace a second variant).
    with torch.inference_mode(False):
        rows = SamplingRows(
            column([a.temperature for a in admissions], sampling.temperature),
            column([a.top_p for a in admissions], sampling.top_p),
            column([a.repetition_penalty for a in admissions], sampling.repetition_penalty),
            column([a.seed for a in admissions], sampling.seed),
        )
        history = torch.zeros((count, *state.history.shape[1:]), device=device, dtype=state.history.dtype)
        frame_index = torch.zeros(count, device=device, dtype=state.frame_index.dtype)
    sampling.temperature[slots] = rows.temperature
    sampling.top_p[slots] = rows.top_p
    sampling.repetition_penalty[slots] = rows.repetition_penalty
    sampling.seed[slots] = rows.seed
    hidden = engine.prefill_many(state.slow, slots, [a.prompt for a in admissions])
    if sample_first is None:
        frame = sample_frame(engine, hidden, rows, history, frame_index, tables)
    else:
        frame = sample_first(hidden, rows, history, frame_index)
    history[:, :, 0] = frame[:, 1:]
    state.history[slots] = history
    state.position[slots] = lengths
    state.frame[slots] = frame
    state.frame_index[slots] = 1
