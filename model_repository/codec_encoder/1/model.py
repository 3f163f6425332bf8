"""codec_encoder: 44.1 kHz mono PCM -> codes [10, T]. Thin glue into voicereel.engine (see codec_serving)."""

from __future__ import annotations

from typing import Any

import triton_python_backend_utils as pb_utils

from voicereel.engine.codec import Codec
from voicereel.engine.codec_serving import encode_requests
from voicereel.engine.onnx_codec import OnnxCodec, codec_for_instance
from voicereel.engine.triton_glue import (
    dump_stacks_on_sigusr1,
    instance_device,
    model_parameters,
    request_inputs,
    responses,
)


class TritonPythonModel:
    codec: Codec | OnnxCodec

    def initialize(self, args: dict[str, str]) -> None:
        dump_stacks_on_sigusr1()
        params = model_parameters(args)
        self.codec = codec_for_instance(args, params, "encoder", instance_device(args))
        self.max_input_seconds = float(params["max_input_seconds"])

    def execute(self, requests: list[Any]) -> list[Any]:
        inputs = [request_inputs(pb_utils, request, ["pcm"]) for request in requests]
        return responses(pb_utils, "codes", encode_requests(self.codec, inputs, self.max_input_seconds))
