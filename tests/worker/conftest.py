"""Fixtures of the worker tests: a database of their own on the machine's PostgreSQL (the reconciler and the
sweeper scan every job, so other suites' rows must not be in it), rows to work on, and worker processes
(`python -m worker`) started and stopped per test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import Engine, text

from voicereel.db.migrate import upgrade_database
from voicereel.db.models import ApiKey, Job, JobKind, JobStatus, Project, Speaker, SpeakerStatus
from voicereel.db.session import make_engine, session_scope
from voicereel.ids import new_id
from voicereel.settings import Settings
from voicereel.stack import REPO_ROOT
from worker.context import WorkerContext

_TABLES = ("usagerecord", "requestcount", "job", "speaker", "apikey", "project")


@pytest.fixture(scope="session")
def worker_db_url(postgres_url: str) -> Iterator[str]:
    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"vr_worker_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    upgrade_database(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def wsettings(settings_factory: Callable[..., Settings], redis_url: str, worker_db_url: str) -> Callable[..., Settings]:
    """Settings for this test's worker: own queue name, own database, fast heartbeats; plus overrides."""
    queue = f"vr-test-{uuid.uuid4().hex[:8]}"

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "database_url": worker_db_url,
            "queue_name": queue,
            "worker_heartbeat_s": 0.5,
            "reconcile_interval_s": 1,
            "reconcile_grace_s": 1.0,
            "sweep_interval_s": 1,
            "triton_retry_max_wait_s": 1.0,
            "min_reference_s": 5.0,
        }
        values.update(overrides)
        return settings_factory(**values)

    return make


@pytest.fixture
def engine(worker_db_url: str) -> Iterator[Engine]:
    eng = make_engine(worker_db_url, pool_size=2)
    with eng.begin() as conn:  # every test starts from empty tables
        conn.execute(text(f"TRUNCATE {', '.join(_TABLES)} CASCADE"))
    yield eng
    eng.dispose()


@pytest.fixture
def ctx(wsettings: Callable[..., Settings], engine: Engine) -> Iterator[WorkerContext]:
    with WorkerContext.create(wsettings()) as context:
        yield context


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=10)
    yield client
    client.close()


@dataclass
class Rows:
    engine: Engine
    project_id: str = field(default_factory=lambda: new_id("prj"))

    key_id: str = field(default_factory=lambda: new_id("key"))

    def __post_init__(self) -> None:
        with session_scope(self.engine) as s:
            s.add(Project(id=self.project_id, name="worker tests"))
        with session_scope(self.engine) as s:  # jobs that charge a quota belong to a key (`api_key_id=rows.key_id`)
            s.add(
                ApiKey(
                    id=self.key_id,
                    project_id=self.project_id,
                    key_hash=self.key_id,
                    rate_limit_per_min=60,
                    monthly_quota_chars=1000,
                )
            )

    def job(self, kind: JobKind = JobKind.synthesize, request: dict[str, Any] | None = None, **values: Any) -> Job:
        job = Job(id=new_id("job"), project_id=self.project_id, kind=kind, request=request or {}, **values)
        with session_scope(self.engine) as s:
            s.add(job)
        return job

    def speaker(self, **values: Any) -> Speaker:
        speaker_id = values.pop("id", None) or new_id("spk")
        defaults: dict[str, Any] = {
            "name": "Test voice",
            "lang": "en",
            "status": SpeakerStatus.pending,
            "reference_key": f"uploads/{self.project_id}/{speaker_id}/reference",
            "reference_text": "",
        }
        speaker = Speaker(id=speaker_id, project_id=self.project_id, **{**defaults, **values})
        with session_scope(self.engine) as s:
            s.add(speaker)
        return speaker

    def get_job(self, job_id: str) -> Job:
        with session_scope(self.engine) as s:
            job = s.get(Job, job_id)
            assert job is not None
            return job

    def get_speaker(self, speaker_id: str) -> Speaker:
        with session_scope(self.engine) as s:
            speaker = s.get(Speaker, speaker_id)
            assert speaker is not None
            return speaker

    def wait_job(
        self,
        job_id: str,
        statuses: set[JobStatus],
        timeout: float,
        poll: float = 0.2,
        logs: Callable[[], str] | None = None,
    ) -> Job:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if JobStatus(job.status) in statuses:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"job {job_id} still {job.status} after {timeout} s: {job}\n{logs() if logs else ''}"
                )
            time.sleep(poll)


@pytest.fixture
def rows(engine: Engine) -> Rows:
    return Rows(engine)


def settings_env(settings: Settings) -> dict[str, str]:
    """VR_* variables that recreate `settings` in a child process."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None or value == "**********":  # unset, or a secret (the child's profile supplies it)
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        env[f"VR_{name.upper()}"] = str(value)
    return env


class WorkerProcesses:
    """`python -m worker` processes of one test, each in its own process group; all stopped at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, settings: Settings, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"worker-{len(self.procs)}.log").open("wb")
        env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(REPO_ROOT), **(extra_env or {})}
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-6000:]}" for p in sorted(self.log_dir.glob("worker-*.log"))
        )

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    procs = WorkerProcesses(tmp_path)
    yield procs
    procs.stop_all()
