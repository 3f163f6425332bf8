"""Smoke run of text2semantic and tts in a GPU tritonserver (tiny checkpoint): the engine in bf16 with CUDA
graphs inside Triton's python backend, text sent as UTF-8 UINT8 (`text_utf8`: BYTES inputs are garbled under
numpy 2), streaming, errors; and a BYTES request answered INVALID_INPUT without killing the model.

    python perf/gpu/smoke_speech.py --checkpoint checkpoints/tiny --out $OUT   # VOICEREEL_TRITON_DIST set

Checks: concurrent text2semantic streams equal the same requests alone; a tts stream's PCM equals decoding
the text2semantic codes of the same inputs in-process; empty text is INVALID_INPUT. Writes smoke_speech.json.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import tritonclient.grpc as grpcclient  # noqa: E402

from voicereel.modelrepo import build_repository  # noqa: E402
from voicereel.stack import Supervisor, TritonPorts, triton_service  # noqa: E402


def inputs(text: str, seed: int, frames: int) -> list[grpcclient.InferInput]:
    items = []
    for name, array, dtype in (
        ("text_utf8", np.frombuffer(text.encode(), dtype=np.uint8).copy(), "UINT8"),
        ("seed", np.array([seed], dtype=np.int64), "INT64"),
        ("max_new_frames", np.array([frames], dtype=np.int32), "INT32"),
    ):
        item = grpcclient.InferInput(name, list(array.shape), dtype)
        item.set_data_from_numpy(array)
        items.append(item)
    return items


def stream(url: str, model: str, requests: list[list[grpcclient.InferInput]]) -> list[dict[str, Any]]:
    """Send requests on one stream at once; collect each one's outputs until its final response."""
    output = "codes" if model == "text2semantic" else "pcm"
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    start = time.perf_counter()
    for index, request in enumerate(requests):
        client.async_stream_infer(model, request, request_id=str(index), enable_empty_final_response=True)
    collected: dict[str, dict[str, Any]] = {str(i): {"chunks": [], "error": None} for i in range(len(requests))}
    done = 0
    while done < len(requests):
        result, error = results.get(timeout=300)
        if error is not None:
            raise RuntimeError(f"stream error without request id: {error}")
        response = result.get_response()
        entry = collected[response.id]
        array = result.as_numpy(output)
        if array is not None:
            entry.setdefault("first_s", time.perf_counter() - start)
            entry["chunks"].append(array)
        if response.parameters["triton_final_response"].bool_param:
            entry["wall_s"] = time.perf_counter() - start
            done += 1
    client.stop_stream()
    client.close()
    return [collected[str(i)] for i in range(len(requests))]


def one_error(url: str, request: list[grpcclient.InferInput]) -> str:
    errors: queue.Queue[Any] = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: errors.put(error))
    client.async_stream_infer("text2semantic", request, enable_empty_final_response=True)
    error = errors.get(timeout=60)
    client.stop_stream()
    return str(error.message()) if error is not None else "no error"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda", help="where the in-process reference codec runs")
    parser.add_argument("--no-tts", action="store_true", help="serve text2semantic alone (no codec needed)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/smoke_speech")
    knobs = {"text2semantic": {"max_slots": 8, "slot_capacity": 2048, "kv_block": 128}}
    models = ["text2semantic"] if args.no_tts else ["text2semantic", "codec_decoder", "tts"]
    repository = build_repository(work / "repo", args.checkpoint, knobs, models=models)
    summary: dict[str, Any] = {}
    with Supervisor(args.out / "logs") as supervisor:
        ports = TritonPorts.free()
        began = time.perf_counter()
        supervisor.start(triton_service(repository, ports, work / "triton", args.out / "logs", timeout_s=600))
        summary["cold_start_s"] = round(time.perf_counter() - began, 1)
        url = f"127.0.0.1:{ports.grpc}"
        texts = [
            "Hello from the GPU.",
            "두 번째 요청입니다.",
            "三番目のリクエストです。",
            "A fourth, longer line of text.",
        ]
        requests = [inputs(text, seed, 60 + 17 * seed) for seed, text in enumerate(texts)]
        together = stream(url, "text2semantic", requests)
        alone = [stream(url, "text2semantic", [request])[0] for request in requests]
        summary["t2s_batched_equal_alone"] = [
            bool(np.array_equal(np.concatenate(a["chunks"], 1), np.concatenate(b["chunks"], 1)))
            for a, b in zip(together, alone, strict=True)
        ]
        summary["t2s_frames"] = [int(np.concatenate(a["chunks"], 1).shape[1]) for a in together]
        summary["t2s_first_response_s"] = [round(a["first_s"], 3) for a in alone]
        summary["empty_text_error"] = one_error(url, inputs("   ", 1, 5))
        as_bytes = grpcclient.InferInput("text", [1], "BYTES")
        as_bytes.set_data_from_numpy(np.array([texts[0].encode()], dtype=np.object_))
        summary["bytes_text_answer"] = one_error(url, [as_bytes])
        summary["serving_after_bytes"] = len(stream(url, "text2semantic", [inputs(texts[0], 1, 8)])[0]["chunks"]) > 0
        if args.no_tts:
            (args.out / "smoke_speech.json").write_text(json.dumps(summary, indent=1))
            print(json.dumps(summary, indent=1))
            return
        tts = stream(url, "tts", [inputs(texts[3], 7, 150)])[0]
        codes = np.concatenate(stream(url, "text2semantic", [inputs(texts[3], 7, 150)])[0]["chunks"], 1)
        import torch

        from voicereel.engine.codec import ChunkPlan, Codec

        whole = Codec.from_checkpoint(args.checkpoint, args.device).decode_chunked(torch.from_numpy(codes), ChunkPlan())
        pcm = np.concatenate(tts["chunks"])
        summary["tts_chunk_samples"] = [int(c.shape[0]) for c in tts["chunks"]]
        summary["tts_max_abs_diff_vs_whole"] = float(np.abs(pcm - whole.cpu().numpy()).max())
        summary["tts_first_chunk_s"] = round(tts["first_s"], 3)
    (args.out / "smoke_speech.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
