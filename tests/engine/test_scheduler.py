"""Continuous batching: a request's codes never depend on what else runs with it.

N requests with different texts, sampling and lengths, joining at different steps, must each produce
exactly the codes they produce alone (greedy and seeded sampling). Cancellation frees the slot at the
next step; a reused slot carries nothing of its previous occupant.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from voicereel.engine.batched import BatchedDualAR
from voicereel.engine.generate import FinishReason, FrameBudget, GenerationRequest, SamplingParams, chunk_seed
from voicereel.engine.prompt import VoiceTurn, build_prompt
from voicereel.engine.scheduler import Engine, EngineConfig, EngineStopped, RequestError, prefill_groups
from voicereel.engine.step import Admission, decode_step, hash_tables, new_state, prefill_slots
from voicereel.engine.trace import parse_traces


@dataclass
class Outcome:
    chunks: list[torch.Tensor] = field(default_factory=list)
    done: list[tuple[FinishReason, str | None]] = field(default_factory=list)

    @property
    def codes(self) -> torch.Tensor:
        return torch.cat(self.chunks, dim=1) if self.chunks else torch.zeros(10, 0, dtype=torch.int32)


@dataclass
class Spec:
    request_id: str
    text: str | list[str]
    sampling: SamplingParams
    max_new_frames: int | None = None
    references: list[VoiceTurn] = field(default_factory=list)


def _config(**overrides: Any) -> EngineConfig:
    values: dict[str, Any] = {
        "max_slots": 4,
        "slot_capacity": 512,
        "stream_frames": 4,
        "budget": FrameBudget(frames_per_char=1.0, min_frames=6, max_frames=30),
        "kv_block": 64,
    }
    values.update(overrides)
    return EngineConfig(**values)


def _request(spec: Spec, outcome: Outcome) -> GenerationRequest:
    chunks = spec.text if isinstance(spec.text, list) else [spec.text]
    return GenerationRequest(
        spec.request_id,
        list(chunks),
        references=spec.references,
        sampling=spec.sampling,
        max_new_frames=spec.max_new_frames,
        on_codes=outcome.chunks.append,
        on_done=lambda reason, message: outcome.done.append((reason, message)),
    )


def _run(engine: Engine, joins: list[tuple[int, Spec]], max_steps: int = 500) -> dict[str, Outcome]:
    """Step the engine by hand; submit each spec at its step. Returns every request's outcome."""
    outcomes = {spec.request_id: Outcome() for _, spec in joins}
    for step in range(max_steps):
        for join_step, spec in joins:
            if join_step == step:
                engine.submit(_request(spec, outcomes[spec.request_id]))
        busy = engine.step()
        if not busy and step >= max(join_step for join_step, _ in joins):
            return outcomes
    raise AssertionError("engine did not finish")


def _alone(model: BatchedDualAR, spec: Spec) -> Outcome:
    return _run(Engine(model, _config()), [(0, spec)])[spec.request_id]


def _reference(seed: int, frames: int) -> VoiceTurn:
    generator = torch.Generator().manual_seed(seed)
    semantic = torch.randint(0, 4096, (1, frames), generator=generator)
    return VoiceTurn("reference words", torch.cat([semantic, torch.randint(0, 1024, (9, frames), generator=generator)]))


@pytest.fixture(scope="module")
def model(tiny_lm: Any) -> BatchedDualAR:
    return BatchedDualAR(tiny_lm)


SPECS = [
    Spec("greedy", "Hello there.", SamplingParams(temperature=0.0, repetition_penalty=1.2, seed=1)),
    Spec("sampled", "A somewhat longer line of text", SamplingParams(0.7, 0.9, 1.2, seed=5), max_new_frames=17),
    Spec("hot", "짧게", SamplingParams(1.2, 0.95, 1.0, seed=9), references=[_reference(3, 20)]),
    Spec("ja", "こんにちは。", SamplingParams(0.5, 0.7, 1.5, seed=2**62 + 7)),
    Spec("late", "joins when others are mid-way", SamplingParams(0.9, 0.8, 1.1, seed=13)),
    Spec("greedy-2", "greedy again, other text", SamplingParams(0.0, seed=0), references=[_reference(4, 9)]),
]


