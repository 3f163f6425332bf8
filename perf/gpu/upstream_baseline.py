"""Upstream fish-speech 0.1.0 `generate` (batch 1, torch.compile reduce-overhead) on the benchmark checkpoint.

The reference point of every GPU figure: same weights, same frame count, same GPU, same run as ours.
The slow head is masked to semantic ids (random weights would otherwise stop at a random end token), which
leaves the work per frame unchanged: the full-vocabulary logits are still computed, then biased.

    python perf/gpu/upstream_baseline.py --checkpoint /tmp/bench --frames 646 --out results.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch


def masked_forward(model: Any) -> None:
    """Bias the slow head's logits to semantic ids only, inside the function torch.compile traces."""
    tok = model.tokenizer
    vocab = model.config.vocab_size
    bias = torch.full((vocab,), float("-inf"), device=next(model.parameters()).device)
    bias[tok.semantic_begin_id : tok.semantic_end_id + 1] = 0
    bias = bias.to(next(model.parameters()).dtype)
    original = model.forward_generate

    def forward_generate(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        result.logits = result.logits + bias
        return result

    model.forward_generate = forward_generate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=646)
    parser.add_argument("--text", default="The quick brown fox jumps over the lazy dog. " * 4)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda", help="cpu runs a smoke check (use --no-compile)")
    args = parser.parse_args()

    from fish_speech.content_sequence import ContentSequence, TextPart
    from fish_speech.models.text2semantic import inference as up

    from voicereel.engine.checkpoints import load_codec, load_text2semantic

    device = args.device
    dtype = torch.bfloat16 if device == "cuda" else torch.float32

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    model = load_text2semantic(args.checkpoint, device=device, dtype=dtype)
    load_s = time.perf_counter() - t0
    masked_forward(model)
    with torch.device(device):
        model.setup_caches(max_batch_size=1, max_seq_len=model.config.max_seq_len, dtype=dtype)
    decode_one = up.decode_one_token_ar
    if args.compile:
        decode_one = torch.compile(decode_one, backend="inductor", mode="reduce-overhead", fullgraph=True)

    seq = ContentSequence(modality="interleave")
    seq.append([TextPart(text=args.text)], add_end=False, speaker=0)
    codebooks = model.config.num_codebooks
    encoded, audio_masks, audio_parts = seq.encode_for_inference(model.tokenizer, num_codebooks=codebooks)
    encoded = encoded.to(device)
    # upstream's generate has tqdm progress bars: silence them
    up.tqdm = lambda it, **_: it

    def run(frames: int) -> tuple[float, int]:
        sync()
        start = time.perf_counter()
        out = up.generate(
            model=model,
            prompt=encoded,
            max_new_tokens=frames,
            audio_masks=audio_masks,
            audio_parts=audio_parts,
            decode_one_token=decode_one,
            temperature=0.8,
            top_p=0.8,
            repetition_penalty=1.1,
        )
        sync()
        return time.perf_counter() - start, int(out.shape[1] - encoded.shape[1])

    t0 = time.perf_counter()
    run(32)  # compile (graphs are captured for the decode shape on first calls)
    run(32)
    compile_s = time.perf_counter() - t0
    wall, produced = run(args.frames)

    codec = load_codec(args.checkpoint, device=device, dtype=torch.float32)
    codes = torch.randint(0, 1024, (1, 10, args.frames), device=device)
    codes[:, 0] = torch.randint(0, 4096, (1, args.frames), device=device)
    with torch.inference_mode():
        lengths = torch.tensor([args.frames], device=device)
        codec.decode(codes, lengths)  # warm-up
        sync()
        c0 = time.perf_counter()
        pcm, _ = codec.decode(codes, lengths)
        sync()
        codec_s = time.perf_counter() - c0
    result = {
        "what": "upstream fish-speech 0.1.0 generate, batch 1, torch.compile reduce-overhead, bf16",
        "load_s": load_s,
        "compile_s": compile_s,
        "frames": produced,
        "lm_wall_s": wall,
        "lm_frames_per_s": produced / wall,
        "codec_decode_s": codec_s,
        "codec_samples": int(pcm.shape[-1]),
        "total_s": wall + codec_s,
        "audio_s": produced / 21.533,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
