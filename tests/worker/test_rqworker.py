import os
import signal
import subprocess
import sys
import time

from voicereel.stack import REPO_ROOT

PARENT = """
import os, sys, time
from worker.rqworker import die_with_parent
pid = os.fork()
if pid == 0:
    os.setpgrp()  # like RQ's work-horse: its own process group, out of reach of a group kill
    die_with_parent()
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_horse_dies_with_its_worker() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert parent.stdout is not None
    with parent.stdout:
        child = int(parent.stdout.readline())
    time.sleep(0.3)
    assert _alive(child)
    os.kill(parent.pid, signal.SIGKILL)  # kill -9 of the worker
    parent.wait(timeout=10)
    deadline = time.monotonic() + 5
    while _alive(child):
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.05)
