import numpy as np

from voicereel.audio.prompt_window import choose_window
from voicereel.audio.quality import frame_levels


def test_long_recording_gets_a_window_cut_between_sentences(long_speech) -> None:
    x, text = long_speech
    window = choose_window(x, 44100, text, max_s=30.0)
    assert window.end - window.start <= 30 * 44100
    assert window.speech_s > 20
    assert window.text_alignment == "proportional"
    # the cuts sit in pauses, so the window's edges are quiet
    levels = frame_levels(x, 44100)
    assert levels.silent[window.start // levels.hop]
    assert levels.silent[min(window.end // levels.hop, levels.silent.size - 1)]
    # the transcript part is whole sentences, in order, from the transcript
    assert window.text.startswith("Sentence number") and window.text.endswith("today.")
    assert window.text in text
    count = window.text.count("Sentence number")
    sentence_s = x.size / 44100 / 12
    assert abs(count - (window.end - window.start) / 44100 / sentence_s) < 1.0


def test_short_recording_is_used_whole_without_edge_silence(speech) -> None:
    x = speech("A short reference.")
    padded = np.concatenate([np.zeros(22050, dtype=np.float32), x, np.zeros(22050, dtype=np.float32)])
    window = choose_window(padded, 44100, " A short reference. ")
    assert window.text == "A short reference."
    assert window.text_alignment == "whole"
    assert window.start >= 22050 - 441 and window.end <= padded.size - 22050 + 2 * 882


def test_clipped_span_is_avoided(long_speech) -> None:
    x, text = long_speech
    damaged = x.copy()
    damaged[: x.size // 2] = np.clip(damaged[: x.size // 2] * 8, -1, 1)  # first half clipped hard
    window = choose_window(damaged, 44100, text)
    assert window.start >= x.size // 2 - 44100 * 5
