"""Helpers shared by the python-backend models: device and dtype knobs."""

from __future__ import annotations

import pytest
import torch

from voicereel.engine.triton_glue import dtype_from_name, instance_device


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
