"""`voicereel keys create|revoke|list`: admin commands that work on the database directly, not through the API.

Each forwards to the gateway's own admin command (`gateway.admin`, also `python -m gateway.admin`), so operators
have one tool and a key made here is exactly what the gateway makes; server settings come from the `VR_*`
environment (`VR_DATABASE_URL`, `VR_KEY_SIGNING_SECRET`, ...) or `--database-url`. `gateway.admin` is imported
when a keys command runs (it pulls in the database stack, which the API commands do not need). A test keeps
these options equal to the gateway command's.
"""

from __future__ import annotations

from typing import Annotated

import typer

from voicereel.cli.state import state_of

DatabaseUrl = Annotated[str | None, typer.Option(help="SQLAlchemy URL; default: VR_DATABASE_URL / settings.")]

app = typer.Typer(
    help="Admin: create, revoke and list API keys directly in the database (server settings from VR_* variables).",
    no_args_is_help=True,
)


@app.command("create")
def create(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="Project name; created if no project has it.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    scope: Annotated[list[str] | None, typer.Option(help="Scope to grant; repeatable; default all scopes.")] = None,
    rate_limit: Annotated[int | None, typer.Option(min=1, help="Requests per minute.")] = None,
    quota: Annotated[int | None, typer.Option(min=1, help="Characters per month.")] = None,
    signing_required: Annotated[bool, typer.Option(help="Reject requests without a valid HMAC signature.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts).")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key (and its project if new); prints the key and its signing secret once."""
    from gateway import admin

    admin.create_key_command(
        project=project,
        name=name,
        scope=scope,
        rate_limit=rate_limit,
        quota=quota,
        signing_required=signing_required,
        as_json=as_json or state_of(ctx).output.json_mode,
        database_url=database_url,
    )


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="key_... id.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a key (gateways stop accepting it within VR_API_KEY_CACHE_S seconds)."""
    from gateway import admin

    admin.revoke_key_command(key_id=key_id, database_url=database_url)


@app.command("list")
def list_(
    project: Annotated[str | None, typer.Option(help="Only this project's keys.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List keys: id, project, state, limits, scopes."""
    from gateway import admin

    admin.list_keys_command(project=project, database_url=database_url)


FORWARDS = {"create": "create_key_command", "revoke": "revoke_key_command", "list_": "list_keys_command"}
