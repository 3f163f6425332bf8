"""The real gateway for SDK and CLI tests: `create_app(settings)` on the session's real Redis and PostgreSQL,
either served by uvicorn on a free port (sync client, CLI subprocesses) or driven in-process through
httpx.ASGITransport (async client). Keys are made with the gateway's own `create_key`, as its admin command does.

Shared by tests/client and tests/cli (the CLI conftest imports this file by path).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine

from gateway.app import create_app
from gateway.auth import IssuedKey, create_key, create_project
from voicereel.db.migrate import upgrade_database
from voicereel.db.models import Speaker, SpeakerStatus
from voicereel.db.session import make_engine, session_scope
from voicereel.ids import new_id
from voicereel.settings import Settings
from voicereel.stack import free_port

ASGI_BASE_URL = "http://gateway.test"


def gateway_settings(data_dir: Path, database_url: str, redis_url: str, public_base_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "profile": "test",
        "data_dir": data_dir,
        "storage_dir": data_dir / "storage",
        "database_url": database_url,
        "redis_url": redis_url,
        "public_base_url": public_base_url,
        "api_key_cache_s": 0,
        "access_log": False,
        "readiness_timeout_s": 1.0,
        # No Triton for most of these tests: a closed port, so readiness is deterministic (tests that need Triton
        # pass its URLs in `extra`).
        "triton_http_url": "http://127.0.0.1:9",
        "triton_grpc_url": "127.0.0.1:9",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)


@dataclass
class Keys:
    """Makes projects, keys and ready speakers directly in the gateway's database."""

    settings: Settings
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        upgrade_database(self.settings.effective_database_url)
        self.engine = make_engine(self.settings.effective_database_url, pool_size=2)

    def new_key(self, project_id: str | None = None, **options: Any) -> IssuedKey:
        with session_scope(self.engine) as session:
            if project_id is None:
                project_id = create_project(session, f"sdk-test-{new_id('prj')}").id
            return create_key(session, self.settings, project_id, **options)

    def add_ready_speaker(self, key: IssuedKey, name: str = "Narrator") -> str:
        """A speaker row as the worker leaves it after registration: lets synthesis requests be accepted without
        the worker. (Tests that need real audio register speakers through the API and the worker.)"""
        speaker_id = new_id("spk")
        with session_scope(self.engine) as session:
            session.add(
                Speaker(
                    id=speaker_id,
                    project_id=key.project_id,
                    name=name,
                    lang="en",
                    status=SpeakerStatus.ready,
                    reference_key=f"uploads/{key.project_id}/{speaker_id}/reference",
                    reference_text="hello there",
                    duration_s=31.0,
                )
            )
        return speaker_id

    def close(self) -> None:
        self.engine.dispose()


class LiveServer:
    """uvicorn serving one app in a background thread, on a free port."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"gateway-{port}", daemon=True)

    def start(self, timeout_s: float = 60.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("gateway server thread exited during start (see log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start within {timeout_s} s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextlib.contextmanager
def live_gateway(data_dir: Path, database_url: str, redis_url: str, **extra: Any) -> Iterator[tuple[LiveServer, Keys]]:
    port = free_port()
    settings = gateway_settings(data_dir, database_url, redis_url, f"http://127.0.0.1:{port}", **extra)
    keys = Keys(settings)
    server = LiveServer(settings, port)
    server.start()
    try:
        yield server, keys
    finally:
        server.stop()
        keys.close()


@contextlib.asynccontextmanager
async def asgi_gateway(settings: Settings) -> AsyncIterator[httpx.ASGITransport]:
    """The app with its lifespan entered, as an httpx transport (in-process, no socket)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield httpx.ASGITransport(app=app)
