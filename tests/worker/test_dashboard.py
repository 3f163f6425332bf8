import base64
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.worker.conftest import settings_env
from voicereel.stack import REPO_ROOT, free_port


def _get(url: str, user: str | None = None, password: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_dashboard_serves_rq_behind_basic_auth(wsettings, tmp_path) -> None:
    settings = wsettings(admin_token="dash-secret", dashboard_username="ops")
    port = free_port()
    env = {**settings_env(settings), "VR_ADMIN_TOKEN": "dash-secret", "PATH": "/usr/bin:/bin"}
    with (tmp_path / "dashboard.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.dashboard", "--port", str(port)],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = _get(base + "/")
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()
                assert time.monotonic() < deadline, "dashboard did not start"
                time.sleep(0.2)
        assert status == 401
        assert _get(base + "/", "ops", "wrong")[0] == 401
        assert _get(base + "/", "admin", "dash-secret")[0] == 401
        status, body = _get(base + "/", "ops", "dash-secret")
        assert status == 200 and b"RQ" in body
        status, body = _get(base + "/0/data/queues.json", "ops", "dash-secret")
        assert status == 200, body[:500]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
