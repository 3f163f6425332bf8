"""Rendering a request's codes to PCM inside text2semantic's own process (shared knob ``pcm_decoding``).

With the codec in its own Triton model, the language model and the codec run in two processes and the GPU
time-slices between their contexts: at 128 streams on the H200 a decode step waited ~25 ms where the language
model's own step takes 8-11 ms. In one process the two share a context and run on separate CUDA streams, the
language model's at the higher priority, so codec work can fill what the decode step leaves idle instead of
taking turns with it.

``PcmStream`` is the engine's ``ResponseStream`` for a request that asked for ``pcm``: it cuts the codes into the
codec's fixed windows (``tts_stream.WindowFeed``: the very windows ``tts`` would send to ``codec_decoder``, so the
PCM is the same) and queues them on the ``CodecWorker``, one thread that decodes the queued windows of every stream
in batches, an utterance's first window ahead of the rest (it sets the first-chunk latency), and sends each
window's PCM and then the stream's final response, in order.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from voicereel.engine.codec import ChunkPlan, DecodeWindow
from voicereel.engine.codec_serving import Failure
from voicereel.engine.tts_stream import WindowFeed

log = logging.getLogger(__name__)


class WindowDecoder(Protocol):
    def decode_windows(self, windows: Sequence[DecodeWindow]) -> list[torch.Tensor]: ...


class PcmSink(Protocol):
    """Where one request's PCM goes (its Triton response sender, through a dispatcher lane, in production)."""

    def send_pcm(self, pcm: torch.Tensor) -> None: ...

    def close(self, failure: Failure | None) -> None: ...

    def is_cancelled(self) -> bool: ...


FIRST, LATER = 0, 1  # queue priorities: an utterance's first window, then everything else in arrival order


@dataclass(order=True)
class _Item:
    priority: int
    seq: int
    stream: PcmStream = field(compare=False)
    window: DecodeWindow | None = field(compare=False)  # None: the stream's final response
    failure: Failure | None = field(compare=False, default=None)


class CodecWorker:
    """One thread decoding the queued windows of all streams, at most ``max_batch`` per codec call.

    Each stream's items leave in the order they came: its first window is the only one queued at FIRST, and
    everything after it (windows, then the final response) at LATER, in arrival order. On a GPU the decoding runs
    on ``cuda_stream`` (give it a lower priority than the language model's).
    """

    def __init__(self, codec: WindowDecoder, max_batch: int, cuda_stream: torch.cuda.Stream | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.codec = codec
        self.max_batch = max_batch
        self.cuda_stream = cuda_stream
        self.batches = 0  # codec calls made (tests, logs)
        self._heap: list[_Item] = []
        self._seq = itertools.count()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def put(self, stream: PcmStream, window: DecodeWindow | None, first: bool, failure: Failure | None = None) -> None:
        with self._ready:
            heapq.heappush(self._heap, _Item(FIRST if first else LATER, next(self._seq), stream, window, failure))
            self._ready.notify()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="t2s-codec", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End the thread; streams with anything still queued get an INTERNAL final response."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._ready:
            items, self._heap = self._heap, []
        for item in items:
            item.stream.finish(Failure("INTERNAL", "text2semantic is shutting down"))

    def run_pending(self) -> bool:
        """Render one batch of what is queued, on the calling thread (tests; the loop does this in production).
        Returns whether anything was queued."""
        with self._ready:
            items = self._take()
        if items:
            self._render(items)
        return bool(items)

    def _take(self) -> list[_Item]:
        """Queued items in order until ``max_batch`` windows (and the final responses among them). Lock held."""
        items: list[_Item] = []
        windows = 0
        while self._heap and (windows < self.max_batch or self._heap[0].window is None):
            item = heapq.heappop(self._heap)
            items.append(item)
            windows += item.window is not None
        return items

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not self._heap and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return
                items = self._take()
            self._render(items)

    def _render(self, items: list[_Item]) -> None:
        live = [item for item in items if item.window is not None and not item.stream.done]
        pcm: list[torch.Tensor] = []
        try:
            if live:
                pcm = self._decode([item.window for item in live if item.window is not None])
                self.batches += 1
        except Exception as exc:  # every stream with a window in this batch fails; the others go on
            log.exception("decoding %d windows failed", len(live))
            failure = Failure("INTERNAL", f"codec decode failed: {type(exc).__name__}: {exc}")
            for item in live:
                item.stream.finish(failure)
            live = []
        rendered = {id(item): audio for item, audio in zip(live, pcm, strict=True)}
        for item in items:
            if item.window is None:
                item.stream.finish(item.failure)
            elif id(item) in rendered:
                item.stream.send(rendered[id(item)])

    def _decode(self, windows: list[DecodeWindow]) -> list[torch.Tensor]:
        if self.cuda_stream is None:
            return [audio.to("cpu") for audio in self.codec.decode_windows(windows)]
        with torch.cuda.stream(self.cuda_stream):
            audio = self.codec.decode_windows(windows)
            # One copy for the batch; it waits for this stream only, never for the language model's.
            host = torch.cat(audio).to("cpu")
        return list(host.split([piece.numel() for piece in audio]))


def engine_stream(device: torch.device) -> torch.cuda.Stream | None:
    """The engine loop's CUDA stream when a codec shares the process: the highest priority (None on the CPU)."""
    return torch.cuda.Stream(device, priority=-100) if device.type == "cuda" else None  # clamped to the range


def codec_stream(device: torch.device) -> torch.cuda.Stream | None:
    """The codec worker's CUDA stream: the lowest priority (0, also the default stream's; None on the CPU)."""
    return torch.cuda.Stream(device, priority=0) if device.type == "cuda" else None


class PcmStream:
    """The engine's ``ResponseStream`` for one request answered in PCM (see the module docstring).

    ``send_codes`` and ``close`` run on the engine's loop thread; ``send`` and ``finish`` on the worker's.
    """

    def __init__(self, sink: PcmSink, worker: CodecWorker, plan: ChunkPlan) -> None:
        self.sink = sink
        self.worker = worker
        self.feed = WindowFeed(plan)
        self.done = False  # the final response went out (set on the worker's thread)
        self._queued = 0

    def _queue(self, windows: list[DecodeWindow]) -> None:
        for window in windows:
            self.worker.put(self, window, first=self._queued == 0)
            self._queued += 1

    def send_codes(self, codes: torch.Tensor) -> None:
        self._queue(self.feed.push(codes))

    def close(self, failure: Failure | None) -> None:
        if failure is None:
            self._queue(self.feed.finish())
        self.worker.put(self, None, first=False, failure=failure)

    def is_cancelled(self) -> bool:
        return self.sink.is_cancelled()

    def send(self, pcm: torch.Tensor) -> None:
        if not self.done:
            self.sink.send_pcm(pcm)

    def finish(self, failure: Failure | None) -> None:
        if not self.done:
            self.done = True
            self.sink.close(failure)
