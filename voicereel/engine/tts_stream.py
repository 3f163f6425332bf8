"""The ``tts`` pipeline: stream code chunks in, decode them in fixed codec windows, stream PCM out.

Code chunks arrive from ``text2semantic`` in whatever sizes it streams. ``WindowFeed`` cuts the growing
code sequence into the codec's fixed windows (``voicereel.engine.codec``: chunks of ``chunk_frames``
counted from the utterance start, each with up to ``context_frames`` of left context), so the windows,
and therefore the PCM, are exactly those of ``Codec.decode_chunked`` over the whole sequence: the
concatenated stream equals the non-streamed result.

``run_tts`` drives one request through injected calls (BLS calls in Triton; the engine and codec
in-process in tests): ``codes`` yields code chunks or a ``Failure``; ``decode`` renders a window;
``send`` and ``close`` answer the client; ``is_cancelled`` and ``cancel_codes`` handle a client that left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from voicereel.engine.codec import ChunkPlan, DecodeWindow, make_window
from voicereel.engine.codec_serving import Failure


class WindowFeed:
    """Accumulates codes ``[10, n]`` and hands out decode windows as soon as their frames exist."""

    def __init__(self, plan: ChunkPlan) -> None:
        self.plan = plan
        self._pieces: list[torch.Tensor] = []
        self._codes: torch.Tensor | None = None
        self.frames = 0
        self.rendered = 0  # frames already handed out in windows

    def _all(self) -> torch.Tensor:
        if self._pieces:
            parts = [self._codes, *self._pieces] if self._codes is not None else self._pieces
            self._codes = torch.cat(parts, dim=1)
            self._pieces = []
        assert self._codes is not None
        return self._codes

    def push(self, codes: torch.Tensor) -> list[DecodeWindow]:
        """Add a code chunk; returns the windows it completes."""
        if codes.shape[1] == 0:
            return []
        self._pieces.append(codes.to(torch.int32))
        self.frames += codes.shape[1]
        windows = []
        while self.frames >= self.plan.chunk_end(self.rendered):
            end = self.plan.chunk_end(self.rendered)
            windows.append(make_window(self._all(), self.rendered, end, self.plan))
            self.rendered = end
        return windows

    def finish(self) -> list[DecodeWindow]:
        """The last, shorter window (if frames remain)."""
        if self.frames == self.rendered:
            return []
        window = make_window(self._all(), self.rendered, self.frames, self.plan)
        self.rendered = self.frames
        return [window]


@dataclass
class TtsCalls:
    """What one tts request talks to."""

    codes: Iterable[torch.Tensor | Failure]
    decode: Callable[[DecodeWindow], torch.Tensor]
    send: Callable[[torch.Tensor], None]
    close: Callable[[Failure | None], None]
    is_cancelled: Callable[[], bool]
    cancel_codes: Callable[[], None]


def run_tts(calls: TtsCalls, plan: ChunkPlan) -> None:
    """Stream one request's PCM; always ends with exactly one ``close``."""
    feed = WindowFeed(plan)
    failure: Failure | None = None
    cancelled = False
    try:
        for item in calls.codes:
            if isinstance(item, Failure):
                failure = item
                break
            if cancelled:
                continue  # drain: the code stream ends soon after the cancel reached it
            if calls.is_cancelled():
                cancelled = True
                calls.cancel_codes()
                continue
            for window in feed.push(item):
                calls.send(calls.decode(window))
        if failure is None and not cancelled:
            for window in feed.finish():
                calls.send(calls.decode(window))
    except Exception as exc:  # a failed decode or send ends the request with an error, not silence
        failure = exc.failure if isinstance(exc, FailureError) else Failure("INTERNAL", f"{type(exc).__name__}: {exc}")
    calls.close(failure)


class FailureError(RuntimeError):
    """An error carrying a ``Failure`` (code and message) across call boundaries."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure
