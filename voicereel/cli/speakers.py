"""`voicereel speakers add|list|show|rm`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from voicereel.cli.state import state_of
from voicereel.client.errors import InvalidRequestError
from voicereel.client.models import Speaker
from voicereel.client.screenplay import read_text_file

app = typer.Typer(help="Register, list, show and delete speakers (voices).", no_args_is_help=True)


def _speaker_table(speakers: list[Speaker], total: int | None = None) -> Table:
    title = None if total is None else f"{len(speakers)} of {total} speakers"
    table = Table("ID", "NAME", "LANG", "STATUS", "REF (s)", "CREATED", title=title)
    for s in speakers:
        duration = f"{s.duration_s:.1f}" if s.duration_s is not None else "-"
        created = s.created_at.strftime("%Y-%m-%d %H:%M") if s.created_at else "-"
        table.add_row(s.id, s.name, s.lang, s.status, duration, created)
    return table


def _show_speaker(console: Console, speaker: Speaker) -> None:
    console.print(f"{speaker.id}  {speaker.name}  ({speaker.lang})  status: {speaker.status}", markup=False)
    if speaker.duration_s is not None:
        console.print(f"reference: {speaker.duration_s:.1f} s", markup=False)
    if speaker.quality:
        for key, value in speaker.quality.items():
            console.print(f"quality.{key}: {value}", markup=False)
    if speaker.error:
        console.print(f"error: {speaker.error}", markup=False)


@app.command("add")
def add(
    ctx: typer.Context,
    audio: Annotated[Path, typer.Argument(help="Reference audio (wav, flac, ogg or mp3; at least 30 s of speech).")],
    name: Annotated[str, typer.Option("--name", "-n", help="Display name of the speaker.")],
    lang: Annotated[str, typer.Option("--lang", "-l", help="ISO 639-1 language of the reference (en, ko, ja, ...).")],
    transcript: Annotated[str | None, typer.Option("--transcript", "-t", help="What is said in the audio.")] = None,
    transcript_file: Annotated[
        Path | None, typer.Option("--transcript-file", "-T", help="File with what is said in the audio.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until registration finishes.")] = False,
    timeout_s: Annotated[float, typer.Option("--wait-timeout", help="Seconds to wait with --wait.", min=1)] = 600,
) -> None:
    """Upload reference audio and register a speaker (202: registration runs in the background)."""
    state = state_of(ctx)
    if (transcript is None) == (transcript_file is None):
        raise InvalidRequestError("give the reference transcript with exactly one of --transcript or --transcript-file")
    if transcript_file is not None:
        transcript = read_text_file(transcript_file, "transcript")
    assert transcript is not None
    client = state.client()
    with state.output.bytes_bar(f"uploading {audio.name}") as progress:
        accepted = client.create_speaker(name, lang, audio, transcript, upload_progress=progress)
    if not wait:
        state.output.result(
            accepted, lambda c: c.print(f"{accepted.speaker_id} registering (job {accepted.job_id})", markup=False)
        )
        return
    with state.output.job_bar(f"registering {name}") as on_progress:
        client.wait_for_job(accepted.job_id, timeout_s=timeout_s, on_progress=on_progress)
    speaker = client.get_speaker(accepted.speaker_id)
    state.output.result(speaker, lambda c: _show_speaker(c, speaker))


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="Page size.", min=1, max=100)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    status: Annotated[str | None, typer.Option(help="Only speakers in this state (pending, ready, failed).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every speaker (follows pages).")] = False,
) -> None:
    """List the project's speakers, newest first."""
    state = state_of(ctx)
    client = state.client()
    if all_:
        speakers = list(client.iter_speakers(page_size=limit, status=status))
        state.output.result(
            {"data": speakers, "total": len(speakers)}, lambda c: c.print(_speaker_table(speakers, len(speakers)))
        )
        return
    page = client.list_speakers(limit=limit, cursor=cursor, status=status)

    def human(console: Console) -> None:
        console.print(_speaker_table(page.data, page.total))
        if page.next_cursor:
            console.print(f"next page: --cursor {page.next_cursor}", markup=False)

    state.output.result(page, human)


@app.command("show")
def show(ctx: typer.Context, speaker_id: Annotated[str, typer.Argument(help="spk_... id.")]) -> None:
    """Show one speaker: status, reference duration, quality report."""
    state = state_of(ctx)
    speaker = state.client().get_speaker(speaker_id)
    state.output.result(speaker, lambda c: _show_speaker(c, speaker))


@app.command("rm")
def rm(ctx: typer.Context, speaker_id: Annotated[str, typer.Argument(help="spk_... id.")]) -> None:
    """Delete a speaker."""
    state = state_of(ctx)
    state.client().delete_speaker(speaker_id)
    state.output.result({"deleted": speaker_id}, lambda c: c.print(f"deleted {speaker_id}", markup=False))
