"""Decoding uploaded reference audio in a child process.

libsndfile and its codecs parse untrusted bytes. Run inside the gateway process, a file that crashes or hangs the
decoder would take every request of that process with it; here each probe runs `gateway.uploads.probe_audio` in a
child forked from a forkserver that has already imported it (a few milliseconds per upload, no interpreter
start-up), bounded in time. A child that dies is a 400 for that request only; one that runs past the time limit is
killed and is a 400 too. Verdicts the probe gives (415, 413, 422, 400) come back unchanged.
"""

from __future__ import annotations

import io
import multiprocessing
from multiprocessing.connection import Connection
from typing import IO, Any

from gateway.uploads import AudioProbe, probe_audio
from voicereel.errors import ErrorCode, VoiceReelError

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["gateway.uploads"])


def _run_probe(conn: Connection, data: bytes, limits: dict[str, Any]) -> None:
    """Child side: probe, then send ("ok", probe) or ("error", code, message, details)."""
    try:
        outcome: tuple[Any, ...] = ("ok", probe_audio(io.BytesIO(data), **limits))
    except VoiceReelError as exc:
        outcome = ("error", str(exc.code), exc.message, exc.details)
    conn.send(outcome)
    conn.close()


def _undecodable(reason: str) -> VoiceReelError:
    return VoiceReelError(ErrorCode.INVALID_INPUT, "reference_audio could not be decoded", {"reason": reason})


def probe_isolated(
    file: IO[bytes], *, timeout_s: float, max_decoded_s: float, min_duration_s: float, target: Any = _run_probe
) -> AudioProbe:
    """`probe_audio` in a child process (blocking: run in a thread). `target` is for tests only."""
    file.seek(0)
    data = file.read()
    limits = {"max_decoded_s": max_decoded_s, "min_duration_s": min_duration_s}
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=target, args=(sender, data, limits), daemon=True, name="voicereel-probe")
    child.start()
    sender.close()  # the child holds the only writer: its death reads as EOF here
    try:
        if not receiver.poll(timeout_s):
            child.kill()
            raise _undecodable(f"decoding took longer than {timeout_s:g} s")
        try:
            outcome = receiver.recv()
        except EOFError:
            child.join(5)
            raise _undecodable(f"the decoder stopped (exit code {child.exitcode})") from None
    finally:
        receiver.close()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()
        child.close()
    if outcome[0] == "ok":
        probe: AudioProbe = outcome[1]
        return probe
    _, code, message, details = outcome
    raise VoiceReelError(ErrorCode(code), message, details)
