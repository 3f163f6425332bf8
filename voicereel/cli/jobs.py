"""`voicereel jobs list|show|cancel|download`, and the helpers `synth` shares (waiting, downloading)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from voicereel.cli.state import CliState, state_of
from voicereel.client.models import Job

app = typer.Typer(help="List, inspect, cancel and download jobs.", no_args_is_help=True)


def _jobs_table(jobs: list[Job], total: int) -> Table:
    table = Table("ID", "KIND", "STATUS", "PROGRESS", "AUDIO (s)", "CREATED", title=f"{len(jobs)} of {total} jobs")
    for j in jobs:
        duration = f"{j.duration_s:.1f}" if j.duration_s is not None else "-"
        created = j.created_at.strftime("%Y-%m-%d %H:%M:%S") if j.created_at else "-"
        table.add_row(j.id, j.kind or "-", j.status, f"{j.progress:.0%}", duration, created)
    return table


def show_job(console: Console, job: Job) -> None:
    console.print(f"{job.id}  {job.kind or 'job'}  status: {job.status}  progress: {job.progress:.0%}", markup=False)
    if job.duration_s is not None:
        console.print(
            f"audio: {job.duration_s:.2f} s {job.output_format or ''} {job.sample_rate or ''} Hz", markup=False
        )
    if job.error is not None:
        console.print(f"error: {job.error.code}: {job.error.message}", markup=False)
    for label, url in (("audio_url", job.audio_url), ("caption_url", job.caption_url)):
        if url:
            console.print(f"{label}: {url}", markup=False, soft_wrap=True)
    for cap in job.captions or []:
        console.print(f"  [{cap.start:7.2f} → {cap.end:7.2f}] {cap.speaker}: {cap.text}", markup=False)


def wait_with_bar(state: CliState, job_id: str, timeout_s: float, description: str) -> Job:
    with state.output.job_bar(description) as on_progress:
        return state.client().wait_for_job(job_id, timeout_s=timeout_s, on_progress=on_progress)


def download_results(state: CliState, job: Job, audio: Path, captions: Path | None) -> dict[str, Any]:
    """Download the audio (and captions) of a succeeded job with progress bars; the paths written."""
    client = state.client()
    written: dict[str, Any] = {}
    with state.output.bytes_bar(f"downloading {audio.name}") as progress:
        written["audio"] = str(client.download_audio(job, audio, progress=progress))
    if captions is not None:
        with state.output.bytes_bar(f"downloading {captions.name}") as progress:
            written["captions"] = str(client.download_captions(job, captions, progress=progress))
    return written


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="Only jobs in this state (queued, running, succeeded, ...).")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind (synthesize, register_speaker).")] = None,
    limit: Annotated[int, typer.Option(help="Page size.", min=1, max=100)] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
) -> None:
    """List the project's jobs, newest first."""
    state = state_of(ctx)
    page = state.client().list_jobs(limit=limit, cursor=cursor, status=status, kind=kind)

    def human(console: Console) -> None:
        console.print(_jobs_table(page.data, page.total))
        if page.next_cursor:
            console.print(f"next page: --cursor {page.next_cursor}", markup=False)

    state.output.result(page, human)


@app.command("show")
def show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="job_... id.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the job finishes (exit 5 if it fails).")] = False,
    timeout_s: Annotated[float, typer.Option("--wait-timeout", help="Seconds to wait with --wait.", min=1)] = 1800,
) -> None:
    """Show a job: status, progress, result URLs, captions, error."""
    state = state_of(ctx)
    job = wait_with_bar(state, job_id, timeout_s, job_id) if wait else state.client().get_job(job_id)
    state.output.result(job, lambda c: show_job(c, job))


@app.command("cancel")
def cancel(ctx: typer.Context, job_id: Annotated[str, typer.Argument(help="job_... id.")]) -> None:
    """Cancel a job that has not finished, and delete its artifacts."""
    state = state_of(ctx)
    state.client().cancel_job(job_id)
    state.output.result({"canceled": job_id}, lambda c: c.print(f"canceled {job_id}", markup=False))


@app.command("download")
def download(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="job_... id of a succeeded synthesis job.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the audio.")],
    captions_out: Annotated[Path | None, typer.Option("--captions-out", help="Where to write the captions.")] = None,
) -> None:
    """Download the audio (and captions) of a finished job."""
    state = state_of(ctx)
    job = state.client().get_job(job_id)
    written = download_results(state, job, output, captions_out)
    state.output.result(
        {"job_id": job.id, **written}, lambda c: c.print(f"wrote {', '.join(written.values())}", markup=False)
    )
