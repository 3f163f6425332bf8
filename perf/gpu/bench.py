"""The GPU benchmark of issue 8, in one run: our Triton stack, then upstream fish-speech on the same weights.

1. makes the benchmark checkpoint (S1-mini shapes, random weights, slow head masked to semantic ids);
2. builds the model repository for the GPU and starts tritonserver: cold start = launch -> every model ready;
3. drives `tts` with perf/gpu/bench_tts.py (single stream, first-chunk latency, throughput sweep) while sampling
   GPU memory with nvidia-smi;
4. stops Triton and runs perf/gpu/upstream_baseline.py (torch.compile reduce-overhead, batch 1).
Writes JSON figures and a markdown table (with the git SHA) to --out.

    python perf/gpu/bench.py --out $OUT            # on the H200 (perf/gpu/run_h200.sh sets the paths up)
    python perf/gpu/bench.py --out /tmp/b --cpu    # smoke run here with the tiny checkpoint
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from voicereel.engine.trace import first_chunk_segments, parse_traces  # noqa: E402
from voicereel.stack import Supervisor, TritonPorts, triton_service  # noqa: E402


def gpu_memory_mib() -> list[int]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(line) for line in out.split() if line.strip().isdigit()]


class MemorySampler:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            used = gpu_memory_mib()
            if used:
                self.peak = max(self.peak, used[0])

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


_LOADED = re.compile(r"^[IWE]\d{4} (\d\d):(\d\d):(\d\d\.\d+) .*successfully loaded '(\w+)'")
_STAMP = re.compile(r"^[IWE]\d{4} (\d\d):(\d\d):(\d\d\.\d+) ")


def model_load_times(logs: Path) -> dict[str, float]:
    """Seconds from Triton's first log line to each model's "successfully loaded" line (the current *.log files)."""

    def seconds(match: re.Match[str]) -> float:
        return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])

    times: dict[str, float] = {}
    for log in logs.glob("*.log"):
        if log.name.endswith(".first.log"):  # the first start's logs, renamed before the restart
            continue
        first: float | None = None
        for line in log.read_text(errors="replace").splitlines():
            stamp = _STAMP.match(line)
            if stamp is None:
                continue
            first = seconds(stamp) if first is None else first
            loaded = _LOADED.match(line)
            if loaded:
                times[loaded[4]] = round(seconds(loaded) - first, 1)
    return times


def dump_stub_stacks() -> int:
    """SIGUSR1 to every Triton python stub process: our models print each thread's Python stack to Triton's log
    (``triton_glue.dump_stacks_on_sigusr1``). Returns how many were signalled."""
    import os
    import signal

    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if argv0.endswith(b"triton_python_backend_stub"):
            try:
                os.kill(int(proc.name), signal.SIGUSR1)
                count += 1
            except OSError:
                pass
    return count


def git_sha() -> str:
    import os

    if os.environ.get("BENCH_GIT_SHA"):  # the device machine gets a copy of the tree without .git
        return os.environ["BENCH_GIT_SHA"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cpu", action="store_true", help="smoke run with the tiny checkpoint on the CPU")
    parser.add_argument("--checkpoint", type=Path, default=Path("/tmp/voicereel-bench-ckpt"))
    parser.add_argument("--frames", type=int, default=646)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64, 128])
    parser.add_argument("--slots", type=int, default=128)
    parser.add_argument(
        "--latency-levels", type=int, nargs="+", help="first-chunk latency concurrencies (1 16; CPU 1 2)"
    )
    parser.add_argument("--set", dest="settings", action="append", default=[], help="extra modelrepo --set")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="SCOPE.KNOB=VALUE[,SCOPE.KNOB=VALUE...]",
        help="after the run, restart with these settings added (compile caches kept) and run the client again; "
        "each --variant is one such run, in order",
    )
    parser.add_argument(
        "--variant-concurrency", type=int, nargs="+", default=[16], help="throughput levels of the variant's client run"
    )
    parser.add_argument("--upstream", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="--no-restart: skip the second start with the compile caches kept",
    )
    parser.add_argument(
        "--keep-compile-cache",
        action="store_true",
        help="start with the compile caches an earlier run left (a quick A/B of settings; cold start not measured)",
    )
    parser.add_argument(
        "--ours",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="--no-ours: only the upstream baseline (e.g. a second call on the same warm machine)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/voicereel-bench")
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"git_sha": git_sha(), "frames": args.frames}

    from voicereel.engine.checkpoints import make_benchmark_checkpoint, make_tiny_checkpoint

    t0 = time.perf_counter()
    if args.cpu:
        make_tiny_checkpoint(args.checkpoint, seed=0)
    elif not (args.checkpoint / "model.pth").exists():  # the same seed always gives the same weights
        make_benchmark_checkpoint(args.checkpoint, seed=0, device="cuda")
    figures["checkpoint_s"] = time.perf_counter() - t0
    try:
        if args.ours:
            run_ours(args, work, figures)
        if args.upstream:
            run_upstream(args, figures)
    finally:  # a failure part-way keeps the figures measured before it
        (args.out / "figures.json").write_text(json.dumps(figures, indent=2))
        print(json.dumps(figures, indent=2))


def build_repository(args: argparse.Namespace, settings: list[str], dest: Path) -> None:
    build = [
        sys.executable,
        "-m",
        "voicereel.modelrepo",
        "build",
        "--checkpoint",
        str(args.checkpoint),
        "--out",
        str(dest),
    ]
    for item in settings:
        build += ["--set", item]
    subprocess.run(build, check=True, cwd=REPO)


def run_client(args: argparse.Namespace, ports: TritonPorts, concurrency: list[int], out: Path) -> dict[str, Any]:
    """bench_tts against the running server: its figures, and the first-chunk segments of its requests, read from
    the lines Triton's log gained meanwhile (voicereel.engine.trace; medians per level)."""
    log = args.out / "logs" / "triton.log"
    seen = log.stat().st_size if log.exists() else 0
    cmd = [
        sys.executable,
        str(REPO / "perf/gpu/bench_tts.py"),
        "--url",
        f"127.0.0.1:{ports.grpc}",
        "--frames",
        str(args.frames),
        "--out",
        str(out),
        "--concurrency",
        *map(str, concurrency),
    ]
    levels = args.latency_levels or ([1, 2] if args.cpu else [1, 16])
    cmd += ["--latency-levels", *map(str, levels)]
    client = subprocess.run(cmd, cwd=REPO)
    if client.returncode != 0:  # a failed or hung request: record where every model's threads are first
        dumped = dump_stub_stacks()
        print(f"bench_tts failed; asked {dumped} python stubs for their stacks (Triton's log)", flush=True)
        time.sleep(3)
        raise subprocess.CalledProcessError(client.returncode, cmd)
    time.sleep(1)  # the stubs' last trace lines reach the log asynchronously
    with log.open("rb") as handle:
        handle.seek(seen)
        lines = handle.read().decode(errors="replace").splitlines()
    return {"tts": json.loads(out.read_text()), "first_chunk_segments_s": first_chunk_segments(parse_traces(lines))}


