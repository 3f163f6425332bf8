"""`python -m worker.dashboard` (`make dashboard`): rq-dashboard for the same Redis as the worker, behind HTTP basic
auth (user `dashboard_username`, password `admin_token`; compared in constant time, unlike rq-dashboard's own
option). Served by werkzeug's threaded server, as rq-dashboard's own command does: an internal admin tool, bind it
to a private address (`dashboard_host`, default 127.0.0.1).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac

from flask import Flask, Response, request
from rq_dashboard.cli import make_flask_app
from werkzeug.serving import make_server

from voicereel.settings import Settings, get_settings
from worker.observability import setup_logging

REALM = "VoiceReel RQ dashboard"


def _authorized(header: str | None, username: str, password: str) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, given = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # both comparisons always run: no early exit that would time the username
    ok_user = hmac.compare_digest(user.encode(), username.encode())
    ok_password = hmac.compare_digest(given.encode(), password.encode())
    return ok_user and ok_password


def build_app(settings: Settings) -> Flask:
    app: Flask = make_flask_app(None, None, None, "")
    app.config["RQ_DASHBOARD_REDIS_URL"] = [settings.redis_url]
    username, password = settings.dashboard_username, settings.secret("admin_token")

    @app.before_request
    def require_basic_auth() -> Response | None:
        if _authorized(request.headers.get("Authorization"), username, password):
            return None
        return Response("authentication required", 401, {"WWW-Authenticate": f'Basic realm="{REALM}"'})

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=None, help="bind address (default: VR_DASHBOARD_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default: VR_DASHBOARD_PORT)")
    args = parser.parse_args(argv)
    settings = get_settings()
    setup_logging(settings)
    host, port = args.host or settings.dashboard_host, args.port or settings.dashboard_port
    server = make_server(host, port, build_app(settings), threaded=True)
    print(f"rq-dashboard on http://{host}:{port}/ (basic auth: {settings.dashboard_username} / VR_ADMIN_TOKEN)")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