def test_batched_requests_equal_each_request_alone(model: BatchedDualAR) -> None:
    joins = [(0, SPECS[0]), (0, SPECS[1]), (2, SPECS[2]), (3, SPECS[3]), (9, SPECS[4]), (15, SPECS[5])]
    together = _run(Engine(model, _config()), joins)  # 6 requests, 4 slots: later ones wait and reuse slots
    for _, spec in joins:
        alone = _alone(model, spec)
        got = together[spec.request_id]
        assert got.done == alone.done and len(got.done) == 1, spec.request_id
        assert got.codes.shape[1] > 0
        assert torch.equal(got.codes, alone.codes), spec.request_id
    assert together["sampled"].codes.shape[1] == 17  # the request's own cap
    # different requests really are different (the comparison above is not vacuous)
    assert not torch.equal(together["greedy"].codes[:, :6], together["late"].codes[:, :6])


@pytest.mark.parametrize("prefill_tokens", [8192, 120], ids=["one-pass", "several-passes"])
def test_requests_admitted_together_equal_each_alone(model: BatchedDualAR, prefill_tokens: int) -> None:
    """Six requests with prompts of different lengths join in one step and are prefilled in padded passes."""
    engine = Engine(model, _config(max_slots=6, prefill_tokens=prefill_tokens))
    joins = [(0, spec) for spec in SPECS]
    lengths = sorted(build_prompt(model.model.tokenizer, 10, spec.text, spec.references).shape[1] for spec in SPECS)
    assert lengths[0] < lengths[-1] <= 120  # different lengths, each one fits a pass of 120 tokens
    together = _run(engine, joins)
    passes = engine.times.counts["prefill"]
    assert engine.times.counts["prefilled"] == len(SPECS)
    assert passes == len(prefill_groups_of(lengths, prefill_tokens))
    assert (passes == 1) == (prefill_tokens > 120)
    for spec in SPECS:
        alone = _alone(model, spec)
        assert together[spec.request_id].done == alone.done, spec.request_id
        assert torch.equal(together[spec.request_id].codes, alone.codes), spec.request_id


def prefill_groups_of(lengths: list[int], max_tokens: int) -> list[list[int]]:
    runs = [SimpleNamespace(prompt=torch.zeros(11, length)) for length in lengths]
    return [[run.prompt.shape[1] for run in group] for group in prefill_groups(runs, max_tokens)]  # type: ignore[arg-type]


def test_prefill_passes_stay_within_the_token_budget() -> None:
    groups = prefill_groups_of([50, 10, 30, 10, 200, 40], 100)
    assert groups == [[10, 10, 30], [40, 50], [200]]  # shortest first; a prompt over the budget runs alone
    assert all(len(group) * max(group) <= 100 for group in groups if len(group) > 1)
    assert prefill_groups_of([], 100) == []


@pytest.mark.parametrize(("interval", "passes"), [(8, 2), (1, 3)])
def test_next_chunks_wait_to_share_a_prefill_pass(model: BatchedDualAR, interval: int, passes: int) -> None:
    """Two requests end their first chunk two steps apart while a third decodes on: with a wait of 8 steps
    their next chunks are prefilled in one pass, with a wait of 1 in one pass each; codes never change."""
    specs = [
        Spec("a", ["ten chars.", "and then more"], SamplingParams(0.8, seed=21)),
        Spec("b", ["twelve chars", "and the rest"], SamplingParams(0.8, seed=22)),
        Spec("long", "y" * 30, SamplingParams(0.8, seed=23)),
    ]
    engine = Engine(model, _config(max_slots=3, prefill_interval=interval))
    together = _run(engine, [(0, spec) for spec in specs])
    assert engine.times.counts["prefill"] == passes  # the first pass admits all three
    assert engine.times.counts["prefilled"] == 5
    for spec in specs:
        alone = _alone(model, spec)
        assert together[spec.request_id].done == alone.done, spec.request_id
        assert torch.equal(together[spec.request_id].codes, alone.codes), spec.request_id


