"""Container health checks of the gateway and worker images (Docker HEALTHCHECK, Kubernetes exec probes).

    python infra/docker/healthcheck.py gateway   # GET /healthz on this container's gateway port
    python infra/docker/healthcheck.py worker    # an RQ worker of this host is registered with a fresh heartbeat

Exit status 0 means healthy, 1 unhealthy (the reason goes to stderr, which Docker keeps in `docker inspect`).
Settings come from the same `VR_*` variables as the component itself.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime

from voicereel.settings import Settings

# RQ refreshes a worker's heartbeat at least every worker_ttl - 15 s (405 s with the default 420 s) while idle.
DEFAULT_MAX_HEARTBEAT_AGE_S = 480.0


def check_gateway(settings: Settings, timeout_s: float) -> str | None:
    """None when the gateway's /healthz answers 2xx on loopback, else why not."""
    scheme = "https" if settings.tls_certfile else "http"
    url = f"{scheme}://127.0.0.1:{settings.port}/healthz"
    context = None
    if scheme == "https":
        # Loopback: the certificate names the public host, so only the TLS handshake itself is checked here.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as resp:  # noqa: S310 (loopback URL)
            if 200 <= resp.status < 300:
                return None
            return f"{url} answered {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except OSError as exc:
        return f"{url} unreachable: {exc}"


def check_worker(settings: Settings, timeout_s: float, max_heartbeat_age_s: float, hostname: str) -> str | None:
    """None when an RQ worker registered from `hostname` has a heartbeat younger than `max_heartbeat_age_s`."""
    import redis
    from rq import Worker

    conn = redis.Redis.from_url(settings.redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        workers = [w for w in Worker.all(connection=conn) if w.hostname == hostname]
    except redis.RedisError as exc:
        return f"redis at {settings.redis_url.split('@')[-1]} unreachable: {exc}"
    finally:
        conn.close()
    if not workers:
        return f"no RQ worker registered from host {hostname!r}"
    now = datetime.now(UTC)
    ages = [
        (now - w.last_heartbeat.replace(tzinfo=w.last_heartbeat.tzinfo or UTC)).total_seconds()
        for w in workers
        if w.last_heartbeat is not None
    ]
    if not ages or min(ages) > max_heartbeat_age_s:
        return f"worker on {hostname!r} has no heartbeat within {max_heartbeat_age_s:.0f}s"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("component", choices=["gateway", "worker"])
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds for each network call")
    parser.add_argument("--max-heartbeat-age", type=float, default=DEFAULT_MAX_HEARTBEAT_AGE_S)
    parser.add_argument("--hostname", default=socket.gethostname(), help="worker host to look for (default: this)")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.component == "gateway":
        problem = check_gateway(settings, args.timeout)
    else:
        problem = check_worker(settings, args.timeout, args.max_heartbeat_age, args.hostname)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
