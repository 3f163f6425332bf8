"""API keys: creation (the secret is shown once), lookup by hash, revocation, scopes.

A key is `vr_` + 43 url-safe characters (256 random bits). The database keeps only its SHA-256 (a fast hash is
right for a secret of that entropy: there is nothing to brute-force). Each key also has a request-signing secret
for HMAC signing (DESIGN §3), derived as `vrs_` + HMAC-SHA256(Settings.key_signing_secret, key id): the server can
recompute it for any key without storing it, a database leak does not reveal it, and it is shown once, together
with the key, at creation. Rotating `key_signing_secret` invalidates every signing secret.

Lookups are cached per process for `Settings.api_key_cache_s` seconds (default 5). A revocation is also announced
on the Redis channel `REVOKED_CHANNEL` (`announce_revocation`); every gateway process listens
(`KeyCache.listening`) and drops the key from its cache at once; a process that lost the channel drops its whole
cache when it subscribes again. A key revoked in the database without the announcement keeps working for at most
the cache lifetime.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import redis.asyncio
from sqlalchemy import Engine
from sqlmodel import Session, select

from voicereel.db.models import ApiKey, Project
from voicereel.errors import ErrorCode, VoiceReelError
from voicereel.ids import new_id
from voicereel.settings import Settings

log = logging.getLogger("voicereel.gateway")

SCOPES = ("speakers:read", "speakers:write", "jobs:read", "jobs:write", "usage:read")
KEY_PREFIX = "vr_"
_KEY_SHAPE = re.compile(r"^vr_[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id and project, and what the key may do."""

    key_id: str
    project_id: str
    scopes: frozenset[str]
    rate_limit_per_min: int
    monthly_quota_chars: int
    signing_required: bool

    @classmethod
    def of(cls, key: ApiKey) -> Caller:
        return cls(
            key_id=key.id,
            project_id=key.project_id,
            scopes=frozenset(key.scopes),
            rate_limit_per_min=key.rate_limit_per_min,
            monthly_quota_chars=key.monthly_quota_chars,
            signing_required=key.signing_required,
        )

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise VoiceReelError(ErrorCode.FORBIDDEN, f"this API key lacks the scope {scope!r}", {"scope": scope})


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def signing_secret_for(settings: Settings, key_id: str) -> str:
    digest = hmac.new(settings.secret("key_signing_secret").encode(), key_id.encode(), hashlib.sha256)
    return "vrs_" + digest.hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """What `create_key` hands back once: the key and its signing secret are not stored anywhere."""

    key_id: str
    project_id: str
    key: str
    signing_secret: str
    scopes: tuple[str, ...]


def create_project(session: Session, name: str) -> Project:
    project = Project(id=new_id("prj"), name=name)
    session.add(project)
    session.flush()
    return project


def create_key(
    session: Session,
    settings: Settings,
    project_id: str,
    *,
    name: str = "",
    scopes: Iterable[str] = SCOPES,
    rate_limit_per_min: int | None = None,
    monthly_quota_chars: int | None = None,
    signing_required: bool = False,
) -> IssuedKey:
    scopes = tuple(dict.fromkeys(scopes))
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}; known: {SCOPES}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        id=new_id("key"),
        project_id=project_id,
        name=name,
        key_hash=hash_key(key),
        scopes=list(scopes),
        rate_limit_per_min=rate_limit_per_min or settings.default_rate_limit_per_min,
        monthly_quota_chars=monthly_quota_chars or settings.default_monthly_quota_chars,
        signing_required=signing_required,
    )
    session.add(row)
    session.flush()
    return IssuedKey(row.id, project_id, key, signing_secret_for(settings, row.id), scopes)


def revoke_key(session: Session, key_id: str) -> bool:
    row = session.get(ApiKey, key_id)
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.add(row)
    return True


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key from `X-VR-APIKEY`, else from `Authorization: Bearer …`."""
    bearer = None
    for name, value in headers:
        if name == b"x-vr-apikey":
            return value.decode("latin-1").strip()
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                bearer = token.strip()
    return bearer


class KeyCache:
    """key hash -> Caller, for `ttl_s` seconds. Unknown and revoked keys are not cached (a new key works at once)."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Caller, float]] = {}
        self.subscriptions = 0  # times `listening` has (re)subscribed to the revocation channel

    def get(self, key_hash: str) -> Caller | None:
        hit = self._entries.get(key_hash)
        if hit is None:
            return None
        caller, expires = hit
        if time.monotonic() >= expires:
            del self._entries[key_hash]
            return None
        return caller

    def put(self, key_hash: str, caller: Caller) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key_hash] = (caller, time.monotonic() + self.ttl_s)

    def clear(self) -> None:
        self._entries.clear()

    def forget(self, key_id: str) -> None:
        for key_hash, (caller, _) in list(self._entries.items()):
            if caller.key_id == key_id:
                del self._entries[key_hash]

    @contextlib.asynccontextmanager
    async def listening(
        self, redis_client: redis.asyncio.Redis, *, retry_s: float = 1.0, max_retry_s: float = 30.0
    ) -> AsyncIterator[None]:
        """While the app runs, forget every key announced on REVOKED_CHANNEL. After each (re)subscription the
        whole cache is dropped, so an announcement made while this process was not listening is not missed."""

        async def listen_forever() -> None:
            delay = retry_s
            while True:
                try:
                    async with redis_client.pubsub(ignore_subscribe_messages=True) as pubsub:
                        await pubsub.subscribe(REVOKED_CHANNEL)
                        self.clear()
                        self.subscriptions += 1
                        delay = retry_s
                        async for message in pubsub.listen():
                            if message.get("type") == "message":
                                data = message["data"]
                                self.forget(data.decode("ascii", "replace") if isinstance(data, bytes) else str(data))
                except Exception as exc:
                    log.warning("revocation channel lost (%s); retrying in %.0f s", exc, delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, max_retry_s)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(listen_forever)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()


REVOKED_CHANNEL = "vr:keys:revoked"


def announce_revocation(redis_client: Any, key_id: str) -> bool:
    """Tell every gateway process to drop `key_id` from its cache now (sync client). False if Redis refused."""
    try:
        redis_client.publish(REVOKED_CHANNEL, key_id)
    except Exception:
        log.warning("could not announce the revocation of %s", key_id, exc_info=True)
        return False
    return True


def lookup_key(engine: Engine, key_hash: str) -> Caller | None:
    with Session(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()
        if row is None or row.revoked_at is not None:
            return None
        return Caller.of(row)


_INVALID = "API key is missing, invalid or revoked"


def presented_key_hash(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The hash to look up, or UNAUTHORIZED when no well-formed key was sent (nothing to look up)."""
    key = presented_key(headers)
    if not key or not _KEY_SHAPE.match(key):
        raise unauthorized()
    return hash_key(key)


def unauthorized() -> VoiceReelError:
    return VoiceReelError(ErrorCode.UNAUTHORIZED, _INVALID, headers={"WWW-Authenticate": "Bearer"})
