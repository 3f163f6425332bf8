import json

from voicereel.captions import from_offsets, render, render_json, render_srt, render_vtt
from voicereel.schemas import CaptionFormat

LINES = [
    ("Ada", "spk_a", "Hello there."),
    ("Bob <the builder>", "spk_b", "A & B --> C\n\n  second line"),
    ("Ada", "spk_a", "Bye."),
]
OFFSETS = [(0, 48_000), (62_400, 123_456), (7_200_000, 7_200_000)]


def test_times_are_sample_offsets_over_the_rate() -> None:
    captions = from_offsets(OFFSETS, 48_000, LINES)
    assert [(c.start, c.end) for c in captions] == [(0.0, 1.0), (1.3, 2.572), (150.0, 150.0)]
    assert captions[1].speaker_id == "spk_b"


def test_vtt_uses_voice_tags_and_escapes() -> None:
    text = render_vtt(from_offsets(OFFSETS, 48_000, LINES))
    assert text.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\n<v Ada>Hello there.</v>\n")
    assert "00:00:01.300 --> 00:00:02.572\n<v Bob &lt;the builder&gt;>A &amp; B -&gt; C\nsecond line</v>" in text
    assert "00:02:30.000 --> 00:02:30.001" in text  # an empty line still gets a valid cue
    assert "\n\n\n" not in text


def test_srt_numbering_commas_and_speaker_prefix() -> None:
    text = render_srt(from_offsets(OFFSETS, 48_000, LINES))
    blocks = text.strip().split("\n\n")
    assert blocks[0] == "1\n00:00:00,000 --> 00:00:01,000\nAda: Hello there."
    assert blocks[1].startswith("2\n00:00:01,300 --> 00:00:02,572\nBob <the builder>: A & B -> C\nsecond line")
    assert blocks[2].startswith("3\n")


def test_json_round_trips_with_microseconds() -> None:
    captions = from_offsets([(1, 44_101)], 44_100, [("Ada", "spk_a", "x")])
    data = json.loads(render_json(captions))
    assert data["captions"][0] == {
        "start": 2.3e-05,
        "end": 1.000023,
        "speaker": "Ada",
        "speaker_id": "spk_a",
        "text": "x",
    }


def test_render_picks_type_and_extension() -> None:
    captions = from_offsets(OFFSETS, 48_000, LINES)
    assert render(captions, CaptionFormat.vtt).content_type.startswith("text/vtt")
    assert render(captions, CaptionFormat.srt).extension == "srt"
    rendered = render(captions, CaptionFormat.json)
    assert rendered.extension == "json" and json.loads(rendered.data)["captions"][2]["text"] == "Bye."
