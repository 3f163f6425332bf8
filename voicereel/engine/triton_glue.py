"""Helpers for python-backend models: parameters, device, tensors in and out through DLPack, error responses.

`pb_utils` (triton_python_backend_utils) exists only inside Triton's stub, so it is passed in rather than
imported. Outputs always leave through `pb_utils.Tensor.from_dlpack`: Triton 2.51's python backend cannot return
numpy outputs when numpy 2 is installed (the GPU image has numpy 2).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.dlpack import from_dlpack, to_dlpack

from voicereel.engine.codec_serving import Failure


def model_parameters(args: Mapping[str, str]) -> dict[str, str]:
    """The `parameters` entries of the model's config (all strings, as Triton stores them)."""
    config = json.loads(args["model_config"])
    return {key: entry["string_value"] for key, entry in config.get("parameters", {}).items()}


def use_compile_cache(directory: str) -> None:
    """Keep torch.compile's caches (inductor's compiled graphs and Triton kernels, AOT autograd) in ``directory``
    (knob ``compile_cache_dir``; empty: torch's per-machine default under /tmp). Call before anything compiles: inductor
    reads ``TORCHINDUCTOR_CACHE_DIR`` when it first looks for a cache entry, and puts Triton's kernel cache under it.
    A later start with the same directory finds its graphs and kernels there instead of compiling them again."""
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(directory).resolve())


def dump_stacks_on_sigusr1() -> None:
    """``kill -USR1 <stub pid>`` prints every thread's Python stack to the stub's stderr (Triton's log): how to see
    where a hung model waits. The stubs have no other handler for it."""
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1, all_threads=True)


def instance_device(args: Mapping[str, str]) -> torch.device:
    """CPU for KIND_CPU instances, the instance's GPU for KIND_GPU."""
    if args.get("model_instance_kind") == "GPU":
        return torch.device("cuda", int(args["model_instance_device_id"]))
    return torch.device("cpu")


def dtype_from_name(name: str, device: torch.device | None = None) -> torch.dtype:
    """A dtype knob's value; ``auto`` is bfloat16 on a CUDA device, float32 elsewhere."""
    if name == "auto":
        return torch.bfloat16 if device is not None and device.type == "cuda" else torch.float32
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"dtype must be one of {sorted(dtypes)}, got {name!r}")
    return dtypes[name]


def request_inputs(pb_utils: Any, request: Any, names: Sequence[str]) -> dict[str, torch.Tensor | None]:
    """The named inputs of one request as CPU torch tensors (None where absent)."""
    inputs: dict[str, torch.Tensor | None] = {}
    for name in names:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        # copy: the request's memory belongs to Triton and is released after execute() returns
        inputs[name] = None if tensor is None else from_dlpack(tensor.to_dlpack()).to("cpu", copy=True)
    return inputs


def error_response(pb_utils: Any, failure: Failure) -> Any:
    codes = {"INVALID_INPUT": "INVALID_ARG", "INTERNAL": "INTERNAL"}
    code = getattr(pb_utils.TritonError, codes.get(failure.code, "INTERNAL"), None)
    error = pb_utils.TritonError(str(failure)) if code is None else pb_utils.TritonError(str(failure), code)
    return pb_utils.InferenceResponse(output_tensors=[], error=error)


def tensor_response(pb_utils: Any, name: str, tensor: torch.Tensor) -> Any:
    output = pb_utils.Tensor.from_dlpack(name, to_dlpack(tensor.contiguous()))
    return pb_utils.InferenceResponse(output_tensors=[output])


def responses(pb_utils: Any, name: str, results: Sequence[torch.Tensor | Failure]) -> list[Any]:
    return [
        error_response(pb_utils, r) if isinstance(r, Failure) else tensor_response(pb_utils, name, r) for r in results
    ]
