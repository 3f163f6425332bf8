"""What stage 1 writes: named snake_case tensors with named dynamic axes, opset 17, and the runner's metadata."""

from __future__ import annotations

from typing import Any

import onnx

from export.names import ALL_GRAPHS
from export.onnx_export import read_metadata

EXPECTED = {
    "codec_encoder": (["pcm"], ["codes"]),
    "codec_decoder": (["codes"], ["pcm"]),
    "t2s_slow_step": (
        ["frame", "position", "k_cache", "v_cache"],
        ["slow_hidden", "logits", "k_cache_out", "v_cache_out"],
    ),
    "t2s_fast_step": (
        ["slow_hidden", "previous_code", "codebook_index", "k_cache", "v_cache"],
        ["logits", "k_cache_out", "v_cache_out"],
    ),
}


def _dims(value: Any) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_tensor_names_axes_and_opset(export_run: Any) -> None:
    for graph in ALL_GRAPHS:
        model = onnx.load(str(export_run.onnx(graph)))
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
        inputs = {v.name: v for v in model.graph.input}
        outputs = {v.name: v for v in model.graph.output}
        assert (list(inputs), list(outputs)) == EXPECTED[graph]
        for value in (*inputs.values(), *outputs.values()):
            dims = _dims(value)
            if value.name != "codebook_index":
                assert "batch" in dims, (graph, value.name, dims)
    codec_encoder = onnx.load(str(export_run.onnx("codec_encoder")))
    assert _dims(codec_encoder.graph.input[0]) == ["batch", "samples"]
    assert _dims(codec_encoder.graph.output[0]) == ["batch", 10, "frames"]
    slow = onnx.load(str(export_run.onnx("t2s_slow_step")))
    assert _dims(slow.graph.input[2]) == [2, "batch", 2, "cache_len", 16]  # tiny: 2 layers, 2 kv heads of 16


def test_metadata_says_what_each_file_is(export_run: Any) -> None:
    encoder = read_metadata(export_run.onnx("codec_encoder"))
    assert encoder["graph"] == "codec_encoder"
    assert (encoder["sample_rate"], encoder["frame_samples"], encoder["num_codebooks"]) == ("44100", "2048", "10")
    assert int(encoder["max_encode_samples"]) > 44100 * 60
    assert str(export_run.checkpoint.resolve()) in encoder["checkpoint"]
    step = read_metadata(export_run.onnx("t2s_slow_step"))
    assert step["graph"] == "t2s_slow_step" and int(step["num_semantic"]) == 4096
