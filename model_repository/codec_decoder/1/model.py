"""codec_decoder: a fixed-shape window of codes -> PCM of its chunk. Thin glue into voicereel.engine."""

from __future__ import annotations

import logging
import time
from typing import Any

import triton_python_backend_utils as pb_utils

from voicereel.engine.codec import ChunkPlan, Codec
from voicereel.engine.codec_serving import decode_requests
from voicereel.engine.onnx_codec import OnnxCodec, codec_for_instance
from voicereel.engine.trace import log_execution
from voicereel.engine.triton_glue import (
    dump_stacks_on_sigusr1,
    instance_device,
    model_parameters,
    request_inputs,
    responses,
    use_compile_cache,
)

INPUTS = ["codes", "context_frames", "num_frames"]


class TritonPythonModel:
    codec: Codec | OnnxCodec

    def initialize(self, args: dict[str, str]) -> None:
        dump_stacks_on_sigusr1()
        params = model_parameters(args)
        self.trace_requests = params["trace_requests"] == "true"  # one line per execution (voicereel.engine.trace)
        self.log = logging.getLogger("codec_decoder")
        use_compile_cache(params["compile_cache_dir"])
        device = instance_device(args)
        self.codec = codec_for_instance(args, params, "decoder", device)
        self.plan = ChunkPlan(
            chunk_frames=int(params["chunk_frames"]),
            context_frames=int(params["context_frames"]),
            first_chunk_frames=int(params["first_chunk_frames"]),  # a compiled decoder keeps this length too
        )
        # compiled decoder and graphs where they apply (runtime torch on a GPU instance), as text2semantic's
        # compile_step and cuda_graphs: elsewhere both knobs are ignored
        torch_on_gpu = device.type == "cuda" and isinstance(self.codec, Codec)
        if params["compile_decoder"] == "true" and torch_on_gpu:
            self.codec.compile_decoder(int(params["max_batch_size"]), self.plan)
            self.codec.warm_up(self.plan)  # falls back to the eager decoder (logged) if compiling fails
        if params["cuda_graphs"] == "true" and torch_on_gpu:
            self.codec.capture_graphs(int(params["max_batch_size"]), self.plan)

    def execute(self, requests: list[Any]) -> list[Any]:
        started = time.time()
        inputs = [request_inputs(pb_utils, request, INPUTS) for request in requests]
        answers = responses(pb_utils, "pcm", decode_requests(self.codec, inputs, self.plan))
        if self.trace_requests:
            log_execution(self.log, "codec_decoder", started, len(requests))
        return answers
