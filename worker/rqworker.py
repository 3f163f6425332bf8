"""Our RQ worker class: RQ's forking Worker with two changes for reliability.

- The work-horse dies with its worker (Linux `PR_SET_PDEATHSIG`): RQ puts the horse in its own process group, so
  a `kill -9` of the worker would otherwise leave an orphan horse finishing the job while the reconciler hands it
  to another worker.
- A Redis outage while a job runs does not end the worker: the heartbeats that fail are logged and retried at
  the next monitoring tick, and the horse keeps working (its results go to the database, not to Redis).
- It remembers that a stop was signalled, so `python -m worker` can tell a requested stop from a loop that
  ended because Redis went away (and only restart the latter).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Worker

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
RECONNECT_MAX_WAIT_S = 5.0


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send `sig` to this process when its parent exits (Linux; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())


class VoiceReelWorker(Worker):
    max_connection_wait_time = RECONNECT_MAX_WAIT_S
    # True once SIGTERM/SIGINT asked this worker to stop (RQ keeps no public flag for an idle worker's stop)
    stop_signalled = False

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stop_signalled = True
        super().request_stop(signum, frame)

    def setup_work_horse_signals(self) -> None:
        parent = os.getppid()
        die_with_parent()
        if os.getppid() != parent:  # the worker died between fork and prctl
            os._exit(1)
        super().setup_work_horse_signals()

    def maintain_heartbeats(self, job: Any, execution: Any) -> None:
        try:
            super().maintain_heartbeats(job, execution)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("worker %s: heartbeat failed (%s); the job keeps running", self.name, exc)
