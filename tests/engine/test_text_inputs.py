"""Text inputs of text2semantic: BYTES strings or UTF-8 UINT8 tensors, and the guard for garbled BYTES."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from voicereel.engine.codec_serving import InvalidInput
from voicereel.engine.text_inputs import UNREADABLE, bytes_text, guard_bytes_decoding, text_fields, utf8_text


def _backend_utils() -> ModuleType:
    """A fresh copy of Triton's own triton_python_backend_utils.py (the file the stub loads)."""
    spec = importlib.util.find_spec("pytriton")
    assert spec is not None and spec.submodule_search_locations
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "tritonserver/backends/python/triton_python_backend_utils.py"
    )
    module_spec = importlib.util.spec_from_file_location("pb_utils_copy", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_bytes_and_utf8_forms_give_the_same_text() -> None:
    text = "안녕, world — こんにちは"
    encoded = np.array([text.encode()], dtype=np.object_)
    utf8 = torch.tensor(list(text.encode()), dtype=torch.uint8)
    assert bytes_text(encoded, "text") == utf8_text(utf8, "text_utf8") == text
    assert text_fields({"text": encoded}, {"reference_text_utf8": utf8}) == {"text": text, "reference_text": text}
    assert text_fields({}, {}) == {"text": None, "reference_text": None}


@pytest.mark.parametrize(
    ("bytes_arrays", "utf8", "message"),
    [
        (
            {"text": np.array([b"a"], dtype=np.object_)},
            {"text_utf8": torch.tensor([98], dtype=torch.uint8)},
            "not both",
        ),
        ({}, {"text_utf8": torch.tensor([0xFF, 0xFE], dtype=torch.uint8)}, "not valid UTF-8"),
        ({"text": np.array([b"\xff"], dtype=np.object_)}, {}, "not valid UTF-8"),
        ({"text": np.array([b"a", b"b"], dtype=np.object_)}, {}, "one string"),
        ({}, {"text_utf8": torch.tensor([1], dtype=torch.int32)}, "UINT8"),
    ],
)
def test_bad_text_inputs(bytes_arrays: dict, utf8: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        text_fields(bytes_arrays, utf8)


def test_garbled_bytes_become_an_invalid_input_instead_of_an_exception() -> None:
    pb_utils = _backend_utils()
    good = bytes(pb_utils.serialize_byte_tensor(np.array([b"Hello from the GPU."], dtype=np.object_)))
    garbled = np.full(len(good), good[0], dtype=np.uint8)  # what numpy 2 makes of it: the first byte everywhere
    with pytest.raises(struct.error):
        pb_utils.deserialize_bytes_tensor(garbled)
    guard_bytes_decoding(pb_utils)
    guard_bytes_decoding(pb_utils)  # idempotent: a second model instance in the same stub
    assert pb_utils.deserialize_bytes_tensor(np.frombuffer(good, np.uint8))[0] == b"Hello from the GPU."
    unreadable = pb_utils.deserialize_bytes_tensor(garbled)
    assert unreadable[0] is UNREADABLE
    with pytest.raises(InvalidInput, match="send text_utf8"):
        bytes_text(unreadable, "text")
