"""Stack supervisor shared by `make run` and the test fixtures.

Starts each service as a child process in its own process group, waits on its health check with a timeout, and
on failure raises `StackError` naming the service with the tail of its log. `Supervisor.stop_all()` (also run on
exit from the `with` block) stops services in reverse order, TERM then KILL, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class StackError(RuntimeError):
    """A service failed to start or become healthy."""


@dataclass
class Service:
    name: str
    argv: list[str]
    health: Callable[[], bool]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    timeout_s: float = 60.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (our own localhost URL)
                return 200 <= resp.status < 300
        except OSError:
            return False

    return check


class Supervisor:
    """Owns a set of running services; a context manager that stops them all on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.services: list[Service] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, service: Service) -> Service:
        service.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = service.log_path.open("ab")
        env = {**os.environ, **(service.env or {})}
        service.process = subprocess.Popen(  # noqa: S603 (argv built by this module)
            service.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=service.cwd or REPO_ROOT,
            start_new_session=True,  # own process group: stop() reaches its children too
        )
        log.close()
        self.services.append(service)
        self.wait_healthy(service)
        return service

    def wait_healthy(self, service: Service) -> None:
        deadline = time.monotonic() + service.timeout_s
        while time.monotonic() < deadline:
            if not service.alive:
                code = service.process.returncode if service.process else None
                raise StackError(
                    f"service {service.name!r} exited with code {code} before it was healthy; "
                    f"log {service.log_path}:\n{service.log_tail()}"
                )
            if service.health():
                return
            time.sleep(0.25)
        raise StackError(
            f"service {service.name!r} not healthy after {service.timeout_s:.0f}s; "
            f"log {service.log_path}:\n{service.log_tail()}"
        )

    def stop(self, service: Service, grace_s: float = 10.0) -> None:
        proc = service.process
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=5)
        # Children that outlived the leader (e.g. Triton's python stubs) share its group.
        _signal_group(proc, signal.SIGKILL)

    def kill(self, service: Service) -> None:
        """SIGKILL the whole group at once (crash tests)."""
        if service.process is not None:
            _signal_group(service.process, signal.SIGKILL)
            service.process.wait(timeout=10)

    def restart(self, service: Service) -> Service:
        self.stop(service)
        self.services.remove(service)
        service.process = None
        return self.start(service)

    def stop_all(self) -> None:
        # A second Ctrl-C while stopping must not abandon the services still running: hold SIGINT meanwhile.
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            for service in reversed(self.services):
                self.stop(service)
            self.services.clear()
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def install_signal_handlers(supervisor: Supervisor) -> None:
    """Turn SIGTERM/SIGHUP into a clean stop of every service (Ctrl-C arrives as KeyboardInterrupt)."""

    def handler(signum: int, _frame: object) -> None:
        supervisor.stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


# --- service builders -------------------------------------------------------------------------------


def redis_service(port: int, log_dir: Path) -> Service:
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("redis-server is not installed (make install-system installs it)")

    def healthy() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    return Service("redis", argv, healthy, log_dir / "redis.log", timeout_s=20)


def _site_packages() -> Path:
    """Where `pytriton/tritonserver` and `nvidia_pytriton.libs` are: `VOICEREEL_TRITON_DIST` (an unpacked copy,
    as on the GPU machine), else the installed nvidia-pytriton wheel (located without importing it)."""
    override = os.environ.get("VOICEREEL_TRITON_DIST")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("nvidia-pytriton is not installed (make install installs it)")
    return Path(next(iter(spec.submodule_search_locations))).resolve().parent


def prepare_triton_backends(dest: Path) -> Path:
    """Copy Triton's backends next to `dest` with the python-backend stub of the running Python installed.

    The stub runs the first `python3` on PATH, so Triton is started with this interpreter's bin/ first.
    """
    dist = _site_packages() / "pytriton" / "tritonserver"
    backends = dest / "backends"
    stub = backends / "python" / "triton_python_backend_stub"
    if not stub.exists():
        if backends.exists():
            shutil.rmtree(backends)
        shutil.copytree(dist / "backends", backends)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        shutil.copy2(dist / "python_backend_stubs" / version / "triton_python_backend_stub", stub)
    return backends


