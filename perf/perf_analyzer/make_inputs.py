"""Write perf_analyzer `--input-data` files for the codec models (deterministic: seed 0).

    python perf/perf_analyzer/make_inputs.py --out perf/perf_analyzer [--encoder-seconds 1.0]

codec_encoder.json: one clip of `--encoder-seconds` of noise at 44.1 kHz (a 30 s reference is 10 MB of JSON,
so the committed file holds 1 s; regenerate longer ones into a scratch folder). codec_decoder.json: three
windows of the default shape (64 context + 64 chunk frames): a first chunk without context, a full window, and
a short last chunk, so a run mixes the three kinds a tts stream sends.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

WINDOW_FRAMES = 128  # shared knobs codec_context_frames (64) + codec_chunk_frames (64)


def encoder_data(seconds: float) -> dict:
    rng = np.random.default_rng(0)
    pcm = np.clip(rng.normal(0.0, 0.1, int(seconds * 44_100)), -1, 1).round(4)
    return {"data": [{"pcm": {"content": pcm.tolist(), "shape": [pcm.size]}}]}


def decoder_data() -> dict:
    rng = np.random.default_rng(0)
    entries = []
    for context, frames in ((0, 64), (64, 128), (64, 80)):
        codes = np.zeros((10, WINDOW_FRAMES), dtype=np.int64)
        codes[0, :frames] = rng.integers(0, 4096, frames)
        codes[1:, :frames] = rng.integers(0, 1024, (9, frames))
        entries.append(
            {
                "codes": {"content": codes.flatten().tolist(), "shape": [10, WINDOW_FRAMES]},
                "context_frames": {"content": [context], "shape": [1]},
                "num_frames": {"content": [frames], "shape": [1]},
            }
        )
    return {"data": entries}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--encoder-seconds", type=float, default=1.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "codec_encoder.json").write_text(json.dumps(encoder_data(args.encoder_seconds)))
    (args.out / "codec_decoder.json").write_text(json.dumps(decoder_data()))


if __name__ == "__main__":
    main()
