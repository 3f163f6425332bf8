"""The continuous-batching engine: requests join and leave a shared decode loop between steps.

Public surface::

    engine = Engine(BatchedDualAR(model), EngineConfig(...))
    engine.submit(GenerationRequest(...))   # any thread; raises RequestError for input that cannot run
    engine.cancel(request_id)               # any thread; the slot is freed at the next step
    engine.start() / engine.stop()          # background loop thread (Triton), or call engine.step() (tests)

One ``step()``: take new requests and cancellations, free cancelled slots, prefill waiting sequences into
free slots (together, in passes of at most ``prefill_tokens`` padded tokens; each prefill yields the
sequence's first frame; a next text chunk may wait up to ``prefill_interval`` steps to share a pass, and an
idle engine may wait ``admit_wait_ms`` for a burst of new requests to arrive),
then one batched decode step over the slot
prefix that holds every decoding sequence, then hand each request its frames. A request's chunks run one
after another in the slot it holds, each prefilled with the previous chunk as context.

Only the loop thread touches tensors. The one host synchronisation per step is the copy of the new
frames to the host (streaming needs them there anyway).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from voicereel.engine.batched import BatchedDualAR
from voicereel.engine.generate import FinishReason, FrameBudget, GenerationRequest, SamplingParams, chunk_seed
from voicereel.engine.graphs import DecodeRunner, all_buckets, batch_buckets, bucket_batch, bucket_kv_len
from voicereel.engine.prompt import PromptError, VoiceTurn, build_prompt
from voicereel.engine.stage_times import StageTimes
from voicereel.engine.step import Admission, SlotState, hash_tables, new_state, prefill_slots
from voicereel.engine.trace import FirstChunkTrace

log = logging.getLogger(__name__)


class RequestError(ValueError):
    """A request that can never run (too long for a slot, no text, bad parameters). User-facing message."""


class EngineStopped(RuntimeError):
    """The decode loop died (say, a CUDA fault, which poisons the device context): no request can run any more."""


@dataclass(frozen=True)
class EngineConfig:
    """Engine sizing. ``slot_capacity`` bounds prompt + generated frames of one chunk."""

    max_slots: int = 8
    slot_capacity: int = 4096
    stream_frames: int = 8  # frames per streamed code chunk (the last chunk of a request may be shorter)
    budget: FrameBudget = field(default_factory=FrameBudget)
    kv_block: int = 256  # attended cache length is rounded up to a multiple of this
    prefill_tokens: int = 8192  # sequences admitted together are prefilled in passes of this many padded tokens
    # A sequence starting its next chunk may wait this many steps for others, so that their prefills share a
    # pass (each pass stalls every decoding slot). New requests never wait: they are prefilled at once.
    prefill_interval: int = 8
    # An idle engine (no slot busy) that receives a request waits this long after it before prefilling, so that
    # requests arriving together (a burst from several clients) share one pass instead of one pass each. 0 = never.
    admit_wait_ms: float = 0.0
    cancel_poll_steps: int = 8  # poll a request's is_cancelled() every this many steps
    cuda_graphs: bool = False  # capture decode steps per (batch, kv) bucket; CUDA only
    capture_at_load: bool = False  # with cuda_graphs: capture every bucket before serving (capture_graphs)
    trace_requests: bool = False  # log each request's first-chunk milestones (voicereel.engine.trace)


@dataclass
class _Running:
    """Host-side bookkeeping of one admitted request."""

    request: GenerationRequest
    sampling: SamplingParams
    prompt: torch.Tensor  # the current chunk's prompt, until it is prefilled
    slot: int = -1
    chunk: int = 0
    chunk_budget: int = 0
    position: int = 0  # mirrors SlotState.position of the slot
    decoding: bool = False
    chunk_frames: list[np.ndarray] = field(default_factory=list)  # [C] code columns of the current chunk
    unsent: int = 0  # trailing frames of chunk_frames not streamed yet
    frames_total: int = 0
    steps: int = 0
    chunk_ended_at: int = 0  # engine step at which the previous chunk ended (a next chunk waits from then)
    trace: FirstChunkTrace | None = None  # with trace_requests: milestones up to the first streamed codes
    arrived: float = field(default_factory=time.perf_counter)  # when submit queued it


class Engine:
    def __init__(self, model: BatchedDualAR, config: EngineConfig | None = None) -> None:
        self.model = model
        self.config = config or EngineConfig()
        self.tokenizer = model.model.tokenizer
        self.state: SlotState = new_state(model, self.config.max_slots, self.config.slot_capacity)
        self.tables = hash_tables(model)
        self.runner = DecodeRunner(model, self.state, self.tables, use_graphs=self.config.cuda_graphs)
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._inbox: list[_Running] = []
        self._cancels: set[str] = set()
        self._waiting: deque[_Running] = deque()
        self._by_slot: dict[int, _Running] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._failure: str | None = None  # why the loop died; every later submit fails with it
        self._steps = 0
        self._events: tuple[torch.cuda.Event, torch.cuda.Event] | None = None  # decode-step GPU timing
        self.times = StageTimes("text2semantic engine", log)

    # --- any thread -----------------------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> None:
        """Check and queue a request. Raises RequestError when it could never run, EngineStopped when nothing can."""
        if self._failure is not None:
            raise EngineStopped(self._failure)
        try:
            sampling = request.sampling.validated()
        except ValueError as exc:
            raise RequestError(str(exc)) from exc
        chunks = [chunk for chunk in request.chunks if chunk.strip()]
        if not chunks:
            raise RequestError("text is empty")
        if request.max_new_frames is not None and request.max_new_frames <= 0:
            raise RequestError("max_new_frames must be positive")
        request.chunks = chunks
        try:
            prompt = build_prompt(self.tokenizer, self.model.num_codebooks, chunks[0], request.references)
        except PromptError as exc:
            raise RequestError(str(exc)) from exc
        # Prompt length is additive over parts: every chunk must fit with the references alone.
        voice_len = prompt.shape[1] - len(self.tokenizer.encode(chunks[0]))
        for chunk in chunks:
            budget = self._chunk_budget(chunk, request.max_new_frames)
            need = voice_len + len(self.tokenizer.encode(chunk)) + budget
            if need > self.config.slot_capacity:
                raise RequestError(
                    f"prompt plus frame budget ({need} positions) exceeds the slot capacity "
                    f"({self.config.slot_capacity}); use a shorter reference or text chunks"
                )
        run = _Running(request, sampling, prompt)
        if self.config.trace_requests:
            run.trace = FirstChunkTrace("text2semantic", id=request.request_id)
            if request.received is not None:
                run.trace.note("received", request.received)
            run.trace.mark("submitted")
        with self._lock:
            if self._failure is not None:
                raise EngineStopped(self._failure)
            self._inbox.append(run)
        self._wakeup.set()

    def cancel(self, request_id: str) -> None:
        """Stop a request; its slot is free at the next step and on_done gets ``cancelled``."""
        with self._lock:
            self._cancels.add(request_id)
        self._wakeup.set()

    @torch.inference_mode()  # as ``step``: the compiled pieces see the same grad mode and tensor kinds
    def capture_graphs(self) -> int:
        """Capture every decode bucket's CUDA graph and every batch bucket's first-frame graph now (before ``start``,
        no slot busy); returns how many were captured: 0 without ``cuda_graphs`` or ``capture_at_load``.

        The first-frame graphs matter to the first pass of each admission size: captured there, a burst of 16
        streams' 14-row pass took 131 ms (H100, twelfth session), 73 ms with them captured at load and the same
        attention (thirteenth session, another H100)."""
        config = self.config
        if not (config.cuda_graphs and config.capture_at_load):
            return 0
        if self._by_slot:
            raise RuntimeError("capture_graphs needs every slot idle")
        started = time.perf_counter()
        count = self.runner.capture(all_buckets(config.max_slots, config.kv_block, config.slot_capacity))
        firsts = self.runner.capture_first(batch_buckets(config.max_slots))
        torch.cuda.empty_cache()  # the warm-up runs' memory, cached outside the graphs' pool, back to the driver
        log.info("captured %d decode and %d first-frame graphs in %.1fs", count, firsts, time.perf_counter() - started)
        return count + firsts

    def start(self, cuda_stream: torch.cuda.Stream | None = None) -> None:
        """Run the loop on a thread of its own; its GPU work goes to ``cuda_stream`` when given (e.g. one of a
        higher priority than the codec's in the same process, see pcm_render), else the default stream."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, args=(cuda_stream,), name="text2semantic-engine", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # --- introspection (tests, metrics) ---------------------------------------------------------------

    @property
    def busy_slots(self) -> list[int]:
        return sorted(self._by_slot)

    @property
    def waiting(self) -> int:
        return len(self._waiting) + len(self._inbox)

    # --- loop thread ----------------------------------------------------------------------------------

    def _loop(self, cuda_stream: torch.cuda.Stream | None) -> None:
        try:
            with torch.cuda.stream(cuda_stream) if cuda_stream is not None else contextlib.nullcontext():
                while not self._stopping:
                    if not self.step():
                        self._wakeup.wait(timeout=0.5)
                        self._wakeup.clear()
        except Exception as exc:  # a step's own handlers failed too (a CUDA fault makes every later call fail)
            log.exception("text2semantic engine loop died")
            self._fail_everything(f"INTERNAL: engine stopped: {exc}")

    def _fail_everything(self, message: str) -> None:
        """End every admitted, waiting and queued request with ``message``, and refuse later ones: after the loop died,
        nobody would ever answer them. Touches no tensor (the device may be the thing that failed)."""
        with self._lock:
            self._failure = message
            runs = [*self._by_slot.values(), *self._waiting, *self._inbox]
            self._by_slot.clear()
            self._waiting.clear()
            self._inbox.clear()
        for run in runs:
            try:
                run.request.on_done(FinishReason.error, message)
            except Exception:
                log.exception("on_done callback failed for %s", run.request.request_id)

    @torch.inference_mode()
    def step(self) -> bool:
        """One engine iteration; returns whether work remains."""
        self._steps += 1
        self._wait_for_burst()
        with self._lock:
            self._waiting.extend(self._inbox)
            self._inbox.clear()
            cancels, self._cancels = self._cancels, set()
        with self.times.stage("reap"):
            self._reap(cancels)
        with self.times.stage("admit"):
            self._admit()
        decoding = [run for run in self._by_slot.values() if run.decoding]
        if decoding:
            self.times.maybe_report()
            try:
                self._decode(decoding)
            except Exception as exc:  # a broken step poisons every sequence in it
                log.exception("decode step failed")
                for run in list(self._by_slot.values()):
                    self._finish(run, FinishReason.error, f"INTERNAL: decode failed: {exc}")
        return bool(self._by_slot or self._waiting)

    def _wait_for_burst(self) -> None:
        """With ``admit_wait_ms``: an idle engine holding new requests sleeps until that long after the first of them
        arrived (releasing the GIL to the threads that submit the rest). A busy engine never waits: its decode steps
        already gather whatever arrives meanwhile into the next step's pass."""
        wait_s = self.config.admit_wait_ms / 1000.0
        if wait_s <= 0 or self._by_slot or self._waiting:
            return
        with self._lock:
            if not self._inbox:
                return
            first = self._inbox[0].arrived
        delay = first + wait_s - time.perf_counter()
        if delay > 0:
            with self.times.stage("burst_wait"):
                time.sleep(delay)

    def _reap(self, cancels: set[str]) -> None:
        for run in [*self._by_slot.values(), *self._waiting]:
            poll = run.request.is_cancelled
            polled = poll is not None and run.steps % self.config.cancel_poll_steps == 0 and poll()
            if run.request.request_id in cancels or polled:
                if run in self._waiting:
                    self._waiting.remove(run)
                self._finish(run, FinishReason.cancelled, None)

    def _admit(self) -> None:
        # Sequences that hold a slot and start their next chunk go first, then new requests. A next chunk
        # waits (up to prefill_interval steps) while others decode and no new request needs a pass anyway.
        starting = [run for run in self._by_slot.values() if not run.decoding]
        free = [slot for slot in range(self.config.max_slots) if slot not in self._by_slot]
        while free and self._waiting:
            run = self._waiting.popleft()
            run.slot = free.pop(0)
            self._by_slot[run.slot] = run
            starting.append(run)
        if not starting:
            return
        new = any(run.chunk_ended_at == 0 for run in starting)
        overdue = any(self._steps - run.chunk_ended_at >= self.config.prefill_interval for run in starting)
        others_decode = any(run.decoding for run in self._by_slot.values())
        if not (new or overdue or not others_decode):
            return
        for group in prefill_groups(starting, self.config.prefill_tokens):
            self._prefill(group)

    def _chunk_budget(self, text: str, frames_left: int | None) -> int:
        """Frames a chunk may take: its text-length budget, within what the request's cap leaves."""
        budget = self.config.budget.for_text(text)
        return budget if frames_left is None else min(budget, frames_left)

    def _prefill(self, runs: list[_Running]) -> None:
        """Prefill ``runs`` together: each one's first frame of its current chunk."""
        admissions = []
        for run in runs:
            cap = run.request.max_new_frames
            frames_left = None if cap is None else cap - run.frames_total
            run.chunk_budget = self._chunk_budget(run.request.chunks[run.chunk], frames_left)
            sampling = run.sampling
            seed = chunk_seed(sampling.seed or 0, run.chunk)
            admissions.append(
                Admission(run.slot, run.prompt, sampling.temperature, sampling.top_p, sampling.repetition_penalty, seed)
            )
        slots = torch.tensor([run.slot for run in runs], device=self.state.frame.device)
        traced = [run.trace for run in runs if run.trace is not None]
        for trace in traced:
            trace.mark("prefill_start")
            trace.note("pass_rows", len(runs))
        try:
            with self.times.stage("prefill"):
                prefill_slots(self.model, self.state, self.tables, admissions, self.runner.sample_first)
                firsts = self.state.frame[slots].to("cpu").numpy()
            for trace in traced:
                trace.mark("prefill_end")
        except Exception as exc:
            log.exception("prefill failed")
            for run in runs:
                self._finish(run, FinishReason.error, f"INTERNAL: prefill failed: {exc}")
            return
        self.times.add("prefilled", 0.0, len(runs))
        self.state.active[slots] = 1
        for run, first in zip(runs, firsts, strict=True):
            run.position = run.prompt.shape[1]
            run.chunk_frames = []
            run.decoding = True
            self._accept(run, first)

    def _decode(self, decoding: list[_Running]) -> None:
        batch = bucket_batch(max(run.slot for run in decoding) + 1, self.config.max_slots)
        needed = max(run.position for run in decoding) + 1
        kv_len = bucket_kv_len(needed, self.config.kv_block, self.config.slot_capacity)
        times = self.times
        events = self._step_events()
        if events is not None:
            events[0].record()
        with times.stage("decode_replay"):
            self.runner.step(batch, kv_len)
        if events is not None:
            events[1].record()
        with times.stage("decode_to_host"):
            frames = self.state.frame[:batch].to("cpu", copy=True).numpy()  # a copy (CPU too): rows are kept
        if events is not None:  # the step's own GPU time: decode_to_host minus it is time the host lost elsewhere
            times.add("decode_gpu", events[0].elapsed_time(events[1]) / 1000)
        with times.stage("accept_frames"):
            for run in decoding:
                run.position += 1
                run.steps += 1
                self._accept(run, frames[run.slot])
        times.add("frames", 0.0, len(decoding))

    def _step_events(self) -> tuple[torch.cuda.Event, torch.cuda.Event] | None:
        """Two timing events recorded around each decode step on a GPU (made once); None on the CPU."""
        if not self.state.frame.is_cuda:
            return None
        if self._events is None:
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        return self._events

    def _accept(self, run: _Running, frame: np.ndarray) -> None:
        """Take one new frame of ``run``: stream it, or end the chunk on the end token or the budget."""
        if int(frame[0]) == self.model.tokens.im_end_id:
            self._end_chunk(run, FinishReason.end)
            return
        run.chunk_frames.append(frame[1:])
        run.unsent += 1
        run.frames_total += 1
        if run.unsent >= self.config.stream_frames:
            self._flush(run)
        if len(run.chunk_frames) >= run.chunk_budget:
            self._end_chunk(run, FinishReason.length)

    def _flush(self, run: _Running) -> None:
        if run.unsent:
            codes = _columns(run.chunk_frames[-run.unsent :])
            run.unsent = 0
            if run.trace is not None:
                run.trace.mark("first_codes")
            try:
                with self.times.stage("on_codes"):
                    run.request.on_codes(codes)
                if run.trace is not None:
                    run.trace.emit(log)
            except Exception:  # the consumer is gone (e.g. its stream broke): stop generating for it
                log.exception("on_codes callback failed for %s", run.request.request_id)
                with self._lock:
                    self._cancels.add(run.request.request_id)

    def _end_chunk(self, run: _Running, reason: FinishReason) -> None:
        self._flush(run)
        run.decoding = False
        self.state.active[run.slot] = 0
        capped = run.request.max_new_frames is not None and run.frames_total >= run.request.max_new_frames
        if run.chunk + 1 >= len(run.request.chunks) or capped:
            self._finish(run, FinishReason.length if capped else reason, None)
            return
        previous = None
        if run.chunk_frames:
            previous = VoiceTurn(run.request.chunks[run.chunk], _columns(run.chunk_frames))
        run.chunk += 1
        run.prompt = self._chunk_prompt(run, previous)
        run.chunk_ended_at = self._steps

    def _chunk_prompt(self, run: _Running, previous: VoiceTurn | None) -> torch.Tensor:
        """The next chunk's prompt, with the previous chunk as context when it fits in the slot."""
        text, references = run.request.chunks[run.chunk], run.request.references
        cap = run.request.max_new_frames
        budget = self._chunk_budget(text, None if cap is None else cap - run.frames_total)
        if previous is not None:
            prompt = build_prompt(self.tokenizer, self.model.num_codebooks, text, [*references, previous])
            if prompt.shape[1] + budget <= self.config.slot_capacity:
                return prompt
        return build_prompt(self.tokenizer, self.model.num_codebooks, text, references)

    def _finish(self, run: _Running, reason: FinishReason, message: str | None) -> None:
        if self._by_slot.get(run.slot) is run:
            del self._by_slot[run.slot]
            self.state.active[run.slot] = 0
            self.state.position[run.slot] = 0
        run.decoding = False
        if reason is not FinishReason.cancelled:
            self._flush(run)
        try:
            run.request.on_done(reason, message)
        except Exception:
            log.exception("on_done callback failed for %s", run.request.request_id)


def prefill_groups(runs: list[_Running], max_tokens: int) -> list[list[_Running]]:
    """Split sequences to prefill into passes of at most ``max_tokens`` padded tokens (count x longest).

    Shorter prompts go together, so padding stays small; a prompt longer than ``max_tokens`` runs alone.
    """
    groups: list[list[_Running]] = []
    group: list[_Running] = []
    for run in sorted(runs, key=lambda run: run.prompt.shape[1]):
        if group and (len(group) + 1) * run.prompt.shape[1] > max_tokens:
            groups.append(group)
            group = []
        group.append(run)
    if group:
        groups.append(group)
    return groups


def _columns(frames: list[np.ndarray]) -> torch.Tensor:
    """Code columns ``[C]`` as an int32 tensor ``[C, n]``."""
    return torch.from_numpy(np.stack(frames, axis=1).astype(np.int32))