@pytest.mark.parametrize(("wait_ms", "passes"), [(1500.0, 1), (0.0, 2)])
def test_an_idle_engine_waits_for_a_burst_to_share_one_prefill(
    model: BatchedDualAR, wait_ms: float, passes: int
) -> None:
    """A request reaches an idle engine and a second one follows 0.3 s later (as requests of several clients do,
    through other threads): with admit_wait_ms both are prefilled in one pass, without it the first runs alone and
    the second gets a pass of its own. Codes equal each request alone either way."""
    specs = [
        Spec("first", "ten chars.", SamplingParams(0.8, seed=31)),
        Spec("next", "other text", SamplingParams(0.8, seed=32)),
    ]
    outcomes = {spec.request_id: Outcome() for spec in specs}
    engine = Engine(model, _config(admit_wait_ms=wait_ms))
    engine.submit(_request(specs[0], outcomes["first"]))
    later = threading.Timer(0.3, lambda: engine.submit(_request(specs[1], outcomes["next"])))
    later.start()
    engine.step()
    later.join()
    for _ in range(500):
        if not engine.step():
            break
    assert engine.times.counts["prefill"] == passes
    assert engine.times.counts["prefilled"] == 2
    assert ("burst_wait" in engine.times.counts) == (wait_ms > 0)
    for spec in specs:
        alone = _alone(model, spec)
        assert outcomes[spec.request_id].done == alone.done, spec.request_id
        assert torch.equal(outcomes[spec.request_id].codes, alone.codes), spec.request_id


def test_trace_stamps_a_request_on_its_way_to_the_first_codes(
    model: BatchedDualAR, caplog: pytest.LogCaptureFixture
) -> None:
    """With trace_requests each request logs one line at its first streamed codes: arrival, its prefill pass (and
    how many rows that pass had), first codes, in order; without it, none."""
    specs = [
        Spec("p", "ten chars.", SamplingParams(0.8, seed=41)),
        Spec("q", "more text here", SamplingParams(0.8, seed=42)),
    ]
    with caplog.at_level(logging.WARNING, logger="voicereel.engine.scheduler"):
        _run(
            Engine(model, _config(trace_requests=True)),
            [(0, specs[0]), (0, specs[1]), (3, Spec("r", "late", SamplingParams(0.8, seed=43)))],
        )
        traced = parse_traces(record.getMessage() for record in caplog.records)["text2semantic"]
        caplog.clear()
        _run(Engine(model, _config()), [(0, specs[0])])
        assert not parse_traces(record.getMessage() for record in caplog.records)
    by_id = {str(fields["id"]): fields for fields in traced}
    assert sorted(by_id) == ["p", "q", "r"]
    assert by_id["p"]["pass_rows"] == by_id["q"]["pass_rows"] == 2 and by_id["r"]["pass_rows"] == 1
    for fields in traced:
        stamps = [float(fields[key]) for key in ("submitted", "prefill_start", "prefill_end", "first_codes")]
        assert stamps == sorted(stamps), fields


def test_trace_keeps_the_serving_layers_arrival_time(model: BatchedDualAR, caplog: pytest.LogCaptureFixture) -> None:
    """A request's ``received`` (when text2semantic's execute got it) is its trace's first milestone."""
    engine = Engine(model, _config(trace_requests=True))
    request = _request(Spec("r", "ten chars.", SamplingParams(0.8, seed=5)), Outcome())
    request.received = time.time() - 0.5
    with caplog.at_level(logging.WARNING, logger="voicereel.engine.scheduler"):
        engine.submit(request)
        while engine.step():
            pass
    (fields,) = parse_traces(record.getMessage() for record in caplog.records)["text2semantic"]
    assert fields["received"] == request.received
    assert float(fields["submitted"]) - request.received >= 0.5


def test_a_busy_engine_does_not_wait_for_a_burst(model: BatchedDualAR) -> None:
    """Once a slot decodes, a new request is prefilled at the next step, however long admit_wait_ms is."""
    engine = Engine(model, _config(admit_wait_ms=100.0))
    first, second = Outcome(), Outcome()
    engine.submit(_request(Spec("a", "x" * 30, SamplingParams(0.8, seed=1)), first))
    engine.step()  # idle engine: waits up to 0.1 s, then prefills "a", which then decodes
    assert engine.times.counts["burst_wait"] == 1 and engine.busy_slots == [0]
    engine.submit(_request(Spec("b", "y" * 30, SamplingParams(0.8, seed=2)), second))
    engine.step()
    assert engine.times.counts["burst_wait"] == 1  # no second wait
    assert engine.times.counts["prefill"] == 2 and engine.busy_slots == [0, 1]


def test_seed_decides_the_draws(model: BatchedDualAR) -> None:
    base = Spec("a", "same text", SamplingParams(1.0, 0.95, 1.0, seed=1))
    again = _alone(model, base).codes
    assert torch.equal(again, _alone(model, base).codes)
    other = _alone(model, Spec("b", "same text", SamplingParams(1.0, 0.95, 1.0, seed=2))).codes
    assert not torch.equal(again, other)


