"""Everything the CLI shows: results (rich tables, or JSON with `--json`), errors, retry notices and progress bars.

Results go to stdout; errors, notices and progress bars to stderr, so `--json` output can be piped as is.
Progress bars show when stderr is a terminal (or with `--progress`), never with `--json`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from voicereel.client.errors import ApiError, AuthError, JobFailedError, RateLimitedError, TransportError
from voicereel.client.models import Job
from voicereel.client.polling import JobProgress
from voicereel.client.transport import ByteProgress


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


class Output:
    def __init__(self, *, json_mode: bool, progress: bool | None) -> None:
        self.json_mode = json_mode
        self.err = Console(stderr=True, force_terminal=True if progress else None, highlight=False, soft_wrap=True)
        self.show_progress = (not json_mode) and (progress if progress is not None else self.err.is_terminal)

    @property
    def out(self) -> Console:
        # Created per use: sys.stdout may be swapped (tests, redirection) after this object was made. Piped
        # output gets a wide page so tables keep ids on one line for grep/awk.
        return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)

    def result(self, data: Any, human: Callable[[Console], None]) -> None:
        """Print a command's result: `data` as JSON with `--json`, else whatever `human` renders."""
        if self.json_mode:
            sys.stdout.write(json.dumps(to_jsonable(data), indent=2, default=str) + "\n")
            sys.stdout.flush()
        else:
            human(self.out)

    def notice(self, message: str) -> None:
        if not self.json_mode:
            self.err.print(message, markup=False)

    def retrying(self, retry: int, delay: float, reason: str) -> None:
        self.notice(f"{reason}; retrying in {delay:.1f} s (retry {retry})")

    def error(self, exc: BaseException, exit_code: int) -> None:
        if self.json_mode:
            error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc), "exit_code": exit_code}
            if isinstance(exc, ApiError):
                error.update(code=exc.code, status=exc.status, request_id=exc.request_id, details=exc.details)
            elif isinstance(exc, JobFailedError):
                error.update(code=exc.code, job_id=exc.job_id, status=exc.status)
            sys.stderr.write(json.dumps({"error": error}, default=str) + "\n")
            return
        self.err.print(f"error: {exc}", markup=False, style="bold red")
        if isinstance(exc, ApiError) and exc.details:
            self.err.print(f"details: {json.dumps(exc.details, default=str)}", markup=False)
        hint = _hint(exc)
        if hint:
            self.err.print(hint, markup=False)

    @contextmanager
    def bytes_bar(self, description: str) -> Iterator[ByteProgress | None]:
        """A transfer bar (bytes, speed) fed by the SDK's byte-progress callback; None when bars are off."""
        if not self.show_progress:
            yield None
            return
        columns = (TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, console=self.err, transient=False) as bar:
            task = bar.add_task(description, total=None)

            def update(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            yield update

    @contextmanager
    def job_bar(self, description: str) -> Iterator[JobProgress | None]:
        """A bar of a job's progress (0..1) and status, fed by `wait_for_job`'s callback."""
        if not self.show_progress:
            yield None
            return
        columns = (
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.err, transient=False) as bar:
            task = bar.add_task(description, total=1.0)

            def update(job: Job) -> None:
                bar.update(task, completed=job.progress, description=f"{description} [{job.status}]")

            yield update


def _hint(exc: BaseException) -> str | None:
    if isinstance(exc, AuthError):
        return "hint: check VOICEREEL_API_KEY (and VOICEREEL_SIGNING_SECRET for keys that require signing)"
    if isinstance(exc, RateLimitedError):
        return "hint: the key's request rate limit was hit; wait and retry (or raise --retries)"
    if isinstance(exc, TransportError):
        return "hint: is the gateway running at VOICEREEL_BASE_URL?"
    return None
