"""Session-wide real services for the test suite, started through `voicereel.stack` (the same code as `make run`).

Every service is ours for the session: a redis-server on a free port (tests may restart it), a fresh database on
the machine's PostgreSQL, a moto S3 server, and tritonserver serving the tiny random checkpoint.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from voicereel.settings import Settings
from voicereel.stack import (
    REPO_ROOT,
    Service,
    Supervisor,
    TritonPorts,
    ensure_postgres,
    free_port,
    moto_service,
    redis_service,
    triton_service,
)

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def supervisor(run_dir: Path) -> Iterator[Supervisor]:
    with Supervisor(run_dir / "logs") as sup:
        yield sup


@pytest.fixture(scope="session")
def redis_server(supervisor: Supervisor, run_dir: Path) -> Service:
    return supervisor.start(redis_service(free_port(), run_dir / "logs"))


@pytest.fixture(scope="session")
def redis_url(redis_server: Service) -> str:
    port = redis_server.argv[redis_server.argv.index("--port") + 1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    import psycopg

    ensure_postgres()
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"vr_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def s3_endpoint(supervisor: Supervisor, run_dir: Path) -> str:
    port = free_port()
    supervisor.start(moto_service(port, run_dir / "logs"))
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from voicereel.engine.checkpoints import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", seed=0).root


class TritonHandle:
    """A running tritonserver: its endpoints, and its Service for tests that stop or restart it."""

    def __init__(self, service: Service, ports: TritonPorts, repository: Path, supervisor: Supervisor) -> None:
        self.service = service
        self.ports = ports
        self.repository = repository
        self.supervisor = supervisor

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"


@pytest.fixture(scope="session")
def triton(supervisor: Supervisor, run_dir: Path, tiny_checkpoint: Path) -> TritonHandle:
    from voicereel.modelrepo import build_repository

    repository = build_repository(run_dir / "model_repository", tiny_checkpoint, None)
    ports = TritonPorts.free()
    service = supervisor.start(triton_service(repository, ports, run_dir / "triton", run_dir / "logs"))
    return TritonHandle(service, ports, repository, supervisor)


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for one test: the test profile, data under tmp_path, plus the given overrides."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "profile": "test",
            "data_dir": tmp_path / "data",
            "storage_dir": tmp_path / "data" / "storage",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


def pytest_report_header() -> list[str]:
    return [f"voicereel repo: {REPO_ROOT}", "services: own redis-server, moto, tritonserver (tiny); system PostgreSQL"]
