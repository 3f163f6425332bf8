"""Cumulative wall time per named stage, reported to a logger at most every ``every_s`` seconds.

Serving code wraps its hot stages (the engine's decode replay, host bookkeeping, response sends; tts's codec
calls) so a benchmark run can tell from the Triton log which stage bounds throughput. Cheap enough to stay on:
one ``perf_counter`` pair and a dict update per stage, under a lock only when several threads share it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimes:
    def __init__(self, name: str, logger: logging.Logger, every_s: float = 10.0) -> None:
        self.name = name
        self.logger = logger
        self.every_s = every_s
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._reported = self._started

    def add(self, stage: str, seconds: float, count: int = 1) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
            self.counts[stage] = self.counts.get(stage, 0) + count

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def summary(self) -> str:
        with self._lock:
            wall = time.perf_counter() - self._started
            parts = [
                f"{stage}={self.seconds[stage]:.3f}s/{self.counts[stage]}"
                for stage in sorted(self.seconds, key=self.seconds.__getitem__, reverse=True)
            ]
        return f"{self.name} stats over {wall:.1f}s: " + " ".join(parts)

    def maybe_report(self) -> None:
        now = time.perf_counter()
        if now - self._reported >= self.every_s and self.seconds:
            self._reported = now
            self.logger.warning("%s", self.summary())
