"""Admin command: projects and API keys.

    python -m gateway.admin create-key --project "Acme" [--scope jobs:read ...] [--rate-limit 600]
                                       [--quota 5000000] [--signing-required] [--json]
    python -m gateway.admin revoke-key key_…
    python -m gateway.admin list-keys [--project "Acme"]

`create-key` creates the project when no project has that name, then a key, and prints the key and its signing
secret once: neither is stored (the database keeps the key's SHA-256; the signing secret is derived from
`VR_KEY_SIGNING_SECRET`). The database is `VR_DATABASE_URL` (or `--database-url`), migrated first.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from redis import Redis
from sqlmodel import Session, col, select

from gateway.auth import SCOPES, announce_revocation, create_key, create_project, revoke_key
from voicereel.db.migrate import upgrade_database
from voicereel.db.models import ApiKey, Project
from voicereel.db.session import make_engine, session_scope
from voicereel.settings import Settings, get_settings

app = typer.Typer(help="VoiceReel gateway administration: projects and API keys.", no_args_is_help=True)

DatabaseUrl = Annotated[str | None, typer.Option(help="SQLAlchemy URL; default: VR_DATABASE_URL / settings.")]


def _settings(database_url: str | None) -> Settings:
    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


def _project(session: Session, name: str) -> tuple[Project, bool]:
    existing = session.exec(select(Project).where(Project.name == name).order_by(col(Project.created_at))).first()
    if existing is not None:
        return existing, False
    return create_project(session, name), True


@app.command("create-key")
def create_key_command(
    project: Annotated[str, typer.Option(help="Project name; created if no project has it.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    scope: Annotated[list[str] | None, typer.Option(help=f"Repeatable; default all of {', '.join(SCOPES)}.")] = None,
    rate_limit: Annotated[int | None, typer.Option(min=1, help="Requests per minute.")] = None,
    quota: Annotated[int | None, typer.Option(min=1, help="Characters per month.")] = None,
    signing_required: Annotated[bool, typer.Option(help="Reject requests without a valid HMAC signature.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts).")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    settings = _settings(database_url)
    url = settings.effective_database_url
    upgrade_database(url)
    engine = make_engine(url, pool_size=1)
    try:
        with session_scope(engine) as session:
            row, created = _project(session, project)
            try:
                issued = create_key(
                    session,
                    settings,
                    row.id,
                    name=name,
                    scopes=scope or SCOPES,
                    rate_limit_per_min=rate_limit,
                    monthly_quota_chars=quota,
                    signing_required=signing_required,
                )
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--scope") from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "project_id": issued.project_id,
                    "project_created": created,
                    "key_id": issued.key_id,
                    "api_key": issued.key,
                    "signing_secret": issued.signing_secret,
                    "scopes": list(issued.scopes),
                }
            )
        )
        return
    typer.echo(f"project:        {issued.project_id} ({project}{', created' if created else ''})")
    typer.echo(f"key id:         {issued.key_id}")
    typer.echo(f"scopes:         {' '.join(issued.scopes)}")
    typer.echo(f"api key:        {issued.key}")
    typer.echo(f"signing secret: {issued.signing_secret}")
    typer.echo("Store both now: they are shown only this once and cannot be recovered.", err=True)


@app.command("revoke-key")
def revoke_key_command(key_id: str, database_url: DatabaseUrl = None) -> None:
    settings = _settings(database_url)
    url = settings.effective_database_url
    upgrade_database(url)
    engine = make_engine(url, pool_size=1)
    try:
        with session_scope(engine) as session:
            found = revoke_key(session, key_id)
    finally:
        engine.dispose()
    if not found:
        typer.echo(f"no key {key_id}", err=True)
        raise typer.Exit(1)
    redis_client = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        announced = announce_revocation(redis_client, key_id)
    finally:
        redis_client.close()
    if announced:
        typer.echo(f"revoked {key_id}; running gateways were told to drop it now")
    else:
        typer.echo(f"revoked {key_id}; Redis did not answer, so gateways stop accepting it within VR_API_KEY_CACHE_S s")


@app.command("list-keys")
def list_keys_command(
    project: Annotated[str | None, typer.Option(help="Only this project's keys.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    url = _settings(database_url).effective_database_url
    upgrade_database(url)
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as session:
            stmt = select(ApiKey, Project).where(ApiKey.project_id == Project.id)
            if project:
                stmt = stmt.where(Project.name == project)
            for key, proj in session.exec(stmt.order_by(col(ApiKey.id))):
                state = "revoked" if key.revoked_at else "active"
                typer.echo(
                    f"{key.id}  {proj.name!r:20} {state:8} {key.rate_limit_per_min:>6}/min "
                    f"{key.monthly_quota_chars:>10} chars/month  {' '.join(key.scopes)}"
                )
    finally:
        engine.dispose()


if __name__ == "__main__":
    app()
