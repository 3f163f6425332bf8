"""What gets exported: each graph's tensors (names, dtypes, dims with named dynamic axes), its PyTorch module,
and an example input to trace it with.

Tensor names are snake_case and the codec's match the Triton contract (`model_repository/README.md`): the encoder
takes `pcm` and returns `codes`, the decoder takes `codes` and returns `pcm`; the batch axis is explicit here (the
python-backend models batch requests on it). Dims: an int is fixed, a string names a dynamic axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from export.names import ALL_GRAPHS, CODEC_DECODER, CODEC_ENCODER, T2S_FAST_STEP, T2S_SLOW_STEP
from voicereel.engine.batched import BatchedDualAR
from voicereel.engine.codec import FRAME_SAMPLES, NUM_CODEBOOKS, RESIDUAL_CODEBOOK_SIZE, SEMANTIC_CODEBOOK_SIZE


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    dims: tuple[int | str, ...]

    def describe(self) -> str:
        return f"{self.name} {self.dtype}[{', '.join(str(d) for d in self.dims)}]"


@dataclass(frozen=True)
class GraphSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {
            t.name: {axis: dim for axis, dim in enumerate(t.dims) if isinstance(dim, str)}
            for t in (*self.inputs, *self.outputs)
            if any(isinstance(dim, str) for dim in t.dims)
        }


def codec_encoder_spec(metadata: dict[str, str]) -> GraphSpec:
    return GraphSpec(
        CODEC_ENCODER,
        inputs=(TensorSpec("pcm", "float32", ("batch", "samples")),),
        outputs=(TensorSpec("codes", "int32", ("batch", NUM_CODEBOOKS, "frames")),),
        metadata=metadata,
    )


def codec_decoder_spec(metadata: dict[str, str]) -> GraphSpec:
    return GraphSpec(
        CODEC_DECODER,
        inputs=(TensorSpec("codes", "int32", ("batch", NUM_CODEBOOKS, "frames")),),
        outputs=(TensorSpec("pcm", "float32", ("batch", "samples")),),
        metadata=metadata,
    )


def slow_step_spec(engine: BatchedDualAR) -> GraphSpec:
    config = engine.config
    cache = (config.n_layer, "batch", config.n_local_heads, "cache_len", config.head_dim)
    head = int(engine.head_weight.shape[0])
    return GraphSpec(
        T2S_SLOW_STEP,
        inputs=(
            TensorSpec("frame", "int64", ("batch", engine.num_codebooks + 1)),
            TensorSpec("position", "int64", ("batch",)),
            TensorSpec("k_cache", "float32", cache),
            TensorSpec("v_cache", "float32", cache),
        ),
        outputs=(
            TensorSpec("slow_hidden", "float32", ("batch", config.dim)),
            TensorSpec("logits", "float32", ("batch", head)),
            TensorSpec("k_cache_out", "float32", cache),
            TensorSpec("v_cache_out", "float32", cache),
        ),
        metadata=_t2s_metadata(engine),
    )


def fast_step_spec(engine: BatchedDualAR) -> GraphSpec:
    config = engine.config
    cache = (config.n_fast_layer, "batch", config.fast_n_local_heads, engine.num_codebooks, config.fast_head_dim)
    return GraphSpec(
        T2S_FAST_STEP,
        inputs=(
            TensorSpec("slow_hidden", "float32", ("batch", config.dim)),
            TensorSpec("previous_code", "int64", ("batch",)),
            TensorSpec("codebook_index", "int64", ()),
            TensorSpec("k_cache", "float32", cache),
            TensorSpec("v_cache", "float32", cache),
        ),
        outputs=(
            TensorSpec("logits", "float32", ("batch", engine.residual_size)),
            TensorSpec("k_cache_out", "float32", cache),
            TensorSpec("v_cache_out", "float32", cache),
        ),
        metadata=_t2s_metadata(engine),
    )


def _t2s_metadata(engine: BatchedDualAR) -> dict[str, str]:
    return {
        "semantic_begin_id": str(engine.tokens.semantic_begin_id),
        "num_semantic": str(engine.tokens.num_semantic),
        "im_end_id": str(engine.tokens.im_end_id),
        "max_seq_len": str(engine.config.max_seq_len),
    }


class ExportSources:
    """The checkpoint's networks, loaded once and only when a graph of theirs is needed."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint

    @cached_property
    def dac(self) -> Any:
        """Float32 DAC with weight norms folded: what gets traced."""
        from export.codec_graphs import load_export_codec

        return load_export_codec(self.checkpoint)

    @cached_property
    def reference_dac(self) -> Any:
        """Float32 DAC exactly as the PyTorch serving path loads it (weight norms not folded)."""
        from voicereel.engine.checkpoints import load_codec

        return load_codec(self.checkpoint, "cpu", torch.float32)

    @cached_property
    def engine(self) -> BatchedDualAR:
        from export.t2s_graphs import load_export_engine

        return load_export_engine(self.checkpoint)

    def spec(self, name: str) -> GraphSpec:
        from export.codec_graphs import codec_metadata

        if name == CODEC_ENCODER:
            return codec_encoder_spec(codec_metadata(self.dac))
        if name == CODEC_DECODER:
            return codec_decoder_spec(codec_metadata(self.dac))
        if name == T2S_SLOW_STEP:
            return slow_step_spec(self.engine)
        if name == T2S_FAST_STEP:
            return fast_step_spec(self.engine)
        raise KeyError(f"unknown graph {name!r}; known: {', '.join(ALL_GRAPHS)}")

    def module(self, name: str) -> torch.nn.Module:
        from export.codec_graphs import DecoderGraph, EncoderGraph
        from export.t2s_graphs import FastStepGraph, SlowStepGraph

        modules = {
            CODEC_ENCODER: lambda: EncoderGraph(self.dac),
            CODEC_DECODER: lambda: DecoderGraph(self.dac),
            T2S_SLOW_STEP: lambda: SlowStepGraph(self.engine),
            T2S_FAST_STEP: lambda: FastStepGraph(self.engine),
        }
        return modules[name]().eval()

    def example(self, name: str) -> tuple[torch.Tensor, ...]:
        """Trace inputs. Sizes are chosen unlike any fixed dim (batch 3, not 2 = the tiny model's kv heads), so
        the tracer cannot confuse a dynamic axis with a constant of the same value."""
        generator = torch.Generator().manual_seed(0)
        if name == CODEC_ENCODER:
            return (torch.rand((3, 5 * FRAME_SAMPLES), generator=generator) * 1.6 - 0.8,)
        if name == CODEC_DECODER:
            return (random_codes(3, 7, generator),)
        engine = self.engine
        config = engine.config
        if name == T2S_SLOW_STEP:
            cache_len = 24
            frame = torch.zeros((3, engine.num_codebooks + 1), dtype=torch.int64)
            frame[:, 0] = engine.tokens.semantic_begin_id + torch.tensor([1, 5, 9])
            frame[:, 1:] = torch.randint(0, engine.residual_size, (3, engine.num_codebooks), generator=generator)
            shape = (config.n_layer, 3, config.n_local_heads, cache_len, config.head_dim)
            k, v = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
            return frame, torch.tensor([0, 11, 23]), k, v
        if name == T2S_FAST_STEP:
            shape = (config.n_fast_layer, 3, config.fast_n_local_heads, engine.num_codebooks, config.fast_head_dim)
            return (
                torch.randn((3, config.dim), generator=generator),
                torch.randint(0, engine.residual_size, (3,), generator=generator),
                torch.tensor(4),
                torch.randn(shape, generator=generator),
                torch.randn(shape, generator=generator),
            )
        raise KeyError(f"unknown graph {name!r}")


def random_codes(batch: int, frames: int, generator: torch.Generator) -> torch.Tensor:
    """Valid codes `[batch, 10, frames]` int32: codebook 0 semantic, 1..9 residual."""
    semantic = torch.randint(0, SEMANTIC_CODEBOOK_SIZE, (batch, 1, frames), generator=generator)
    residual = torch.randint(0, RESIDUAL_CODEBOOK_SIZE, (batch, NUM_CODEBOOKS - 1, frames), generator=generator)
    return torch.cat([semantic, residual], dim=1).to(torch.int32)
