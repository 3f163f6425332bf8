from __future__ import annotations

import json
from pathlib import Path

import pytest

from voicereel.client.errors import InvalidRequestError
from voicereel.client.screenplay import (
    bind_speakers,
    load_script,
    load_speaker_map,
    parse_screenplay,
    parse_speaker_assignment,
)
from voicereel.schemas import OutputFormat

ALICE = "spk_01jd00000000000000000000aa"
BOB = "spk_01jd00000000000000000000bb"

SCREENPLAY = """\
# Scene 1: a kitchen at night
ALICE: Did you hear that?
BOB: Hear what? It's three in the morning,
    go back to sleep.

Alice:   Something: in the pantry.
"""


def test_screenplay_lines_continuations_and_comments() -> None:
    lines = parse_screenplay(SCREENPLAY, source="s.txt")
    assert [(line.speaker, line.text) for line in lines] == [
        ("ALICE", "Did you hear that?"),
        ("BOB", "Hear what? It's three in the morning, go back to sleep."),
        ("Alice", "Something: in the pantry."),
    ]
    assert lines[1].where == "s.txt:3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  indented first line\n", "continuation line before"),
        ("ALICE: hi\nno colon here\n", "s.txt:2: expected 'NAME: text'"),
        ("ALICE:\n", "ALICE has no text"),
        ("# only a comment\n\n", "no lines"),
    ],
)
def test_screenplay_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse_screenplay(text, source="s.txt")


def test_bind_is_case_insensitive_and_builds_the_request(tmp_path: Path) -> None:
    path = tmp_path / "scene.txt"
    path.write_text(SCREENPLAY)
    bound = bind_speakers(load_script(path), {"alice": ALICE, "Bob": BOB})
    assert bound.names_to_look_up == set()
    request = bound.to_request({}, output_format="mp3", seed=None)
    assert [line.speaker_id for line in request.script] == [ALICE, BOB, ALICE]
    assert request.output_format is OutputFormat.mp3
    assert request.seed is None


def test_unknown_speakers_are_all_named_before_anything_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "scene.txt"
    path.write_text(SCREENPLAY + "CAROL: me too\nDAVE: and me\n")
    with pytest.raises(InvalidRequestError) as err:
        bind_speakers(load_script(path), {"ALICE": ALICE, "BOB": BOB})
    message = str(err.value)
    assert "CAROL (first at scene.txt:7)" in message and "DAVE (first at scene.txt:8)" in message
    assert "--speaker" in message


def test_map_values_that_are_names_are_left_for_lookup(tmp_path: Path) -> None:
    path = tmp_path / "scene.txt"
    path.write_text("ALICE: one\nBOB: two\n")
    bound = bind_speakers(load_script(path), {"ALICE": "Alice Voice", "BOB": BOB})
    assert bound.names_to_look_up == {"Alice Voice"}
    request = bound.to_request({"Alice Voice": ALICE})
    assert [line.speaker_id for line in request.script] == [ALICE, BOB]


def test_json_request_with_options_and_embedded_map(tmp_path: Path) -> None:
    doc = {
        "speakers": {"ALICE": ALICE},
        "output_format": "flac",
        "pause_ms": 500,
        "script": [
            {"speaker": "ALICE", "text": "Hi", "temperature": 0.5},
            {"speaker_id": BOB, "text": "Hello", "pause_after_ms": 100},
        ],
    }
    path = tmp_path / "script.json"
    path.write_text(json.dumps(doc))
    request = bind_speakers(load_script(path), {}).to_request({})
    assert request.output_format is OutputFormat.flac and request.pause_ms == 500
    assert request.script[0].temperature == 0.5 and request.script[1].pause_after_ms == 100
    # command-line options override the file's
    assert bind_speakers(load_script(path), {}).to_request({}, pause_ms=0).pause_ms == 0


def test_yaml_short_lines(tmp_path: Path) -> None:
    path = tmp_path / "script.yaml"
    path.write_text(
        "speakers:\n  ALICE: "
        + ALICE
        + "\nscript:\n  - ALICE: Hello there\n  - speaker_id: "
        + BOB
        + "\n    text: Hi\n"
    )
    request = bind_speakers(load_script(path), {}).to_request({})
    assert [(line.speaker_id, line.text) for line in request.script] == [(ALICE, "Hello there"), (BOB, "Hi")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", "{not json", "invalid JSON at line 1"),
        ("bad.yaml", "script: [unclosed", "invalid YAML"),
        ("empty.json", "[]", "non-empty list"),
        ("field.json", '{"scirpt": []}', "unknown field"),
        ("line.json", '[{"speaker": "A", "txt": "x"}]', "unknown line field"),
        ("both.json", f'[{{"speaker": "A", "speaker_id": "{ALICE}", "text": "x"}}]', "exactly one of"),
        ("bin.txt", b"\xff\xfe\x00", "not UTF-8"),
    ],
)
def test_bad_script_files(tmp_path: Path, name: str, content: str | bytes, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(InvalidRequestError, match=message):
        load_script(path)


def test_missing_script_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="does not exist"):
        load_script(tmp_path / "nope.txt")


def test_invalid_request_options_are_caught_locally(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text("ALICE: hi\n")
    bound = bind_speakers(load_script(path), {"ALICE": ALICE})
    with pytest.raises(InvalidRequestError, match="sample_rate"):
        bound.to_request({}, sample_rate=12345)
    with pytest.raises(InvalidRequestError, match="opus"):
        bound.to_request({}, output_format="ogg", sample_rate=44100)


def test_speaker_map_files(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text(f"# map\nALICE={ALICE}\nBOB = Bob Voice\n")
    (tmp_path / "m.toml").write_text(f'ALICE = "{ALICE}"\n')
    (tmp_path / "m.json").write_text(json.dumps({"ALICE": ALICE}))
    (tmp_path / "m.yml").write_text(f"ALICE: {ALICE}\n")
    assert load_speaker_map(tmp_path / "m.txt") == {"ALICE": ALICE, "BOB": "Bob Voice"}
    for name in ("m.toml", "m.json", "m.yml"):
        assert load_speaker_map(tmp_path / name) == {"ALICE": ALICE}
    (tmp_path / "bad.json").write_text('{"ALICE": 3}')
    with pytest.raises(InvalidRequestError, match="speaker map"):
        load_speaker_map(tmp_path / "bad.json")


@pytest.mark.parametrize("value", ["ALICE", "=spk_x", "ALICE=", ""])
def test_bad_speaker_assignment(value: str) -> None:
    with pytest.raises(InvalidRequestError, match="NAME=spk_"):
        parse_speaker_assignment(value)
