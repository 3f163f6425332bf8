"""`python -m worker` as a process: it registers an RQ worker on both queues, runs the cron child, and stops on
SIGTERM (not restarting itself, which it does only when its loop ends without a stop being asked)."""

import os
import signal
import time

from rq import Worker

from worker.maintenance import maintenance_queue_name


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_worker_process_starts_and_stops_on_sigterm(wsettings, workers, redis) -> None:
    settings = wsettings()
    proc = workers.start(settings)
    deadline = time.monotonic() + 60
    while True:
        mine = [w for w in Worker.all(connection=redis) if settings.queue_name in w.queue_names()]
        if mine:
            break
        assert proc.poll() is None and time.monotonic() < deadline, workers.logs()
        time.sleep(0.2)
    assert mine[0].queue_names() == [maintenance_queue_name(settings), settings.queue_name]
    while "rq.cron" not in workers.logs():  # the cron child is enqueueing maintenance
        assert time.monotonic() < deadline, workers.logs()
        time.sleep(0.2)

    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, workers.logs()
    assert "starting a new worker" not in workers.logs()
    deadline = time.monotonic() + 10
    while _group_alive(proc.pid):  # the cron child and RQ's scheduler are gone too
        assert time.monotonic() < deadline, "children outlived the worker"
        time.sleep(0.1)
