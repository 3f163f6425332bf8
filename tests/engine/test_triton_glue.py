"""Helpers shared by the python-backend models: device and dtype knobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from voicereel.engine.triton_glue import dtype_from_name, instance_device, use_compile_cache


def test_dtype_auto_is_bfloat16_on_a_gpu_and_float32_elsewhere() -> None:
    assert dtype_from_name("auto", torch.device("cuda", 0)) == torch.bfloat16
    assert dtype_from_name("auto", torch.device("cpu")) == torch.float32
    assert dtype_from_name("auto") == torch.float32
    assert dtype_from_name("float16", torch.device("cpu")) == torch.float16
    with pytest.raises(ValueError, match="dtype must be one of"):
        dtype_from_name("int8")


def test_instance_device_follows_the_instance_kind() -> None:
    assert instance_device({"model_instance_kind": "GPU", "model_instance_device_id": "1"}) == torch.device("cuda", 1)
    assert instance_device({"model_instance_kind": "CPU", "model_instance_device_id": "0"}) == torch.device("cpu")


_COMPILE_ONCE = """
import sys
import torch
from torch._dynamo.utils import counters
from voicereel.engine.triton_glue import use_compile_cache

use_compile_cache(sys.argv[1])
double_sine = torch.compile(lambda x: torch.sin(x) * 2 + 1, backend="inductor")
x = torch.arange(8, dtype=torch.float32)
torch.testing.assert_close(double_sine(x), torch.sin(x) * 2 + 1)
print(counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"])
"""


def test_compile_cache_dir_serves_a_second_process_without_compiling(tmp_path: Path) -> None:
    """Knob compile_cache_dir: a restart (a new process, as a new Triton stub) with the same directory finds the graph
    compiled by the first one; another directory compiles afresh."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCHINDUCTOR", "TRITON_CACHE"))}

    def hits_and_misses(directory: Path) -> list[int]:
        out = subprocess.run(
            [sys.executable, "-c", _COMPILE_ONCE, str(directory)], env=env, capture_output=True, text=True, timeout=600
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return [int(n) for n in out.stdout.split()[-2:]]

    cache = tmp_path / "compile-cache"
    assert hits_and_misses(cache) == [0, 1]
    assert any(cache.rglob("*")), "nothing written to the cache directory"
    assert hits_and_misses(cache) == [1, 0]
    assert hits_and_misses(tmp_path / "elsewhere") == [0, 1]


def test_an_empty_compile_cache_dir_leaves_torch_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    use_compile_cache("")
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ


def test_sigusr1_dumps_every_thread_stack() -> None:
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import threading, time\n"
        "from voicereel.engine.triton_glue import dump_stacks_on_sigusr1\n"
        "dump_stacks_on_sigusr1()\n"
        "def parked_worker():\n    time.sleep(60)\n"
        "threading.Thread(target=parked_worker, daemon=True).start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
    finally:
        proc.kill()
    _, err = proc.communicate(timeout=30)
    assert "parked_worker" in err and "Current thread" in err  # both threads' stacks, the process lived on
