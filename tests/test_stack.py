import os
import sys
import time
from pathlib import Path

import pytest

from voicereel.stack import Service, StackError, Supervisor, free_port, port_open, redis_service


def test_failing_service_is_named_with_its_log(tmp_path: Path) -> None:
    svc = Service(
        "broken",
        [sys.executable, "-c", "import sys; print('cannot bind: port in use'); sys.exit(3)"],
        lambda: False,
        tmp_path / "broken.log",
    )
    with Supervisor(tmp_path) as sup, pytest.raises(StackError) as err:
        sup.start(svc)
    assert "'broken' exited with code 3" in str(err.value)
    assert "cannot bind: port in use" in str(err.value)


def test_unhealthy_service_times_out_and_is_stopped(tmp_path: Path) -> None:
    svc = Service(
        "sleepy",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        lambda: False,
        tmp_path / "sleepy.log",
        timeout_s=1.0,
    )
    sup = Supervisor(tmp_path)
    with pytest.raises(StackError, match="not healthy after 1s"):
        sup.start(svc)
    sup.stop_all()
    assert svc.process is not None and svc.process.poll() is not None


def test_stop_reaches_grandchildren(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time; "
        f"c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        f"open({str(pid_file)!r}, 'w').write(str(c.pid)); time.sleep(120)"
    )
    svc = Service("parent", [sys.executable, "-c", code], pid_file.exists, tmp_path / "parent.log")
    with Supervisor(tmp_path) as sup:
        sup.start(svc)
        child = int(pid_file.read_text())
    # The grandchild was in the service's process group, so it is gone too.
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(child, 0)
            time.sleep(0.1)


def test_redis_starts_restarts_and_stops(tmp_path: Path) -> None:
    port = free_port()
    with Supervisor(tmp_path) as sup:
        svc = sup.start(redis_service(port, tmp_path))
        assert port_open(port)
        sup.restart(svc)
        assert port_open(port)
    assert not port_open(port)
