"""The one BLS helper: every call a python-backend model makes to another Triton model goes through here.

``pb_utils`` (triton_python_backend_utils) exists only inside Triton's stub, so it is passed in. Tensors
cross into and out of the calls through DLPack (numpy 2 in the GPU image breaks numpy outputs). Errors
come back as ``Failure`` values (their ``CODE: message`` text kept) or raised as ``FailureError``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.dlpack import from_dlpack, to_dlpack

from voicereel.engine.codec import DecodeWindow
from voicereel.engine.codec_serving import Failure
from voicereel.engine.control import CANCEL_PARAMETER
from voicereel.engine.tts_stream import FailureError

log = logging.getLogger(__name__)

KNOWN_CODES = ("INVALID_INPUT", "INTERNAL")


def failure_of(error: Any) -> Failure:
    """A ``Failure`` from a Triton error: our models' messages start with ``CODE: ``."""
    message = str(error.message())
    code, sep, detail = message.partition(": ")
    if sep and code in KNOWN_CODES:
        return Failure(code, detail)
    return Failure("INTERNAL", message)


def _tensor_out(pb_utils: Any, response: Any, name: str) -> torch.Tensor | None:
    tensor = pb_utils.get_output_tensor_by_name(response, name)
    if tensor is None:
        return None
    return from_dlpack(tensor.to_dlpack()).to("cpu", copy=True)


def _tensor_in(pb_utils: Any, name: str, tensor: torch.Tensor) -> Any:
    return pb_utils.Tensor.from_dlpack(name, to_dlpack(tensor.contiguous()))


def own_inputs(pb_utils: Any, inputs: Sequence[Any]) -> list[Any]:
    """Copies of a request's input tensors, valid after its ``execute`` returns.

    Numbers go through DLPack (numpy outputs fail under numpy 2 there); BYTES tensors, which DLPack cannot
    carry, through numpy.
    """
    copies = []
    for tensor in inputs:
        try:
            copies.append(_tensor_in(pb_utils, tensor.name(), from_dlpack(tensor.to_dlpack()).clone()))
        except Exception:  # "DLPack does not have support for string tensors"
            copies.append(pb_utils.Tensor(tensor.name(), tensor.as_numpy().copy()))
    return copies


def start_code_stream(pb_utils: Any, model: str, inputs: Sequence[Any], request_id: str) -> Any:
    """Send a decoupled request to ``model`` (text2semantic) with the given input tensors.

    Returns Triton's response iterator; read it with ``code_chunks``. Triton 2.51's python backend returns
    only once the first response has arrived (for text2semantic: after the prefill and the first code
    chunk), so callers start streams on their own threads, with ``own_inputs`` copies.
    """
    request = pb_utils.InferenceRequest(
        model_name=model, inputs=list(inputs), requested_output_names=["codes"], request_id=request_id
    )
    return request.exec(decoupled=True)


def code_chunks(pb_utils: Any, responses: Any) -> Iterator[torch.Tensor | Failure]:
    """Code chunks ``[10, n]`` of a code stream; a ``Failure`` (then nothing) if the model answered an error."""
    for response in responses:
        if response.has_error():
            yield failure_of(response.error())
            return
        codes = _tensor_out(pb_utils, response, "codes")
        if codes is not None:
            yield codes


def cancel_code_stream(pb_utils: Any, model: str, request_id: str) -> None:
    """Ask ``model`` to stop the decoupled request ``request_id`` (BLS cannot cancel it in Triton 2.51)."""
    request = pb_utils.InferenceRequest(
        model_name=model, inputs=[], requested_output_names=[], parameters={CANCEL_PARAMETER: request_id}
    )
    for response in request.exec(decoupled=True):
        if response.has_error():
            log.warning("cancelling %s failed: %s", request_id, response.error().message())


def decode_window(pb_utils: Any, model: str, window: DecodeWindow) -> torch.Tensor:
    """PCM of one fixed-shape window from ``model`` (codec_decoder); raises FailureError."""
    inputs = [
        _tensor_in(pb_utils, "codes", window.codes[None].to(torch.int32)),
        _tensor_in(pb_utils, "context_frames", torch.tensor([[window.context_frames]], dtype=torch.int32)),
        _tensor_in(pb_utils, "num_frames", torch.tensor([[window.num_frames]], dtype=torch.int32)),
    ]
    request = pb_utils.InferenceRequest(model_name=model, inputs=inputs, requested_output_names=["pcm"])
    response = request.exec()
    if response.has_error():
        raise FailureError(failure_of(response.error()))
    pcm = _tensor_out(pb_utils, response, "pcm")
    if pcm is None:
        raise FailureError(Failure("INTERNAL", f"{model} returned no pcm"))
    return pcm[0]
