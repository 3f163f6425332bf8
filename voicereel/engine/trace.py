"""First-chunk traces (shared knob ``trace_requests``): where one request's time goes before its first audio.

Each model on the way (tts, text2semantic) stamps a request's milestones with the wall clock and logs them as one
line, ``trace <model> {json}``, once its first chunk has left. The models run in separate processes of one machine,
so their wall clocks agree; ``first_chunk_segments`` joins the lines of both (tts's ``stream`` is the id it gives
text2semantic, which prefixes the engine's own request id) and splits each request's first-chunk latency into
segments, per group of client request ids (``<label>-<n>``, as perf/gpu/bench_tts.py names them).

codec_decoder logs one line per execution instead (``log_execution``: start, end, rows): the execution that
returned a request's first window splits its ``first_codec`` segment into queue, run and return.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import time
from collections.abc import Iterable

PREFIX = "trace "
_LINE = re.compile(re.escape(PREFIX) + r"(\w+) (\{.*\})")

# (segment, from milestone, to milestone); "tts." and "t2s." say whose line the milestone is on.
SEGMENTS = [
    ("to_model", "tts.start", "t2s.received"),  # tts's BLS call through Triton to text2semantic's execute
    ("to_engine", "t2s.received", "t2s.submitted"),  # reading the inputs, parsing and tokenising the prompt
    ("admission_wait", "t2s.submitted", "t2s.prefill_start"),  # queued behind the loop's current work
    ("prefill", "t2s.prefill_start", "t2s.prefill_end"),  # the pass that prefilled it (with pass_rows others)
    ("first_frames", "t2s.prefill_end", "t2s.first_codes"),  # decode steps (and other passes) to stream_frames
    ("codes_to_tts", "t2s.first_codes", "tts.first_codes"),  # the first code response back through Triton
    ("first_codec", "tts.first_codes", "tts.first_codec"),  # codec_decoder's first window, queue included
    ("send", "tts.first_codec", "tts.first_sent"),  # the first PCM response handed to Triton
    ("total", "tts.start", "tts.first_sent"),
]


# Parts of ``first_codec``, from the codec_decoder execution that served the first window (``_codec_split``).
CODEC_SEGMENTS = ["codec_queue", "codec_run", "codec_return", "codec_rows"]


class FirstChunkTrace:
    """Milestones of one request in one model; ``emit`` logs them once."""

    def __init__(self, model: str, **fields: str) -> None:
        self.model = model
        self.fields: dict[str, object] = dict(fields)
        self.emitted = False

    def mark(self, milestone: str) -> None:
        """Stamp ``milestone`` with the wall clock, the first time only."""
        self.fields.setdefault(milestone, time.time())

    def note(self, key: str, value: object) -> None:
        """Record ``value`` under ``key``, the first time only."""
        self.fields.setdefault(key, value)

    def emit(self, logger: logging.Logger) -> None:
        if not self.emitted:
            self.emitted = True
            logger.warning("%s%s %s", PREFIX, self.model, json.dumps(self.fields, sort_keys=True))


def log_execution(logger: logging.Logger, model: str, started: float, rows: int) -> None:
    """One line for an execution of a batched model that began at wall-clock ``started`` and ends now."""
    fields = {"start": started, "end": time.time(), "rows": rows}
    logger.warning("%s%s %s", PREFIX, model, json.dumps(fields, sort_keys=True))


def parse_traces(lines: Iterable[str]) -> dict[str, list[dict[str, object]]]:
    """Trace lines of a log (other lines ignored), per model."""
    traces: dict[str, list[dict[str, object]]] = {}
    for line in lines:
        found = _LINE.search(line)
        if found is not None:
            traces.setdefault(found.group(1), []).append(json.loads(found.group(2)))
    return traces


def _number(value: object) -> float:
    if isinstance(value, int | float):
        return float(value)
    raise ValueError(f"trace field {value!r} is not a number")


def _codec_split(executions: list[dict[str, object]], asked: float, answered: float) -> dict[str, float]:
    """``first_codec`` (window ``asked`` .. PCM ``answered``) split at the codec_decoder execution that served it:
    the last one to end in between (none found: no split)."""
    inside = [e for e in executions if asked <= _number(e["start"]) and _number(e["end"]) <= answered]
    if not inside:
        return {}
    serving = max(inside, key=lambda e: _number(e["end"]))
    start, end = _number(serving["start"]), _number(serving["end"])
    return {
        "codec_queue": start - asked,
        "codec_run": end - start,
        "codec_return": answered - end,
        "codec_rows": _number(serving["rows"]),
    }


def first_chunk_segments(traces: dict[str, list[dict[str, object]]]) -> dict[str, dict[str, float]]:
    """Median seconds of each segment (and of ``pass_rows``), per label of the client request ids; only requests
    with both lines count, and ``requests`` says how many did."""
    engine = {str(fields["id"]).split("#")[0]: fields for fields in traces.get("text2semantic", [])}
    rows: dict[str, list[dict[str, float]]] = {}
    for tts in traces.get("tts", []):
        t2s = engine.get(str(tts.get("stream")))
        if t2s is None:
            continue
        stamps = {f"tts.{key}": value for key, value in tts.items()} | {
            f"t2s.{key}": value for key, value in t2s.items()
        }
        row = {
            name: _number(stamps[end]) - _number(stamps[start])
            for name, start, end in SEGMENTS
            if start in stamps and end in stamps
        }
        if "pass_rows" in t2s:
            row["pass_rows"] = _number(t2s["pass_rows"])
        if "tts.first_codes" in stamps and "tts.first_codec" in stamps:
            row |= _codec_split(
                traces.get("codec_decoder", []), _number(stamps["tts.first_codes"]), _number(stamps["tts.first_codec"])
            )
        label = str(tts.get("request_id", "")).rpartition("-")[0] or "unlabelled"
        rows.setdefault(label, []).append(row)
    summary: dict[str, dict[str, float]] = {}
    for label, group in rows.items():
        keys = [name for name, _, _ in SEGMENTS] + ["pass_rows", *CODEC_SEGMENTS]
        summary[label] = {"requests": float(len(group))}
        for key in keys:
            values = [row[key] for row in group if key in row]
            if values:
                summary[label][key] = round(statistics.median(values), 4)
    return summary