def test_codes_are_streamed_in_chunks_within_range(model: BatchedDualAR) -> None:
    outcome = _alone(model, Spec("s", "ten chars!", SamplingParams(0.8, seed=3)))
    sizes = [chunk.shape[1] for chunk in outcome.chunks]
    assert sum(sizes) == 6 + 9  # min_frames + 1 frame per non-space character
    assert all(size == 4 for size in sizes[:-1]) and 0 < sizes[-1] <= 4
    codes = outcome.codes
    assert codes.dtype == torch.int32 and codes.shape[0] == 10
    assert int(codes[0].max()) < 4096 and int(codes[1:].max()) < 1024 and int(codes.min()) >= 0
    assert outcome.done == [(FinishReason.length, None)]


def test_cancel_frees_the_slot_at_the_next_step(model: BatchedDualAR) -> None:
    engine = Engine(model, _config(max_slots=2))
    outcomes = {name: Outcome() for name in ("a", "b", "c")}
    long = SamplingParams(0.8, seed=1)
    engine.submit(_request(Spec("a", "x" * 30, long), outcomes["a"]))
    engine.submit(_request(Spec("b", "y" * 30, long), outcomes["b"]))
    engine.submit(_request(Spec("c", "z" * 30, long), outcomes["c"]))
    for _ in range(3):
        engine.step()
    assert engine.busy_slots == [0, 1] and engine.waiting == 1
    streamed = len(outcomes["a"].chunks)
    engine.cancel("a")
    engine.step()
    assert outcomes["a"].done == [(FinishReason.cancelled, None)]
    assert len(outcomes["a"].chunks) == streamed  # nothing more after the cancel
    assert engine.busy_slots == [0, 1] and engine.waiting == 0  # "c" took slot 0 in the same step
    engine.cancel("b")
    engine.cancel("c")
    engine.step()
    assert engine.busy_slots == [] and not engine.step()


def test_is_cancelled_is_polled(model: BatchedDualAR) -> None:
    engine = Engine(model, _config(cancel_poll_steps=1))
    flag = threading.Event()
    outcome = Outcome()
    request = _request(Spec("p", "polled request", SamplingParams(seed=1)), outcome)
    request.is_cancelled = flag.is_set
    engine.submit(request)
    engine.step()
    flag.set()
    engine.step()
    assert outcome.done == [(FinishReason.cancelled, None)] and engine.busy_slots == []


def test_reused_slot_does_not_leak_previous_state(model: BatchedDualAR) -> None:
    """A long request fills slot 0's cache, penalty ring and counters; the next one must not see any of it."""
    engine = Engine(model, _config(max_slots=1))
    first = Spec(
        "first", "a long first request " * 2, SamplingParams(1.0, 0.9, 1.5, seed=3), references=[_reference(1, 40)]
    )
    second = Spec("second", "short", SamplingParams(0.8, 0.9, 1.3, seed=4))
    outcomes = _run(engine, [(0, first), (1, second)])
    assert outcomes["first"].codes.shape[1] == 30
    assert torch.equal(outcomes["second"].codes, _alone(model, second).codes)


def test_long_text_runs_chunk_by_chunk_with_the_previous_chunk_as_context(model: BatchedDualAR) -> None:
    chunks = ["First sentence here.", "Second one."]
    sampling = SamplingParams(0.7, 0.9, 1.1, seed=21)
    reference = _reference(2, 12)
    outcome = _alone(model, Spec("long", chunks, sampling, references=[reference]))
    first = _alone(model, Spec("c0", chunks[0], sampling, references=[reference])).codes
    assert torch.equal(outcome.codes[:, : first.shape[1]], first)  # chunk 0 is the plain request

    # chunk 1 = a sequence whose prompt holds the reference, then chunk 0 with its codes as context,
    # sampled with the request's derived seed for chunk 1; replayed here with the step functions
    tokenizer = model.model.tokenizer
    prompt = build_prompt(tokenizer, 10, chunks[1], [reference, VoiceTurn(chunks[0], first)])
    assert prompt.shape[1] > build_prompt(tokenizer, 10, chunks[1], [reference]).shape[1]
    state, tables = new_state(model, 1, 512), hash_tables(model)
    prefill_slots(model, state, tables, [Admission(0, prompt, 0.7, 0.9, 1.1, chunk_seed(21, 1))])
    state.active[0] = 1
    frames = [state.frame[0].clone()]
    budget = _config().budget.for_text(chunks[1])
    while len(frames) < budget:
        decode_step(model, state, tables, 1, 512)
        frames.append(state.frame[0].clone())
    assert all(int(frame[0]) != model.tokens.im_end_id for frame in frames)
    expected = torch.stack(frames, dim=1)[1:].to(torch.int32)
    assert torch.equal(outcome.codes[:, first.shape[1] :], expected)
    assert outcome.done == [(FinishReason.length, None)]


