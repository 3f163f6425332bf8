"""Gateway test fixtures: the app on real Redis and a real database (SQLite and PostgreSQL), an httpx client
through ASGITransport, keys, speakers and reference audio made on the fly.

Tests isolate themselves by project: every query of the API is scoped to the caller's project, so each test gets
its own project and keys on the shared, migrated databases.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from starlette.applications import Starlette

from gateway import signing
from gateway.app import create_app
from gateway.auth import IssuedKey, create_key, create_project
from gateway.services import Services
from voicereel.db.migrate import upgrade_database
from voicereel.db.models import Speaker, SpeakerStatus
from voicereel.db.session import session_scope
from voicereel.ids import new_id
from voicereel.settings import Settings
from voicereel.speech_fixture import reference_clip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Both databases the gateway supports, migrated to head. Tests that use it run once on each."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('gateway-db') / 'voicereel.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    upgrade_database(url)
    return url


@pytest.fixture
def gateway_settings(settings_factory: Callable[..., Settings], db_url: str, redis_url: str) -> Callable[..., Settings]:
    """Settings for an app under test; keyword overrides on top. Triton is not running for these tests: its URL
    points at a closed port (tests of readiness start the real one)."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db_url,
            "redis_url": redis_url,
            "triton_http_url": "http://127.0.0.1:9",
            "api_key_cache_s": 0,
            "readiness_timeout_s": 1.0,
            "max_prefer_wait_s": 5,
        }
        values.update(overrides)
        return settings_factory(**values)

    return make


@dataclass
class Gateway:
    """A running app (lifespan entered) and a client talking to it over ASGI."""

    app: Starlette
    client: httpx.AsyncClient
    settings: Settings

    @property
    def services(self) -> Services:
        return self.app.state.services  # type: ignore[no-any-return]

    def new_key(self, project_id: str | None = None, **options: Any) -> IssuedKey:
        with session_scope(self.services.engine) as session:
            if project_id is None:
                project_id = create_project(session, f"test-{new_id('prj')}").id
            return create_key(session, self.settings, project_id, **options)

    def add_speaker(self, key: IssuedKey, status: SpeakerStatus = SpeakerStatus.ready, name: str = "voice") -> str:
        """A speaker row as the worker leaves it after registration (tests of synthesis need ready voices)."""
        speaker_id = new_id("spk")
        with session_scope(self.services.engine) as session:
            session.add(
                Speaker(
                    id=speaker_id,
                    project_id=key.project_id,
                    name=name,
                    lang="en",
                    status=status,
                    reference_key=f"uploads/{key.project_id}/{speaker_id}/reference",
                    reference_text="hello there",
                    duration_s=31.0,
                )
            )
        return speaker_id

    async def request(
        self,
        method: str,
        path: str,
        key: IssuedKey | None,
        *,
        sign: bool = False,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        request = self.client.build_request(method, path, **kwargs)
        if key is not None:
            request.headers["X-VR-APIKEY"] = key.key
        if sign:
            assert key is not None
            body = request.read()
            ts = str(int(time.time()) if timestamp is None else timestamp)
            request.headers["X-VR-Timestamp"] = ts
            request.headers["X-VR-Signature"] = signing.sign(
                key.signing_secret, method, request.url.path, request.url.query.decode(), ts, body
            )
        request.headers.update(headers or {})
        return await self.client.send(request)


@pytest.fixture
async def gateway(gateway_settings: Callable[..., Settings]) -> AsyncIterator[Gateway]:
    async with running_gateway(gateway_settings()) as gw:
        yield gw


@pytest.fixture
def gateway_factory(gateway_settings: Callable[..., Settings]) -> Callable[..., running_gateway]:
    """`async with gateway_factory(**setting_overrides) as gw:` for tests that need other settings."""
    return lambda **overrides: running_gateway(gateway_settings(**overrides))


class running_gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)

    async def __aenter__(self) -> Gateway:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://gateway.test")
        return Gateway(self.app, self.client, self.settings)

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self._lifespan.__aexit__(None, None, None)


