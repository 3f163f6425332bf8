"""HMAC-signed, expiring URLs for the local-filesystem backend, served by the gateway at `/v1/files/{key}`.

The signature covers a version tag, the key and the expiry (`v1\\n{key}\\n{exp}`) with HMAC-SHA256 under
`url_signing_secret`; the URL carries nothing else, so altering any part of it fails verification.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

from voicereel.settings import Settings
from voicereel.storage.keys import check_key


def _signature(settings: Settings, key: str, exp: int) -> str:
    message = f"v1\n{key}\n{exp}".encode()
    return hmac.new(settings.secret("url_signing_secret").encode(), message, hashlib.sha256).hexdigest()


def local_url(settings: Settings, key: str, *, now: float | None = None) -> str:
    check_key(key)
    exp = int(now if now is not None else time.time()) + settings.presign_expiry_s
    base = settings.public_base_url.rstrip("/")
    return f"{base}/v1/files/{quote(key, safe='/')}?exp={exp}&sig={_signature(settings, key, exp)}"


def verify_local_url(settings: Settings, key: str, exp: str | int, sig: str, *, now: float | None = None) -> bool:
    """True when `sig` signs (`key`, `exp`) and `exp` (unix seconds) has not passed. Constant-time comparison."""
    try:
        check_key(key)
        expires = int(exp)
    except (TypeError, ValueError):
        return False
    if str(exp) != str(expires) or (now if now is not None else time.time()) > expires:
        return False
    return hmac.compare_digest(_signature(settings, key, expires), str(sig))
