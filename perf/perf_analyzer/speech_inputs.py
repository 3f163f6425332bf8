"""Write the perf_analyzer `--input-data` file shared by text2semantic and tts (deterministic).

    python perf/perf_analyzer/speech_inputs.py --out perf/perf_analyzer [--frames 215]

Four requests cycled by perf_analyzer: English, Korean and Japanese lines and one with a voice prompt
(reference text + 5 s of reference codes). Each asks for `--frames` frames (`max_new_frames`; 215 frames =
10 s of audio) with a fixed seed, so with a benchmark checkpoint (no end token) every request does the same
work; with a trained checkpoint requests may end earlier on the end token. Texts go as `text_utf8` (UINT8).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

LINES = [
    "The morning train left the station just after six, carrying sleepy commuters into the city.",
    "오늘 아침 기차는 여섯 시가 조금 넘어 역을 떠났고, 졸린 통근자들을 도시로 실어 날랐다.",
    "朝の電車は六時過ぎに駅を出発し、眠そうな通勤客を街へ運んだ。",
    "She opened the old wooden box and found a bundle of letters tied with a faded blue ribbon.",
]
REFERENCE_FRAMES = 108  # 5 s at 21.53 frames/s


def _scalar(value: float | int) -> dict:
    return {"content": [value], "shape": [1]}


def _utf8(text: str) -> dict:
    """Text as UTF-8 bytes (UINT8): readable by the server under numpy 2, unlike BYTES inputs."""
    raw = list(text.encode())
    return {"content": raw, "shape": [len(raw)]}


def speech_data(frames: int) -> dict:
    rng = np.random.default_rng(0)
    entries = []
    for index, line in enumerate(LINES):
        entry = {
            "text_utf8": _utf8(line),
            "max_new_frames": _scalar(frames),
            "seed": _scalar(index),
            "temperature": _scalar(0.8),
            "top_p": _scalar(0.8),
            "repetition_penalty": _scalar(1.1),
        }
        if index == len(LINES) - 1:
            codes = np.concatenate(
                [rng.integers(0, 4096, (1, REFERENCE_FRAMES)), rng.integers(0, 1024, (9, REFERENCE_FRAMES))]
            )
            entry["reference_text_utf8"] = _utf8("A short reference sentence for the voice.")
            entry["reference_codes"] = {"content": codes.flatten().tolist(), "shape": [10, REFERENCE_FRAMES]}
        entries.append(entry)
    return {"data": entries}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--frames", type=int, default=215)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speech.json").write_text(json.dumps(speech_data(args.frames)))


if __name__ == "__main__":
    main()
