"""text2semantic (decoupled): text + voice prompt -> streamed code chunks (or, asked for output pcm alone with
shared knob pcm_decoding = text2semantic, their audio, decoded in this process). Thin glue into voicereel.engine.

execute() only validates and registers requests with the engine; the engine's background loop decodes every
in-flight request together and streams each one's codes through its response sender, ending with the final flag.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import triton_python_backend_utils as pb_utils

from voicereel.engine.codec_serving import Failure, InvalidInput
from voicereel.engine.pcm_render import engine_stream
from voicereel.engine.t2s_serving import (
    TENSOR_INPUTS,
    DispatchedStream,
    ResponseDispatcher,
    ServingConfig,
    Text2SemanticService,
    load_engine,
    load_renderer,
)
from voicereel.engine.text_inputs import BYTES_INPUTS, UTF8_INPUTS, guard_bytes_decoding, text_fields
from voicereel.engine.triton_glue import (
    dump_stacks_on_sigusr1,
    error_response,
    instance_device,
    model_parameters,
    request_inputs,
    use_compile_cache,
)

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
guard_bytes_decoding(pb_utils)  # a BYTES input garbled by numpy 2 becomes INVALID_INPUT, not a dead stub


class SenderStream:
    """One request's response sender as the engine's ResponseStream; closes exactly once."""

    def __init__(self, sender: Any) -> None:
        self.sender = sender
        self._closed = threading.Event()

    def _send(self, name: str, tensor: Any) -> None:
        output = pb_utils.Tensor.from_dlpack(name, _to_dlpack(tensor.contiguous()))
        self.sender.send(pb_utils.InferenceResponse(output_tensors=[output]))

    def send_codes(self, codes: Any) -> None:
        self._send("codes", codes)

    def send_pcm(self, pcm: Any) -> None:
        self._send("pcm", pcm)

    def close(self, failure: Failure | None) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if failure is None:
            self.sender.send(flags=FINAL)
        else:
            self.sender.send(error_response(pb_utils, failure), flags=FINAL)

    def is_cancelled(self) -> bool:
        return bool(self.sender.is_cancelled())


def _to_dlpack(tensor: Any) -> Any:
    from torch.utils.dlpack import to_dlpack

    return to_dlpack(tensor)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        dump_stacks_on_sigusr1()
        device = instance_device(args)
        params = model_parameters(args)
        use_compile_cache(params["compile_cache_dir"])
        config = ServingConfig.from_parameters(params, on_gpu=device.type == "cuda")
        engine = load_engine(config, device)
        self.renderer = load_renderer(config, device)  # shared knob pcm_decoding = text2semantic
        self.service = Text2SemanticService(engine, config, self.renderer)
        # Responses leave on dispatcher threads: a Triton send waits for the server, the decode loop must not.
        self.dispatcher = ResponseDispatcher()
        engine.start(engine_stream(device) if self.renderer is not None else None)

    def execute(self, requests: list[Any]) -> None:
        received = time.time()  # the trace's "received" milestone (shared knob trace_requests)
        for request in requests:
            stream = DispatchedStream(SenderStream(request.get_response_sender()), self.dispatcher)
            try:
                bytes_arrays = {name: _numpy_input(request, name) for name in BYTES_INPUTS}
                texts = text_fields(bytes_arrays, request_inputs(pb_utils, request, UTF8_INPUTS))
                tensors = request_inputs(pb_utils, request, TENSOR_INPUTS)
                parameters = json.loads(request.parameters() or "{}")
            except InvalidInput as exc:
                stream.close(Failure("INVALID_INPUT", str(exc)))
                continue
            # Codes unless the caller asked for output pcm alone (a request naming no outputs gets them all).
            pcm = set(request.requested_output_names()) == {"pcm"}
            self.service.handle(request.request_id(), texts, tensors, parameters, stream, pcm=pcm, received=received)
        return None

    def finalize(self) -> None:
        self.service.engine.stop()
        if self.renderer is not None:
            self.renderer.stop()
        self.dispatcher.stop()


def _numpy_input(request: Any, name: str) -> Any:
    """BYTES inputs have no DLPack form; read them as numpy object arrays (input side only)."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()
