"""Where text2semantic's start-up goes: its load (``t2s_serving.load_engine``, serving defaults), in-process, GPU.

Each variant runs in a process of its own on the benchmark checkpoint (S1-mini shapes, random weights, bf16), with
the inductor cache directory it names: ``cold`` an empty one, ``warm`` the one ``cold`` filled (a restart with the
caches kept), ``threads1`` an empty one and inductor's compile workers off (TORCHINDUCTOR_COMPILE_THREADS=1: how
much parallel kernel compilation saves), ``float-symbols`` an empty one and floats traced as symbols (torch's
default; the pieces specialise them since the fourteenth session). Each reports load, compile warm-up and capture
seconds, torch's compile-phase times (``torch._dynamo.utils.compile_times``), dynamo's graph counters, graphs per
piece and each graph's compile seconds (``per_graph``), and the functions cProfile saw take the most cumulative time
(only in ``--cprofile`` variants: profiling slows Python-heavy tracing).

    python perf/gpu/profile_warm_up.py --out $OUT [--variants cold warm threads1 float-symbols] [--cprofile warm]
    # bash perf/gpu/run_h200.sh --warm-up ...
Writes warm_up.json (with the git SHA from BENCH_GIT_SHA) to --out.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CHECKPOINT = Path("/tmp/voicereel-bench-ckpt")
ENTRY = re.compile(r'\{ key: "(\w+)", value: \{ string_value: "([^"]*)" \} \}')


def serving_parameters(checkpoint: Path, dest: Path) -> dict[str, str]:
    """text2semantic's parameters as the model repository renders them: every knob at its default but the slots and
    frame cap, set as perf/gpu/bench.py sets them (the graphs captured at load depend on them)."""
    from voicereel.modelrepo import build_repository

    knobs = {"text2semantic": {"max_slots": 128, "slot_capacity": 1024, "max_frames": 646}}
    repository = build_repository(dest, checkpoint, knobs, models=["text2semantic"])
    return dict(ENTRY.findall((repository / "text2semantic" / "config.pbtxt").read_text()))


def per_graph() -> list[dict[str, Any]]:
    """Each graph dynamo compiled in this process, in order: its piece, compile id (frame/variant), seconds in all,
    in the backend (AOTAutograd and inductor) and in inductor, op and guard counts, why its trace restarted, which
    guard failed to make it (the sixteenth session saw ``fast_position`` traced twice a phase on the GPU, not why).
    Which graphs the compile warm-up pays for: in the fifteenth session 10 graphs and 6 took the same time."""
    from torch._dynamo.utils import get_compilation_metrics

    def seconds(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return [
        {
            "piece": metrics.co_name,
            "compile_id": str(metrics.compile_id),
            "total_s": seconds(metrics.entire_frame_compile_time_s),
            "backend_s": seconds(metrics.backend_compile_time_s),
            "inductor_s": seconds(metrics.inductor_compile_time_s),
            "ops": metrics.graph_op_count,
            "guards": metrics.guard_count,
            "restarts": sorted(metrics.restart_reasons or []),
            "recompile_reason": metrics.recompile_reason,  # the failed guard, for each graph after a piece's first
        }
        for metrics in get_compilation_metrics()
    ]


def one_variant(name: str, profile: bool) -> dict[str, Any]:
    import torch
    import torch._dynamo.utils
    import torch._inductor.config
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    from voicereel.engine import batched, t2s_serving
    from voicereel.engine.sampling import sample_tensors

    params = serving_parameters(CHECKPOINT, Path(tempfile.mkdtemp()) / "repo")
    config = t2s_serving.ServingConfig.from_parameters(params, on_gpu=True)
    phases: dict[str, float] = {}
    warm_up = t2s_serving.warm_up

    def timed_warm_up(engine: Any) -> bool:
        started = time.perf_counter()
        try:
            return warm_up(engine)
        finally:
            phases["warm_up_s"] = time.perf_counter() - started

    t2s_serving.warm_up = timed_warm_up  # type: ignore[assignment]
    if name == "float-symbols":  # floats traced as symbols, as before the fourteenth session (torch's default)
        configure = batched._configure_dynamo

        def float_symbols() -> None:
            configure()
            torch._dynamo.config.specialize_float = False

        batched._configure_dynamo = float_symbols
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    engine = t2s_serving.load_engine(config, torch.device("cuda"))
    torch.cuda.synchronize()
    if profiler is not None:
        profiler.disable()
    total = time.perf_counter() - started
    result: dict[str, Any] = {
        "variant": name,
        "load_engine_s": round(total, 2),
        "warm_up_s": round(phases.get("warm_up_s", 0.0), 2),
        "compile_threads": torch._inductor.config.compile_threads,
        "python": sys.executable,
        "graphs_per_piece": {
            piece.__name__: len(_debug_get_cache_entry_list(piece.__code__))
            for piece in (batched.decode_pre, batched.decode_post, batched.fast_position, sample_tensors)
        },
        "graphs": len(engine.runner.graphs),
        "first_graphs": len(engine.runner.first_graphs),
        "compile_times": torch._dynamo.utils.compile_times(repr="str", aggregate=True),
        "dynamo_stats": {str(k): v for k, v in torch._dynamo.utils.counters["stats"].items()},
        "recompiles": {str(k)[:300]: v for k, v in torch._dynamo.utils.counters["recompiles"].items()},
        "per_graph": per_graph(),
    }
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(60)
        result["cprofile_top"] = text.getvalue().splitlines()[:90]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--variants", nargs="+", default=["cold", "warm", "threads1"])
    parser.add_argument("--cprofile", nargs="*", default=[], help="variants to run under cProfile")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # run one here (the parent starts a process per variant)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.variant:
        run = one_variant(args.variant, args.variant in args.cprofile)
        (args.out / f"warm_up-{args.variant}.json").write_text(json.dumps(run, indent=1))
        return
    if not (CHECKPOINT / "model.pth").is_file():
        from voicereel.engine.checkpoints import make_benchmark_checkpoint

        make_benchmark_checkpoint(CHECKPOINT, seed=0, device="cuda")
    import torch

    result: dict[str, Any] = {
        "git_sha": os.environ.get("BENCH_GIT_SHA", "unknown"),
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "command": " ".join(sys.argv),
        "runs": [],
    }
    cache = tempfile.mkdtemp(prefix="inductor-")
    for name in args.variants:
        # cold fills the cache warm reuses; every other variant starts from an empty one
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache if name in ("cold", "warm") else tempfile.mkdtemp()}
        if name == "threads1":
            env["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
        command = [sys.executable, __file__, "--variant", name, "--out", str(args.out), "--cprofile", *args.cprofile]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, check=False)
        path = args.out / f"warm_up-{name}.json"
        run = json.loads(path.read_text()) if path.is_file() else {"variant": name, "rc": done.returncode}
        run["process_s"] = round(time.perf_counter() - started, 1)
        result["runs"].append(run)
        print(json.dumps({k: v for k, v in run.items() if k not in ("cprofile_top", "compile_times")}), flush=True)
        print(run.get("compile_times", ""), flush=True)
    (args.out / "warm_up.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
