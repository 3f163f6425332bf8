"""`voicereel usage`: requests, characters and audio seconds per month (and per key), and this key's quota."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from voicereel.cli.state import state_of
from voicereel.client.models import Usage


def _show_usage(console: Console, usage: Usage) -> None:
    table = Table("MONTH", "KEY", "REQUESTS", "CHARACTERS", "AUDIO (s)", title=f"usage of {usage.project_id}")
    for month in usage.months:
        table.add_row(month.month, "all keys", str(month.requests), str(month.characters), f"{month.audio_seconds:.1f}")
        for key in month.keys:
            table.add_row("", key.api_key_id or "-", str(key.requests), str(key.characters), f"{key.audio_seconds:.1f}")
    console.print(table)
    q = usage.quota
    console.print(
        f"quota of {q.api_key_id} in {q.month}: {q.used_chars:,} of {q.quota_chars:,} characters used", markup=False
    )


def usage(
    ctx: typer.Context,
    month: Annotated[str | None, typer.Option(help="Only this month, YYYY-MM (UTC).")] = None,
) -> None:
    """Show usage per month and per key, and the calling key's monthly quota."""
    state = state_of(ctx)
    result = state.client().get_usage(month=month)
    state.output.result(result, lambda c: _show_usage(c, result))