@pytest.fixture
def error_code() -> Callable[[httpx.Response], str]:
    return envelope_code


def envelope_code(response: httpx.Response) -> str:
    """The envelope's code, after checking the envelope's shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details", "request_id"}, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return str(body["error"]["code"])


# --- audio ------------------------------------------------------------------------------------------------


def encode_audio(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def tone(seconds: float, rate: int = 16000, freq: float = 220.0) -> np.ndarray:
    """A voiced-ish signal: a tone with harmonics and a little noise (not silence, so probes accept it)."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    signal = 0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 3 * freq * t)
    return (signal + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="session")
def speech_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """At least 31 s of espeak-ng speech (WAV) and its transcript."""
    path, transcript = reference_clip(tmp_path_factory.mktemp("speech") / "reference.wav", lang="en", min_seconds=31)
    return Path(path).read_bytes(), transcript


class AudioKit:
    """Audio helpers for tests, handed out by the `audio` fixture."""

    encode = staticmethod(encode_audio)
    tone = staticmethod(tone)

    @staticmethod
    def form(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return speaker_form(*args, **kwargs)


@pytest.fixture
def audio() -> type[AudioKit]:
    return AudioKit


def speaker_form(
    audio: bytes, transcript: str = "hello there", *, name: str = "Narrator", lang: str = "en", filename: str = "a.wav"
) -> dict[str, Any]:
    """httpx keyword arguments for a `POST /v1/speakers` multipart body."""
    return {
        "data": {"name": name, "lang": lang, "reference_script": transcript},
        "files": {"reference_audio": (filename, audio, "audio/wav")},
    }


# --- a real server: `python -m gateway` under uvicorn, with the admin command's key ----------------------------


@dataclass
class LiveGateway:
    url: str
    env: dict[str, str]
    key: dict[str, Any]  # what `python -m gateway.admin create-key --json` printed

    @property
    def headers(self) -> dict[str, str]:
        return {"X-VR-APIKEY": str(self.key["api_key"])}


def gateway_env(*, port: int, data_dir: Path, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        "VR_PROFILE": "test",
        "VR_HOST": "127.0.0.1",
        "VR_PORT": str(port),
        "VR_DATABASE_URL": database_url,
        "VR_REDIS_URL": redis_url,
        "VR_DATA_DIR": str(data_dir),
        "VR_STORAGE_DIR": str(data_dir / "storage"),
        "VR_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "VR_LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def admin_create_key(env: dict[str, str], *args: str) -> dict[str, Any]:
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "gateway.admin", "create-key", *args, "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def live_gateway(supervisor: Any, run_dir: Path, postgres_url: str, redis_url: str, triton: Any) -> LiveGateway:
    """The gateway as deployed (uvicorn, PostgreSQL, Redis, the real Triton for readiness), a worker draining its
    queue, and a key made by the admin command."""
    from voicereel.stack import free_port, http_ok, python_service

    port = free_port()
    env = gateway_env(
        port=port,
        data_dir=run_dir / "gateway-live",
        database_url=postgres_url,
        redis_url=redis_url,
        VR_TRITON_HTTP_URL=triton.http_url,
        VR_TRITON_GRPC_URL=triton.grpc_url,
        VR_MAX_PREFER_WAIT_S="120",
        VR_QUEUE_NAME="gateway-live",
    )
    logs = run_dir / "logs"
    supervisor.start(
        python_service("gateway-live", ["-m", "gateway"], http_ok(f"http://127.0.0.1:{port}/healthz"), env, logs)
    )
    supervisor.start(python_service("worker-live", ["-m", "worker", "--no-cron"], lambda: True, env, logs))
    key = admin_create_key(env, "--project", "live", "--rate-limit", "100000")
    return LiveGateway(url=f"http://127.0.0.1:{port}", env=env, key=key)