def test_end_token_finishes_the_request(tiny_lm: Any) -> None:
    model = BatchedDualAR(tiny_lm)
    model.head_weight[-1] = model.head_weight[:-1].sum(0) * 50  # make <|im_end|> win
    outcome = _run(Engine(model, _config()), [(0, Spec("e", ["one.", "two."], SamplingParams(0.0, seed=1)))])["e"]
    assert outcome.done == [(FinishReason.end, None)]
    assert outcome.chunks == []


def _signalling(request: GenerationRequest, finished: threading.Semaphore) -> GenerationRequest:
    """``request`` with an on_done that also releases ``finished`` (requests served by the loop thread)."""
    inner = request.on_done

    def done(reason: FinishReason, message: str | None) -> None:
        inner(reason, message)
        finished.release()

    request.on_done = done
    return request


def test_background_thread_serves_requests(model: BatchedDualAR) -> None:
    engine = Engine(model, _config())
    engine.start()
    try:
        outcomes = [Outcome() for _ in range(3)]
        finished = threading.Semaphore(0)
        for index, outcome in enumerate(outcomes):
            spec = Spec(f"t{index}", f"thread {index}", SamplingParams(seed=index))
            engine.submit(_signalling(_request(spec, outcome), finished))
        for _ in outcomes:
            assert finished.acquire(timeout=60)
    finally:
        engine.stop()
    for index, outcome in enumerate(outcomes):
        spec = Spec(f"t{index}", f"thread {index}", SamplingParams(seed=index))
        assert torch.equal(outcome.codes, _alone(model, spec).codes)


class _Poisoned:
    """A slot tensor after a CUDA fault: every access raises, as every CUDA call does once the context is poisoned."""

    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    def __setitem__(self, key: Any, value: Any) -> None:
        self[key]


def test_a_dead_loop_fails_every_request_and_refuses_new_ones(model: BatchedDualAR) -> None:
    """On the H200 a CUDA fault once killed the loop thread inside its own error handling; requests then hung until
    their clients gave up. Now each one ends with an INTERNAL error and later ones are refused at once."""
    engine = Engine(model, _config())
    engine.state.active = _Poisoned()  # type: ignore[assignment]
    outcomes = [Outcome() for _ in range(3)]
    finished = threading.Semaphore(0)
    for index, outcome in enumerate(outcomes):
        engine.submit(
            _signalling(_request(Spec(f"d{index}", f"doomed {index}", SamplingParams(seed=index)), outcome), finished)
        )
    engine.start()
    try:
        for _ in outcomes:
            assert finished.acquire(timeout=60)
        for outcome in outcomes:
            assert len(outcome.done) == 1
            reason, message = outcome.done[0]
            assert reason is FinishReason.error and message is not None
            assert message.startswith("INTERNAL: ") and "illegal memory access" in message
        with pytest.raises(EngineStopped, match="illegal memory access"):
            engine.submit(_request(Spec("late", "too late", SamplingParams()), Outcome()))
    finally:
        engine.stop()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (Spec("e", "   ", SamplingParams()), "empty"),
        (Spec("t", "x", SamplingParams(temperature=2.5)), "temperature"),
        (Spec("p", "x", SamplingParams(top_p=0.0)), "top_p"),
        (Spec("r", "x", SamplingParams(repetition_penalty=0.0)), "repetition_penalty"),
        (Spec("s", "x", SamplingParams(seed=-1)), "seed"),
        (Spec("m", "x", SamplingParams(), max_new_frames=0), "max_new_frames"),
        (Spec("l", "y" * 300, SamplingParams()), "slot capacity"),
        (Spec("c", "x", SamplingParams(), references=[_reference(0, 600)]), "slot capacity"),
    ],
)
def test_requests_that_cannot_run_are_refused(model: BatchedDualAR, spec: Spec, message: str) -> None:
    engine = Engine(model, _config(budget=FrameBudget(frames_per_char=1.0, min_frames=6, max_frames=400)))
    with pytest.raises(RequestError, match=message):
        engine.submit(_request(spec, Outcome()))
    assert engine.waiting == 0
