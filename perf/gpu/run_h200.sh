#!/usr/bin/env bash
# The device command of issue 8 (run from the repo root on the H200 machine, carrying .dev from
# perf/device/bundle.sh):   bash perf/gpu/run_h200.sh [bench.py args...]
set -euo pipefail
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .dev/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
# Triton's python stub ignores PYTHONPATH but honours the interpreter's site-packages: point a .pth file there.
python3 -c 'import site; print(site.getsitepackages()[0])' | xargs -I{} sh -c "printf '/tmp/site\n%s\n' \"$PWD\" > {}/voicereel-device.pth"
[[ "${1:-}" == "--engine" || "${1:-}" == "--profile" || "${1:-}" == "--prefill" || "${1:-}" == "--codec" || "${1:-}" == "--tests" || "${1:-}" == "--one-row" || "${1:-}" == "--warm-up" ]] || { mkdir -p /tmp/tdist && tar -C /tmp/tdist -xzf .dev/tritonserver.tgz; }
export VOICEREEL_TRITON_DIST=/tmp/tdist
# tritonclient wants libb64 for perf_analyzer only; the python client needs nothing more.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)'
if [[ "${1:-}" == "--engine" ]]; then  # the engine alone: bash perf/gpu/run_h200.sh --engine [bench_engine.py args]
  shift
  python3 perf/gpu/bench_engine.py --out "${OUT:-/tmp/out}" "$@"
elif [[ "${1:-}" == "--profile" ]]; then  # where a decode step's time goes: perf/gpu/profile_step.py
  shift
  python3 perf/gpu/profile_step.py --out "${OUT:-/tmp/out}" "$@"
elif [[ "${1:-}" == "--prefill" ]]; then  # prefill passes, first use vs repeats, per attention backend
  shift
  python3 perf/gpu/profile_prefill.py --out "${OUT:-/tmp/out}" "$@"
elif [[ "${1:-}" == "--codec" ]]; then  # the codec alone: perf/codec/bench_codec.py (benchmark checkpoint made if absent)
  shift
  [[ -f /tmp/voicereel-bench-ckpt/model.pth ]] || python3 -c 'from voicereel.engine.checkpoints import make_benchmark_checkpoint as m; m("/tmp/voicereel-bench-ckpt", seed=0, device="cuda")'
  python3 perf/codec/bench_codec.py --checkpoint /tmp/voicereel-bench-ckpt --out "${OUT:-/tmp/out}/codec.json" "$@"
elif [[ "${1:-}" == "--one-row" ]]; then  # single stream with and without the one-row pieces: perf/gpu/bench_one_row.py
  shift
  python3 perf/gpu/bench_one_row.py --out "${OUT:-/tmp/out}" "$@"
elif [[ "${1:-}" == "--warm-up" ]]; then  # where text2semantic's start-up goes: perf/gpu/profile_warm_up.py
  shift
  python3 perf/gpu/profile_warm_up.py --out "${OUT:-/tmp/out}" "$@"
elif [[ "${1:-}" == "--tests" ]]; then  # the suite's GPU-only tests (skipped in CI): bash perf/gpu/run_h200.sh --tests
  shift
  # -W default: the suite turns every warning into an error (pyproject), and on the GPU image's newer packages an
  # import-time warning of a fish-speech dependency then fails the import (hydra: "DAC could not be located").
  python3 -m pytest -q -rs -p no:cacheprovider -W default "${@:-tests/engine/test_graphs.py}"
else
  python3 perf/gpu/bench.py --out "${OUT:-/tmp/out}" "$@"
fi
