"""`python -m worker`: an RQ worker on the maintenance queue and `settings.queue_name` (with RQ's scheduler for
scheduled jobs and retries), plus a child process running the cron loop (`worker.cron`) for the reconciler and
the sweeper. If the worker's loop ends because Redis went away, a fresh worker starts once Redis answers again;
SIGTERM/SIGINT stop it the RQ way (warm: the current job finishes; a second signal kills it).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

import worker.jobs  # noqa: F401 (preloaded: forked work-horses start with the job code already imported)
from voicereel.db.migrate import upgrade_database
from voicereel.jobqueue import make_queue
from voicereel.settings import get_settings
from worker.context import make_redis
from worker.maintenance import maintenance_queue
from worker.observability import setup_logging, setup_sentry
from worker.rqworker import VoiceReelWorker, die_with_parent

log = logging.getLogger(__name__)

RESTART_WAIT_S = 2.0
MAINTENANCE_S = 60


def start_cron() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker.cron"],
        preexec_fn=die_with_parent,
        env=os.environ.copy(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", action="store_true", help="work until the queues are empty, then exit")
    parser.add_argument("--no-cron", action="store_true", help="do not run the reconciler/sweeper scheduler")
    parser.add_argument("--name", default=None, help="worker name (default: host:pid:random)")
    args = parser.parse_args(argv)

    # Every process the worker forks (RQ's work-horses and its scheduler) dies with it: after a kill -9 nothing is
    # left running on its own (an orphaned scheduler would hold its lock forever, an orphaned horse would finish a
    # job the reconciler has handed to another worker).
    os.register_at_fork(after_in_child=die_with_parent)
    settings = get_settings()
    setup_logging(settings)
    setup_sentry(settings, "worker")
    upgrade_database(settings.effective_database_url)  # the worker may start before the gateway
    cron = None if args.no_cron or args.burst else start_cron()
    try:
        while True:
            redis = make_redis(settings)
            queues = [maintenance_queue(redis, settings), make_queue(redis, settings)]
            # maintenance every minute (RQ's default is 10): a scheduler lock left by a killed worker is taken
            # over within a minute or two, so scheduled retries and expiry sweeps are not held up for long
            worker = VoiceReelWorker(queues, connection=redis, name=args.name, maintenance_interval=MAINTENANCE_S)
            worker.work(with_scheduler=True, burst=args.burst, logging_level=settings.log_level.upper())
            if worker.stop_signalled or args.burst:
                return 0
            log.warning("worker loop ended unexpectedly (Redis away?); starting a new worker in %.0f s", RESTART_WAIT_S)
            time.sleep(RESTART_WAIT_S)
    finally:
        if cron is not None and cron.poll() is None:
            cron.send_signal(signal.SIGTERM)
            try:
                cron.wait(timeout=10)
            except subprocess.TimeoutExpired:
                cron.kill()
