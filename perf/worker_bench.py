"""Worker CPU time per synthesis job, excluding Triton: resample, stitch, master (loudness + true-peak limiter),
encode (with the lossy codecs' decode-and-check), captions, and the upload of audio and captions.

Input: a 10-line, ~60-second script whose line PCM is what Triton would return (44.1 kHz float32). The lines are
espeak-ng speech (real speech has the peaks that make the limiter work; noise would flatter the numbers).
Each output format is rendered `--repeat` times on one core (BLAS/OpenMP threads pinned to 1, and the process
pinned to one CPU where the OS allows); the median CPU time is reported against the audio duration. Target: at
most 5 % of the audio duration.

    python perf/worker_bench.py [--repeat 5] [--storage local|s3 --s3-endpoint URL]

Writes perf/results/worker_bench-<git sha>[-s3].json and prints a table. With --storage s3, credentials come from
the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), as for the worker.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicereel.audio import CODEC_RATE  # noqa: E402
from voicereel.audio.encode import CODECS  # noqa: E402
from voicereel.audio.pcm import decode_mono, resample  # noqa: E402
from voicereel.schemas import SynthesisRequest  # noqa: E402
from voicereel.settings import Settings  # noqa: E402
from voicereel.storage import make_storage  # noqa: E402
from worker.synthesize import render_outputs  # noqa: E402

FORMATS = [("wav", 44100), ("flac", 44100), ("mp3", 44100), ("ogg", 48000), ("mp3", 24000), ("ogg", 24000)]
LINE_TEXTS = [
    "The morning train left the station just after six, carrying sleepy commuters into the city center.",
    "She opened the old wooden box and found a bundle of letters tied together with a faded blue ribbon.",
    "Rain tapped against the window while the kettle began to whistle softly in the quiet kitchen.",
    "Every map tells a story, but only a few of them lead to somewhere that is truly worth going.",
    "The orchestra tuned their instruments as the last of the guests hurried to find their seats.",
    "He counted the steps up to the lighthouse and lost track somewhere after two hundred and ten.",
    "A small boat drifted past the harbour wall, its single sail catching the last light of the day.",
    "Nobody remembered who had planted the apple tree, but everyone agreed it gave the best fruit.",
    "The library closed at nine, so they gathered their notes and walked out into the cold evening.",
    "When the snow finally stopped, the whole valley was silent, white and perfectly still again.",
]
VOICES = ["en-us", "en-gb", "en-us"]


def git_sha() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def speak(text: str, voice: str, pitch: int) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "150", "--stdout", text],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    decoded = decode_mono(wav, max_seconds=120)
    return resample(decoded.pcm, decoded.sample_rate, CODEC_RATE)


def script_lines(target_s: float) -> list[np.ndarray]:
    """Ten lines of speech, each trimmed or padded (by repeating) so the script lasts about `target_s`."""
    lines = [speak(t, VOICES[i % 3], 35 + 25 * (i % 3)) for i, t in enumerate(LINE_TEXTS)]
    per_line = int((target_s - 9 * 0.3) / 10 * CODEC_RATE)
    fitted = []
    for pcm in lines:
        while pcm.size < per_line:
            pcm = np.concatenate([pcm, pcm])
        fitted.append(pcm[:per_line].astype(np.float32))
    return fitted


def pin_one_cpu() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to cpu {cpu}"
    return "not pinned"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0, help="script duration")
    parser.add_argument("--storage", choices=["local", "s3"], default="local")
    parser.add_argument("--s3-endpoint", default=None, help="S3 endpoint for --storage s3 (MinIO, moto)")
    parser.add_argument("--out", type=Path, default=REPO / "perf" / "results")
    args = parser.parse_args()

    pinning = pin_one_cpu()
    lines = script_lines(args.seconds)
    names = [(f"Voice {i % 3}", f"spk_{i % 3}", text) for i, text in enumerate(LINE_TEXTS)]
    tmp = Path(tempfile.mkdtemp(prefix="worker-bench-"))
    settings = Settings(
        _env_file=None,
        profile="test",
        data_dir=tmp,
        storage_dir=tmp / "storage",
        storage_backend=args.storage,
        s3_endpoint_url=args.s3_endpoint,
        s3_bucket="worker-bench",
    )
    storage = make_storage(settings)
    if args.storage == "s3":
        from voicereel.storage.lifecycle import ensure_bucket
        from voicereel.storage.s3 import make_client

        ensure_bucket(settings, make_client(settings))

    results = []
    for fmt, rate in FORMATS:
        request = SynthesisRequest.model_validate(
            {
                "script": [{"speaker_id": f"spk_{i % 3}", "text": t} for i, t in enumerate(LINE_TEXTS)],
                "output_format": fmt,
                "sample_rate": rate,
                "caption_format": "vtt",
            }
        )
        cpu, wall, upload_cpu = [], [], []
        for run in range(args.repeat):
            c0, w0 = time.process_time(), time.perf_counter()
            out = render_outputs(request, lines, names)
            c1 = time.process_time()
            storage.put_bytes(
                f"jobs/prj_bench/job_{run}/audio.{fmt}", out.audio, CODECS[request.output_format].content_type
            )
            storage.put_bytes(f"jobs/prj_bench/job_{run}/captions.vtt", out.captions, out.caption_content_type)
            c2, w2 = time.process_time(), time.perf_counter()
            cpu.append(c2 - c0)
            wall.append(w2 - w0)
            upload_cpu.append(c2 - c1)
        duration = out.duration_s
        row = {
            "format": fmt,
            "sample_rate": rate,
            "audio_s": round(duration, 3),
            "cpu_s_median": round(statistics.median(cpu), 4),
            "cpu_s_min": round(min(cpu), 4),
            "wall_s_median": round(statistics.median(wall), 4),
            "upload_cpu_s_median": round(statistics.median(upload_cpu), 4),
            "cpu_percent_of_audio": round(100 * statistics.median(cpu) / duration, 3),
            "reencoded": out.report["reencoded"],
            "loudness_lufs": out.report["loudness_lufs"],
            "true_peak_dbtp": out.report["true_peak_dbtp"],
            "bytes": len(out.audio),
        }
        results.append(row)
        print(
            f"{fmt:>4} {rate:>5} Hz  audio {duration:6.2f} s  cpu {row['cpu_s_median']:6.3f} s "
            f"({row['cpu_percent_of_audio']:5.2f} % of audio)  wall {row['wall_s_median']:6.3f} s  "
            f"upload {row['upload_cpu_s_median']:.3f} s  {row['loudness_lufs']} LUFS  reencoded={row['reencoded']}",
            flush=True,
        )

    sha = git_sha()
    report = {
        "benchmark": "worker_bench",
        "git_sha": sha,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus_visible": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "cpu_pinning": pinning,
        },
        "storage": args.storage,
        "repeat": args.repeat,
        "target_percent_of_audio": 5.0,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"worker_bench-{sha}{'' if args.storage == 'local' else '-' + args.storage}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
