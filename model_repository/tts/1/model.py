"""tts (BLS, decoupled): text2semantic's code stream -> codec_decoder windows -> streamed PCM. Thin glue.
(With shared knob pcm_decoding = text2semantic, tts is built as an ensemble instead and this file is not used.)

execute() copies each request's input tensors and hands them to a thread of its own, which starts the code stream
(that call returns only with the first code chunk), decodes windows as codes arrive (voicereel.engine.tts_stream)
and streams PCM.
Every BLS call goes through voicereel.engine.bls.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

import triton_python_backend_utils as pb_utils
from torch.utils.dlpack import to_dlpack

from voicereel.engine import bls
from voicereel.engine.codec import ChunkPlan
from voicereel.engine.codec_serving import Failure
from voicereel.engine.control import TEXT2SEMANTIC
from voicereel.engine.stage_times import StageTimes
from voicereel.engine.trace import FirstChunkTrace
from voicereel.engine.triton_glue import dump_stacks_on_sigusr1, error_response, model_parameters
from voicereel.engine.tts_stream import TtsCalls, run_tts

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
CODEC_DECODER = "codec_decoder"


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        dump_stacks_on_sigusr1()
        params = model_parameters(args)
        self.plan = ChunkPlan(
            chunk_frames=int(params["chunk_frames"]),
            context_frames=int(params["context_frames"]),
            first_chunk_frames=int(params["first_chunk_frames"]),
        )
        self.log = logging.getLogger("tts")
        self.times = StageTimes("tts", self.log)
        self.trace_requests = params["trace_requests"] == "true"

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            unknown = sorted(json.loads(request.parameters() or "{}"))
            if unknown:
                failure = Failure("INVALID_INPUT", f"unknown request parameters {unknown}")
                sender.send(error_response(pb_utils, failure), flags=FINAL)
                continue
            try:
                inputs = bls.own_inputs(pb_utils, request.inputs())
            except Exception as exc:
                sender.send(error_response(pb_utils, Failure("INTERNAL", f"reading inputs failed: {exc}")), flags=FINAL)
                continue
            # Starting the code stream waits for its first chunk: on the request's own thread, so requests
            # arriving together start together.
            trace = FirstChunkTrace("tts", request_id=request.request_id()) if self.trace_requests else None
            worker = threading.Thread(target=self._serve, args=(sender, inputs, trace), daemon=True)
            worker.start()
        return None

    def _serve(self, sender: Any, inputs: list[Any], trace: FirstChunkTrace | None) -> None:
        stream_id = f"tts-{uuid.uuid4().hex}"
        times = self.times
        started = time.perf_counter()
        if trace is not None:
            trace.note("stream", stream_id)
            trace.mark("start")
        try:
            responses = bls.start_code_stream(pb_utils, TEXT2SEMANTIC, inputs, stream_id)
        except Exception as exc:
            sender.send(error_response(pb_utils, Failure("INTERNAL", f"text2semantic call failed: {exc}")), flags=FINAL)
            return
        times.add("first_codes", time.perf_counter() - started)  # the call returns with the first code chunk
        if trace is not None:
            trace.mark("first_codes")
        windows = 0

        def send(pcm: Any) -> None:
            output = pb_utils.Tensor.from_dlpack("pcm", to_dlpack(pcm.contiguous()))
            with times.stage("send_pcm"):
                sender.send(pb_utils.InferenceResponse(output_tensors=[output]))
            if trace is not None:
                trace.mark("first_sent")
                trace.emit(self.log)

        def decode(window: Any) -> Any:
            nonlocal windows
            start = time.perf_counter()
            pcm = bls.decode_window(pb_utils, CODEC_DECODER, window)
            times.add("first_codec_call" if windows == 0 else "codec_call", time.perf_counter() - start)
            if trace is not None:
                trace.mark("first_codec")
            windows += 1
            times.maybe_report()
            return pcm

        def close(failure: Failure | None) -> None:
            if failure is None:
                sender.send(flags=FINAL)
            else:
                sender.send(error_response(pb_utils, failure), flags=FINAL)

        calls = TtsCalls(
            codes=bls.code_chunks(pb_utils, responses),
            decode=decode,
            send=send,
            close=close,
            is_cancelled=lambda: bool(sender.is_cancelled()),
            cancel_codes=lambda: bls.cancel_code_stream(pb_utils, TEXT2SEMANTIC, stream_id),
        )
        run_tts(calls, self.plan)