def libpython_dir(dest: Path) -> Path:
    """``dest/libpython``: a link to the running interpreter's shared libpython and nothing else (empty for a
    statically linked interpreter), for the stub's LD_LIBRARY_PATH."""
    folder = dest / "libpython"
    folder.mkdir(parents=True, exist_ok=True)
    name = sysconfig.get_config_var("INSTSONAME") or ""
    target = Path(sysconfig.get_config_var("LIBDIR") or "") / name
    link = folder / name
    if name and target.is_file() and not link.exists():
        link.symlink_to(target)
    return folder


@dataclass(frozen=True)
class TritonPorts:
    grpc: int
    http: int
    metrics: int

    @classmethod
    def free(cls) -> TritonPorts:
        return cls(free_port(), free_port(), free_port())


def triton_service(
    model_repository: Path, ports: TritonPorts, work_dir: Path, log_dir: Path, *, timeout_s: float = 180
) -> Service:
    site = _site_packages()
    backends = prepare_triton_backends(work_dir)
    bin_dir = Path(sys.executable).parent
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        # The stub links libpython3.X.so.1.0: load the running interpreter's, not the system's (an older 3.11
        # whose libpython lacks symbols this interpreter's stdlib extensions need, e.g. _ssl's _PyModule_Add).
        # Only that library: putting its whole LIBDIR first (/usr/lib/x86_64-linux-gnu for a distribution's
        # Python) would also put that directory's CUDA libraries ahead of torch's own in every stub.
        "LD_LIBRARY_PATH": ":".join(
            p
            for p in (
                str(libpython_dir(work_dir)),
                str(site / "nvidia_pytriton.libs"),
                os.environ.get("LD_LIBRARY_PATH", ""),
            )
            if p
        ),
        "PYTHONPATH": ":".join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    argv = [
        str(site / "pytriton" / "tritonserver" / "bin" / "tritonserver"),
        f"--model-repository={model_repository}",
        f"--backend-directory={backends}",
        f"--grpc-port={ports.grpc}",
        f"--http-port={ports.http}",
        f"--metrics-port={ports.metrics}",
        "--log-verbose=0",
        "--exit-on-error=true",
        "--strict-readiness=true",
    ]
    return Service(
        "triton",
        argv,
        http_ok(f"http://127.0.0.1:{ports.http}/v2/health/ready"),
        log_dir / "triton.log",
        env=env,
        timeout_s=timeout_s,
    )


def moto_service(port: int, log_dir: Path) -> Service:
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return Service("s3 (moto)", argv, http_ok(f"http://127.0.0.1:{port}/moto-api/"), log_dir / "moto.log")


def python_service(
    name: str, module_argv: list[str], health: Callable[[], bool], env: Mapping[str, str], log_dir: Path
) -> Service:
    """A component of ours (gateway, worker) run with this interpreter, configured through VR_* variables."""
    return Service(
        name,
        [sys.executable, *module_argv],
        health,
        log_dir / f"{name}.log",
        env={"PYTHONPATH": str(REPO_ROOT), **env},
    )


def postgres_ready(dsn_host: str = "127.0.0.1", port: int = 5432) -> bool:
    return port_open(port, dsn_host)


def ensure_postgres(timeout_s: float = 30) -> None:
    """Start the machine's PostgreSQL cluster when it is installed but down (the Makefile installs it)."""
    if postgres_ready():
        return
    versions = sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").exists() else []
    if not versions:
        raise StackError("PostgreSQL is not installed (make install-system installs it)")
    subprocess.run(  # noqa: S603
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "start"],  # noqa: S607
        check=False,
        capture_output=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if postgres_ready():
            return
        time.sleep(0.25)
    raise StackError("PostgreSQL did not accept connections on 127.0.0.1:5432")
