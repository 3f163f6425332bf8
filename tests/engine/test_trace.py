"""First-chunk traces: milestones stamped once, one line per request and model, joined into segments per label."""

from __future__ import annotations

import json
import logging

import pytest

from voicereel.engine.trace import SEGMENTS, FirstChunkTrace, first_chunk_segments, log_execution, parse_traces


def test_a_trace_keeps_first_stamps_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    trace = FirstChunkTrace("tts", request_id="a-1")
    trace.mark("start")
    first = trace.fields["start"]
    trace.mark("start")
    trace.note("stream", "s1")
    trace.note("stream", "s2")
    logger = logging.getLogger("trace-test")
    with caplog.at_level(logging.WARNING, logger="trace-test"):
        trace.emit(logger)
        trace.emit(logger)
    assert len(caplog.records) == 1
    assert parse_traces([caplog.records[0].getMessage()]) == {
        "tts": [{"request_id": "a-1", "start": first, "stream": "s1"}]
    }


def _lines(label: str, n: int, start: float, offsets: dict[str, float], rows: int) -> list[str]:
    tts = {"request_id": f"{label}-{n}", "stream": f"tts-{label}{n}"}
    t2s: dict[str, object] = {"id": f"tts-{label}{n}#{n}", "pass_rows": rows}
    for name, seconds in offsets.items():
        owner, _, milestone = name.partition(".")
        (tts if owner == "tts" else t2s)[milestone] = start + seconds
    return [
        "I1206 06:00:00 tts stats over 1.0s: codec_call=0.1s/1",
        f"trace tts {json.dumps(tts)}",
        f"trace text2semantic {json.dumps(t2s)}",
    ]


OFFSETS = {
    "tts.start": 0.0,
    "t2s.received": 0.004,
    "t2s.submitted": 0.01,
    "t2s.prefill_start": 0.05,
    "t2s.prefill_end": 0.10,
    "t2s.first_codes": 0.14,
    "tts.first_codes": 0.15,
    "tts.first_codec": 0.30,
    "tts.first_sent": 0.31,
}


def test_segments_are_joined_per_label_and_add_up() -> None:
    lines = _lines("latency16", 0, 100.0, OFFSETS, 16) + _lines("latency16", 1, 200.0, OFFSETS, 4)
    lines += _lines("latency1", 0, 300.0, {**OFFSETS, "t2s.prefill_start": 0.02}, 1)
    lines.append('trace tts {"request_id": "orphan-1", "stream": "tts-nobody", "start": 1.0}')  # no engine line
    segments = first_chunk_segments(parse_traces(lines))
    assert set(segments) == {"latency16", "latency1"}
    many = segments["latency16"]
    assert many["requests"] == 2 and many["pass_rows"] == 10  # median of 16 and 4
    assert many["admission_wait"] == pytest.approx(0.04) and many["first_codec"] == pytest.approx(0.15)
    assert many["total"] == pytest.approx(0.31)
    assert many["to_model"] == pytest.approx(0.004) and many["to_engine"] == pytest.approx(0.006)
    parts = [name for name, _, _ in SEGMENTS if name != "total"]
    assert sum(many[name] for name in parts) == pytest.approx(many["total"])
    assert segments["latency1"]["admission_wait"] == pytest.approx(0.01)
    assert segments["latency1"]["prefill"] == pytest.approx(0.08)


def test_a_missing_milestone_leaves_out_only_its_segments() -> None:
    offsets = {key: value for key, value in OFFSETS.items() if key != "tts.first_codec"}
    segments = first_chunk_segments(parse_traces(_lines("x", 0, 5.0, offsets, 1)))["x"]
    assert "first_codec" not in segments and "send" not in segments
    assert segments["total"] == pytest.approx(0.31) and segments["prefill"] == pytest.approx(0.05)


def test_codec_executions_split_the_first_codec_segment(caplog: pytest.LogCaptureFixture) -> None:
    """The execution that returned the first window is the last to end between the window's send and its PCM."""
    logger = logging.getLogger("trace-test")
    with caplog.at_level(logging.WARNING, logger="trace-test"):
        log_execution(logger, "codec_decoder", 0.0, 3)
    line = caplog.records[0].getMessage()
    assert line.startswith("trace codec_decoder ") and parse_traces([line])["codec_decoder"][0]["rows"] == 3
    executions = [  # (start, end, rows) in seconds after 100.0; the window left tts at 0.15, its PCM came at 0.30
        (0.10, 0.16, 2),  # began before the window was sent
        (0.17, 0.20, 5),  # ran in between, but not the last to end
        (0.21, 0.27, 14),  # served it
        (0.28, 0.35, 1),  # ended after the PCM arrived
    ]
    lines = _lines("latency16", 0, 100.0, OFFSETS, 16)
    lines += [
        f"trace codec_decoder {json.dumps({'start': 100 + a, 'end': 100 + b, 'rows': n})}" for a, b, n in executions
    ]
    segments = first_chunk_segments(parse_traces(lines))["latency16"]
    assert segments["codec_queue"] == pytest.approx(0.06) and segments["codec_run"] == pytest.approx(0.06)
    assert segments["codec_return"] == pytest.approx(0.03) and segments["codec_rows"] == 14
    assert segments["codec_queue"] + segments["codec_run"] + segments["codec_return"] == pytest.approx(
        segments["first_codec"]
    )
    alone = first_chunk_segments(parse_traces(_lines("latency16", 0, 100.0, OFFSETS, 16)))["latency16"]
    assert "codec_run" not in alone and alone["first_codec"] == pytest.approx(0.15)
