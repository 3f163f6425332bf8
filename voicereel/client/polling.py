"""`wait_for_job`'s schedule (gently growing poll interval, bounded by a deadline) and how a finished job
turns into a return value or an exception. Shared by the sync and async clients."""

from __future__ import annotations

from collections.abc import Callable

from voicereel.client.errors import JobFailedError, JobTimeoutError
from voicereel.client.models import Job

JobProgress = Callable[[Job], None]


class PollSchedule:
    def __init__(
        self,
        job_id: str,
        timeout_s: float,
        interval_s: float,
        max_interval_s: float,
        clock: Callable[[], float],
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if interval_s <= 0 or max_interval_s < interval_s:
            raise ValueError("need 0 < interval_s <= max_interval_s")
        self.job_id = job_id
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.max_interval_s = max_interval_s
        self.clock = clock
        self.deadline = clock() + timeout_s

    def next_wait(self, job: Job) -> float:
        """Seconds to sleep before the next poll of an unfinished `job`; raises once the deadline has passed."""
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            raise JobTimeoutError(self.job_id, self.timeout_s, job.status, job.progress)
        wait = min(self.interval_s, remaining)
        self.interval_s = min(self.max_interval_s, self.interval_s * 1.5)
        return wait


def outcome(job: Job, raise_on_failure: bool) -> Job:
    if raise_on_failure and job.status != "succeeded":
        code = job.error.code if job.error else None
        message = job.error.message if job.error else None
        raise JobFailedError(job.id, job.status, code, message)
    return job
