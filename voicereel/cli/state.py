"""Per-invocation state of the CLI: resolved settings, the output, and the SDK client (made on first use, so
commands that need no server, and `--help`, work without an API key)."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from voicereel.cli.config import CliConfig
from voicereel.cli.output import Output
from voicereel.client.errors import VoiceReelClientError
from voicereel.client.retry import RetryPolicy
from voicereel.client.sync_client import VoiceReelClient


class MissingApiKeyError(VoiceReelClientError):
    """No API key from --api-key, VOICEREEL_API_KEY or the config file."""


@dataclass
class CliState:
    config: CliConfig
    output: Output
    retries: int = 4
    _client: VoiceReelClient | None = field(default=None, repr=False)

    def client(self) -> VoiceReelClient:
        if self._client is None:
            if not self.config.api_key:
                raise MissingApiKeyError(
                    "no API key: pass --api-key, set VOICEREEL_API_KEY, or put api_key in the config file"
                )
            self._client = VoiceReelClient(
                self.config.base_url,
                self.config.api_key,
                signing_secret=self.config.signing_secret,
                timeout_s=self.config.timeout_s,
                retry=RetryPolicy(max_retries=self.retries),
                on_retry=self.output.retrying,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def state_of(ctx: typer.Context) -> CliState:
    state = ctx.find_object(CliState)
    if state is None:  # only when a command is invoked without the app's callback, i.e. a bug
        raise RuntimeError("voicereel CLI state missing")
    return state
