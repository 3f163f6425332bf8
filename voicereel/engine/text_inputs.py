"""Reading the text inputs of text2semantic: BYTES strings, or the same text as UTF-8 bytes in UINT8 tensors.

Why two forms: Triton 2.51's python backend turns a BYTES input into numpy through pybind11 built against
numpy 1; under numpy 2 (the GPU image) the copy reads every byte as the first one (seen on the H200: a
23-byte buffer of 0x13), and the exception from parsing it kills the stub. UINT8 tensors travel through
DLPack, which works everywhere, so `text_utf8` / `reference_text_utf8` are the robust form; BYTES `text` /
`reference_text` stay for clients that have them. ``guard_bytes_decoding`` makes a garbled BYTES input an
``INVALID_INPUT`` answer instead of a dead model.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from voicereel.engine.codec_serving import InvalidInput

# (text field, BYTES input, UINT8 input)
TEXT_FIELDS = (("text", "text", "text_utf8"), ("reference_text", "reference_text", "reference_text_utf8"))
BYTES_INPUTS = tuple(field[1] for field in TEXT_FIELDS)
UTF8_INPUTS = tuple(field[2] for field in TEXT_FIELDS)


class _Unreadable:
    """Marks a BYTES input whose serialized form could not be parsed."""


UNREADABLE = _Unreadable()


def guard_bytes_decoding(pb_utils: Any) -> None:
    """Make ``pb_utils.deserialize_bytes_tensor`` return a marker instead of raising on a garbled buffer.

    The stub looks the function up on the module at call time, so replacing it takes effect.
    """
    original: Callable[[Any], Any] = pb_utils.deserialize_bytes_tensor
    if getattr(original, "voicereel_guarded", False):
        return

    def deserialize(encoded: Any) -> Any:
        try:
            return original(encoded)
        except (struct.error, ValueError):
            return np.array([UNREADABLE], dtype=np.object_)

    deserialize.voicereel_guarded = True  # type: ignore[attr-defined]
    pb_utils.deserialize_bytes_tensor = deserialize


def bytes_text(array: Any, name: str) -> str | None:
    """The string of a BYTES input (a numpy object array of one UTF-8 element), None when absent."""
    if array is None:
        return None
    if array.size != 1:
        raise InvalidInput(f"input {name!r} must hold one string, got shape {list(array.shape)}")
    value = array.reshape(-1)[0]
    if value is UNREADABLE:
        raise InvalidInput(f"BYTES input {name!r} cannot be read on this server (numpy 2); send {name}_utf8 (UINT8)")
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except (UnicodeDecodeError, TypeError) as exc:
        raise InvalidInput(f"input {name!r} is not valid UTF-8") from exc


def utf8_text(tensor: torch.Tensor | None, name: str) -> str | None:
    """The string of a UINT8 input holding UTF-8 bytes (any shape, read in order), None when absent."""
    if tensor is None:
        return None
    if tensor.dtype != torch.uint8:
        raise InvalidInput(f"input {name!r} must be UINT8 UTF-8 bytes")
    try:
        return bytes(tensor.reshape(-1).tolist()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"input {name!r} is not valid UTF-8") from exc


def text_fields(bytes_arrays: dict[str, Any], utf8_tensors: dict[str, torch.Tensor | None]) -> dict[str, str | None]:
    """``text`` and ``reference_text`` from whichever form each came in; both forms at once is an error."""
    texts: dict[str, str | None] = {}
    for field, bytes_name, utf8_name in TEXT_FIELDS:
        from_bytes = bytes_text(bytes_arrays.get(bytes_name), bytes_name)
        from_utf8 = utf8_text(utf8_tensors.get(utf8_name), utf8_name)
        if from_bytes is not None and from_utf8 is not None:
            raise InvalidInput(f"give {bytes_name!r} or {utf8_name!r}, not both")
        texts[field] = from_bytes if from_bytes is not None else from_utf8
    return texts
