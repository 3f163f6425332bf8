"""SDK test fixtures: the real gateway (uvicorn on a free port, or in-process over ASGI) on the session's real
Redis and PostgreSQL, and fresh keys per test (each test gets its own project, so tests do not see each other)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import httpx
import pytest

from gateway.auth import IssuedKey
from voicereel.client import VoiceReelClient
from voicereel.settings import Settings


def load_live_gateway() -> ModuleType:
    """tests/client/live_gateway.py, loaded by path (the suite runs with --import-mode=importlib)."""
    name = "voicereel_tests_live_gateway"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("live_gateway.py"))
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


_live = load_live_gateway()
if TYPE_CHECKING:
    from tests.client.live_gateway import Keys, LiveServer
else:
    Keys, LiveServer = _live.Keys, _live.LiveServer


@pytest.fixture(scope="session")
def live(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str
) -> Iterator[tuple[LiveServer, Keys]]:
    with _live.live_gateway(tmp_path_factory.mktemp("sdk-gateway"), postgres_url, redis_url) as pair:
        yield pair


@pytest.fixture(scope="session")
def server(live: tuple[LiveServer, Keys]) -> LiveServer:
    return live[0]


@pytest.fixture(scope="session")
def keys(live: tuple[LiveServer, Keys]) -> Keys:
    return live[1]


@pytest.fixture
def api_key(keys: Keys) -> IssuedKey:
    return keys.new_key()


@pytest.fixture
def client(server: LiveServer, api_key: IssuedKey) -> Iterator[VoiceReelClient]:
    with VoiceReelClient(server.base_url, api_key.key) as vr:
        yield vr


@pytest.fixture(scope="session")
def asgi_settings(tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str) -> Settings:
    """Settings of an in-process app whose download URLs point back at the ASGI client's base URL."""
    return _live.gateway_settings(tmp_path_factory.mktemp("sdk-asgi"), postgres_url, redis_url, _live.ASGI_BASE_URL)


@pytest.fixture(scope="session")
def asgi_keys(asgi_settings: Settings) -> Iterator[Keys]:
    keys = Keys(asgi_settings)
    yield keys
    keys.close()


@pytest.fixture(scope="session")
def asgi_gateway() -> Callable[[Settings], AbstractAsyncContextManager[httpx.ASGITransport]]:
    """`async with asgi_gateway(settings) as transport`: the app (lifespan entered) as an httpx transport."""
    return _live.asgi_gateway  # type: ignore[no-any-return,unused-ignore]


@pytest.fixture(scope="session")
def reference_wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """At least 31 s of espeak-ng speech and its transcript (the gateway refuses references under 30 s)."""
    from voicereel.speech_fixture import reference_clip

    path, transcript = reference_clip(tmp_path_factory.mktemp("ref") / "reference.wav", lang="en", min_seconds=31)
    return Path(path), transcript