def run_ours(args: argparse.Namespace, work: Path, figures: dict[str, Any]) -> None:
    # The compile caches in a directory of their own (knob compile_cache_dir), empty at the first start: that start
    # compiles everything (a fresh machine); the restart below finds it all there (a kept or shipped cache).
    compile_cache = work / "compile-cache"
    if not args.keep_compile_cache:
        shutil.rmtree(compile_cache, ignore_errors=True)
    settings = [
        f"text2semantic.max_slots={args.slots}",
        "text2semantic.slot_capacity=1024",
        f"text2semantic.max_frames={max(args.frames, 64)}",
        f"shared.compile_cache_dir={compile_cache}",
        "shared.trace_requests=true",  # one line per request and model: the first-chunk segments
        *args.settings,
    ]
    build_repository(args, settings, work / "model_repository")
    figures["repository_settings"] = settings
    idle = gpu_memory_mib()
    concurrency = [c for c in args.concurrency if c <= args.slots] if not args.cpu else [1, 2]

    ports = TritonPorts.free()
    with Supervisor(args.out / "logs") as supervisor:

        def start(repository: Path) -> float:
            started = time.perf_counter()
            supervisor.start(triton_service(repository, ports, work / "triton", args.out / "logs", timeout_s=540))
            return time.perf_counter() - started

        figures["cold_start_s"] = start(work / "model_repository")
        figures["compile_cache_kept"] = args.keep_compile_cache  # then cold_start_s is a start with warm caches
        figures["cold_start_models_s"] = model_load_times(args.out / "logs")
        loaded = gpu_memory_mib()
        print(f"triton ready in {figures['cold_start_s']:.1f}s", flush=True)
        with MemorySampler() as sampler:
            figures.update(run_client(args, ports, concurrency, args.out / "tts.json"))
        figures["gpu_memory_mib"] = {"idle": idle, "models_loaded": loaded, "peak": sampler.peak}
        if args.restart:
            # A second start with warm caches (torch/inductor caches on disk): what a restart costs.
            for log in (args.out / "logs").glob("*.log"):
                log.rename(log.with_suffix(".first.log"))
            supervisor.stop_all()
            figures["warm_restart_s"] = start(work / "model_repository")
            figures["warm_restart_models_s"] = model_load_times(args.out / "logs")
            cached = sum(f.stat().st_size for f in compile_cache.rglob("*") if f.is_file())
            figures["compile_cache_mib"] = round(cached / 2**20, 1)
        # Each --variant: the same server with its settings added, started on the compile caches kept from above (an
        # A/B of settings within one device call; its start is not a cold start).
        variants: list[dict[str, Any]] = []
        levels = [c for c in args.variant_concurrency if c <= args.slots] if not args.cpu else [2]
        for number, variant_arg in enumerate(args.variant):
            supervisor.stop_all()
            extra = [item for item in variant_arg.split(",") if item]
            repository = work / f"model_repository_variant{number}"
            build_repository(args, [*settings, *extra], repository)
            variant: dict[str, Any] = {"settings": extra, "start_s": start(repository)}
            variant.update(run_client(args, ports, levels, args.out / f"tts-variant{number}.json"))
            variants.append(variant)
            figures["variants"] = variants


def run_upstream(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    upstream_out = args.out / "upstream.json"
    cmd = [
        sys.executable,
        str(REPO / "perf/gpu/upstream_baseline.py"),
        "--checkpoint",
        str(args.checkpoint),
        "--frames",
        str(args.frames),
        "--out",
        str(upstream_out),
    ]
    if args.cpu:
        cmd += ["--device", "cpu", "--no-compile"]
    subprocess.run(cmd, check=True, cwd=REPO)
    figures["upstream"] = json.loads(upstream_out.read_text())


if __name__ == "__main__":
    main()
