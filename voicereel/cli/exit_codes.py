"""Exit codes of the `voicereel` command, and which error maps to which. Documented in `voicereel --help`."""

from __future__ import annotations

from enum import IntEnum

from voicereel.client.errors import (
    ApiError,
    AuthError,
    EngineUnavailableError,
    InsufficientReferenceError,
    InvalidInputError,
    InvalidRequestError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    PayloadTooLargeError,
    QuotaExceededError,
    RateLimitedError,
    TransportError,
    UnsupportedMediaError,
)


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    AUTH = 3
    NOT_FOUND = 4
    JOB_FAILED = 5
    TIMEOUT = 6
    RATE_LIMITED = 7
    UNAVAILABLE = 8


EXIT_CODE_HELP = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "any other error (server error, unexpected answer)",
    ExitCode.USAGE: "usage error or invalid input (bad option, unreadable or invalid script/audio file, unknown "
    "speaker name, request rejected as invalid); nothing was done",
    ExitCode.AUTH: "authentication or permission error (missing/invalid API key, bad signature, missing scope)",
    ExitCode.NOT_FOUND: "no such speaker or job",
    ExitCode.JOB_FAILED: "the job (or speaker registration) failed, was canceled or expired",
    ExitCode.TIMEOUT: "timed out waiting for a job (it keeps running; see `voicereel jobs show`)",
    ExitCode.RATE_LIMITED: "rate limited after all retries, or the monthly quota is spent",
    ExitCode.UNAVAILABLE: "gateway unreachable or engine unavailable after all retries",
}


def exit_codes_epilog() -> str:
    rows = "\n\n".join(f"{int(code)}  {text}" for code, text in EXIT_CODE_HELP.items())
    return f"Exit codes:\n\n{rows}"


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code of an exception raised while running a command."""
    if isinstance(exc, InvalidRequestError | InvalidInputError | PayloadTooLargeError | UnsupportedMediaError):
        return ExitCode.USAGE
    if isinstance(exc, InsufficientReferenceError):
        return ExitCode.USAGE
    if isinstance(exc, AuthError):
        return ExitCode.AUTH
    if isinstance(exc, NotFoundError):
        return ExitCode.NOT_FOUND
    if isinstance(exc, JobFailedError):
        return ExitCode.JOB_FAILED
    if isinstance(exc, JobTimeoutError):
        return ExitCode.TIMEOUT
    if isinstance(exc, RateLimitedError | QuotaExceededError):
        return ExitCode.RATE_LIMITED
    if isinstance(exc, TransportError | EngineUnavailableError):
        return ExitCode.UNAVAILABLE
    if isinstance(exc, ApiError):
        return ExitCode.ERROR
    return ExitCode.ERROR
