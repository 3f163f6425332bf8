"""`voicereel synth SCRIPT -o out.mp3 --captions srt`: script file in, mastered audio (and captions) out.

Everything that can be checked locally is checked before the first request: the output format (from `-o`'s
suffix), the script file, every speaker name bound by the speaker map, and the whole request against the same
pydantic model the gateway uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from voicereel.cli.jobs import download_results, show_job, wait_with_bar
from voicereel.cli.state import CliState, state_of
from voicereel.client.errors import InvalidRequestError
from voicereel.client.screenplay import (
    SCRIPT_FORMATS,
    BoundScript,
    bind_speakers,
    load_script,
    load_speaker_map,
    parse_speaker_assignment,
)
from voicereel.client.sync_client import VoiceReelClient
from voicereel.ids import new_id
from voicereel.schemas import CaptionFormat, OutputFormat, SynthesisRequest

SUFFIX_FORMATS = {".wav": "wav", ".flac": "flac", ".mp3": "mp3", ".ogg": "ogg", ".opus": "ogg"}


def output_format_for(path: Path, explicit: OutputFormat | None) -> OutputFormat:
    if explicit is not None:
        return explicit
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(SUFFIX_FORMATS)
        raise InvalidRequestError(f"unsupported output format {path.suffix or '(no suffix)'!r} for {path}; use {known}")
    return OutputFormat(fmt)


def resolve_names(client: VoiceReelClient, names: set[str]) -> dict[str, str]:
    """Registered speaker names -> ids (case-insensitive); one error listing every name not found or ambiguous."""
    by_name: dict[str, list[str]] = {}
    for speaker in client.iter_speakers():
        by_name.setdefault(speaker.name.casefold(), []).append(speaker.id)
    resolved: dict[str, str] = {}
    problems = []
    for name in sorted(names):
        ids = by_name.get(name.casefold(), [])
        if len(ids) == 1:
            resolved[name] = ids[0]
        elif not ids:
            problems.append(f"no registered speaker is named {name!r}")
        else:
            problems.append(f"{len(ids)} speakers are named {name!r} ({', '.join(ids)}); map to an id instead")
    if problems:
        raise InvalidRequestError("; ".join(problems))
    return resolved


def build_request(state: CliState, bound: BoundScript, options: dict[str, object]) -> SynthesisRequest:
    names = bound.names_to_look_up
    if names:
        # Validate everything else before the lookup request: placeholder ids stand in for the names.
        bound.to_request({name: new_id("spk") for name in names}, **options)
        return bound.to_request(resolve_names(state.client(), names), **options)
    return bound.to_request({}, **options)


def synth(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="Script: .json, .yaml or a screenplay of 'NAME: line' lines.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Audio file to write; its suffix picks the format.")],
    captions: Annotated[
        CaptionFormat | None, typer.Option("--captions", help="Also write captions in this format (srt, vtt, json).")
    ] = None,
    captions_out: Annotated[
        Path | None, typer.Option("--captions-out", help="Captions path (default: next to -o, with the format suffix).")
    ] = None,
    speaker: Annotated[
        list[str] | None,
        typer.Option("--speaker", "-s", metavar="NAME=ID", help="NAME=spk_... (or NAME=registered name); repeatable."),
    ] = None,
    speakers_file: Annotated[
        Path | None, typer.Option("--speakers", help="Speaker map file: JSON/YAML/TOML table or NAME=value lines.")
    ] = None,
    script_format: Annotated[
        str | None, typer.Option("--format", help=f"Script format ({', '.join(SCRIPT_FORMATS)}); default by suffix.")
    ] = None,
    output_format: Annotated[OutputFormat | None, typer.Option(help="Override the format implied by -o.")] = None,
    sample_rate: Annotated[int | None, typer.Option(help="Output sample rate (default 44100).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible sampling.", min=0)] = None,
    loudness_lufs: Annotated[float | None, typer.Option(help="Integrated loudness target (default -16).")] = None,
    pause_ms: Annotated[int | None, typer.Option(help="Silence between lines in ms (default 300).", min=0)] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait and download (default), or print the job id.")
    ] = True,
    timeout_s: Annotated[float, typer.Option("--wait-timeout", help="Seconds to wait for the job.", min=1)] = 1800,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Reuse a key to make re-running this command create no second job.")
    ] = None,
) -> None:
    """Synthesize a multi-speaker script into one audio file (plus captions)."""
    state = state_of(ctx)
    if script_format is not None and script_format not in SCRIPT_FORMATS:
        raise InvalidRequestError(f"--format must be one of {', '.join(SCRIPT_FORMATS)}")
    fmt = output_format_for(output, output_format)
    speaker_map = load_speaker_map(speakers_file) if speakers_file is not None else {}
    speaker_map.update(parse_speaker_assignment(item) for item in speaker or [])
    bound = bind_speakers(load_script(script, script_format), speaker_map)
    options: dict[str, object] = {
        "output_format": fmt,
        "caption_format": captions,
        "sample_rate": sample_rate,
        "seed": seed,
        "loudness_lufs": loudness_lufs,
        "pause_ms": pause_ms,
    }
    request = build_request(state, bound, options)
    caption_path = None
    if captions is not None:
        caption_path = captions_out or output.with_suffix(f".{captions.value}")

    client = state.client()
    accepted = client.synthesize(request, idempotency_key=idempotency_key)
    if not wait:
        state.output.result(accepted, lambda c: c.print(accepted.job_id, markup=False))
        return
    state.output.notice(f"job {accepted.job_id}: {len(request.script)} lines, {request.characters} characters")
    job = wait_with_bar(state, accepted.job_id, timeout_s, "synthesizing")
    written = download_results(state, job, output, caption_path)

    def human(console: Console) -> None:
        show_job(console, job)
        for label, path in written.items():
            console.print(f"wrote {label}: {path}", markup=False)

    state.output.result({"job": job, "files": written}, human)
