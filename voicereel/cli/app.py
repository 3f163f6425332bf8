"""The `voicereel` command: global options, sub-commands, and the one place errors become exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from voicereel.cli import jobs, keys, speakers, synth, usage
from voicereel.cli.config import resolve_config
from voicereel.cli.exit_codes import ExitCode, exit_code_for, exit_codes_epilog
from voicereel.cli.output import Output
from voicereel.cli.state import CliState, MissingApiKeyError
from voicereel.client.errors import VoiceReelClientError
from voicereel.client.transport import ENV_API_KEY, ENV_BASE_URL, ENV_SIGNING_SECRET


class VoiceReelGroup(TyperGroup):
    """Runs sub-commands and turns SDK exceptions into a message and a documented exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except (VoiceReelClientError, KeyboardInterrupt) as exc:
            state = ctx.find_object(CliState)
            output = state.output if state is not None else Output(json_mode=False, progress=False)
            if isinstance(exc, KeyboardInterrupt):
                output.notice("interrupted")
                raise typer.Exit(130) from None
            code = ExitCode.AUTH if isinstance(exc, MissingApiKeyError) else exit_code_for(exc)
            output.error(exc, int(code))
            raise typer.Exit(int(code)) from None
        finally:
            state = ctx.find_object(CliState)
            if state is not None:
                state.close()


app = typer.Typer(
    name="voicereel",
    cls=VoiceReelGroup,
    help="VoiceReel: register voices, synthesize multi-speaker scripts, manage jobs and keys.",
    epilog=exit_codes_epilog(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Config file (TOML). Default: ~/.config/voicereel/config.toml.", dir_okay=False),
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="Gateway URL.", envvar=ENV_BASE_URL)] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key (vr_...).", envvar=ENV_API_KEY, show_default=False)
    ] = None,
    signing_secret: Annotated[
        str | None,
        typer.Option(help="Signing secret (vrs_...): sign every request.", envvar=ENV_SIGNING_SECRET),
    ] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Per-request timeout, seconds.", min=0.1)] = None,
    retries: Annotated[
        int, typer.Option("--retries", help="Retries of a request on 429/503/connection errors.", min=0, max=20)
    ] = 4,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print results as JSON (errors as JSON on stderr).")
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bars (default: when stderr is a terminal)."),
    ] = None,
) -> None:
    output = Output(json_mode=json_output, progress=progress)
    try:
        resolved = resolve_config(
            config_path=config, base_url=base_url, api_key=api_key, signing_secret=signing_secret, timeout_s=timeout
        )
    except VoiceReelClientError as exc:
        output.error(exc, int(ExitCode.USAGE))
        raise typer.Exit(int(ExitCode.USAGE)) from None
    ctx.obj = CliState(config=resolved, output=output, retries=retries)


app.add_typer(speakers.app, name="speakers")
app.add_typer(jobs.app, name="jobs")
app.add_typer(keys.app, name="keys")
app.command("synth", epilog=exit_codes_epilog())(synth.synth)
app.command("usage")(usage.usage)
