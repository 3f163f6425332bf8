"""CLI test fixtures: the real `voicereel` entry point (a subprocess) against the real gateway served by uvicorn
on a free port (real Redis and PostgreSQL), and an in-process runner for checks that need no server."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.client.live_gateway import Keys, LiveServer

VOICEREEL = str(Path(sys.executable).with_name("voicereel"))


def load_live_gateway() -> ModuleType:
    """tests/client/live_gateway.py (shared with the SDK tests), loaded by path: the suite uses importlib mode."""
    name = "voicereel_tests_live_gateway"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "client" / "live_gateway.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


CLI_ENV = ("VOICEREEL_API_KEY", "VOICEREEL_BASE_URL", "VOICEREEL_SIGNING_SECRET")


@dataclass
class Cli:
    """Runs `voicereel` with a clean environment (own HOME, no config file): the installed entry point in a
    subprocess, or (`in_process`) the same Typer app through its test runner, for the many quick checks."""

    home: Path
    env: dict[str, str]
    in_process: bool = False

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
        full_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "OMP_NUM_THREADS": "1",
            **self.env,
            **(env or {}),
        }
        if self.in_process:
            from typer.testing import CliRunner

            from voicereel.cli import app

            unset: dict[str, str | None] = dict.fromkeys(CLI_ENV)
            result = CliRunner().invoke(app, list(args), env={**unset, **full_env})
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                raise result.exception
            return CliResult(result.exit_code, result.stdout, result.stderr)
        done = subprocess.run(
            [VOICEREEL, *args], env=full_env, capture_output=True, text=True, timeout=timeout, check=False
        )
        return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def live_gateway_module() -> ModuleType:
    return load_live_gateway()


@pytest.fixture(scope="session")
def cli_live(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str
) -> Iterator[tuple[LiveServer, Keys]]:
    live = load_live_gateway()
    with live.live_gateway(tmp_path_factory.mktemp("cli-gateway"), postgres_url, redis_url) as pair:
        yield pair


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The installed command (subprocess) with no server settings at all."""
    (tmp_path / "home").mkdir()
    return Cli(tmp_path / "home", {})


@pytest.fixture
def quick_cli(tmp_path: Path) -> Cli:
    """The same app run in-process (much faster), with no server settings at all."""
    (tmp_path / "home").mkdir()
    return Cli(tmp_path / "home", {}, in_process=True)


def _gateway_cli(tmp_path: Path, cli_live: tuple[LiveServer, Keys], in_process: bool) -> Cli:
    server, keys = cli_live
    key = keys.new_key()
    (tmp_path / "home").mkdir()
    env = {"VOICEREEL_BASE_URL": server.base_url, "VOICEREEL_API_KEY": key.key}
    return Cli(tmp_path / "home", env, in_process=in_process)


@pytest.fixture
def gateway_cli(tmp_path: Path, cli_live: tuple[LiveServer, Keys]) -> Cli:
    """The app (in-process runner) pointed at the live gateway, with a fresh key (own project)."""
    return _gateway_cli(tmp_path, cli_live, in_process=True)


@pytest.fixture
def gateway_cli_subprocess(tmp_path: Path, cli_live: tuple[LiveServer, Keys]) -> Cli:
    """The installed `voicereel` command pointed at the live gateway, with a fresh key (own project)."""
    return _gateway_cli(tmp_path, cli_live, in_process=False)


class ConnectionRecorder:
    """A TCP listener that counts connections and closes them: proves a command sent nothing (or something)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def recorder() -> Iterator[ConnectionRecorder]:
    rec = ConnectionRecorder()
    yield rec
    rec.close()
