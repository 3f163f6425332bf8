"""Instance placement across GPUs: rendered configs of the real model_repository/, parsed as Triton ModelConfig
protobuf text, for 1, 2 and 4 GPUs, each GPU model and placement; and the errors. Rendering only: KIND_GPU
instances cannot load in tritonserver on this CPU machine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from voicereel.modelrepo import KnobError, render_configs
from voicereel.modelrepo import build as build_module
from voicereel.modelrepo.__main__ import parse_setting
from voicereel.modelrepo.placement import InstanceGroup, place, render_groups

GPU_MODELS = ("codec_encoder", "codec_decoder", "text2semantic")
KIND_GPU = model_config_pb2.ModelInstanceGroup.Kind.KIND_GPU
KIND_CPU = model_config_pb2.ModelInstanceGroup.Kind.KIND_CPU


def parsed(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def groups(text: str) -> list[tuple[int, int, list[int]]]:
    """(count, kind, gpus) of each instance group of a rendered config."""
    return [(g.count, g.kind, list(g.gpus)) for g in parsed(text).instance_group]


def render(tmp_path: Path, overrides: Mapping[str, Mapping[str, Any]], models: list[str]) -> dict[str, str]:
    return render_configs(tmp_path, overrides, models=models)


def csv(ids: range | tuple[int, ...]) -> str:
    return ",".join(str(i) for i in ids)


@pytest.fixture(autouse=True)
def no_cuda_at_build_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto` resolves to cpu here, as on a machine without CUDA, whatever machine runs the tests."""
    monkeypatch.setattr(build_module, "resolve_instance_kind", lambda value: "cpu" if value == "auto" else value)


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("model", GPU_MODELS)
def test_per_gpu_puts_instances_on_every_listed_gpu(tmp_path: Path, model: str, count: int) -> None:
    knobs: dict[str, Any] = {"instance_kind": "gpu"}
    per_gpu = 1
    if model != "text2semantic":  # text2semantic has no instance_count: one engine per GPU
        knobs["instance_count"] = per_gpu = 2
    config = render(tmp_path, {"shared": {"gpus": csv(range(count))}, model: knobs}, [model])[model]
    assert groups(config) == [(per_gpu, KIND_GPU, [gpu]) for gpu in range(count)]
    assert parsed(config).name == model


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("model", GPU_MODELS)
def test_split_pins_a_model_to_a_subset(tmp_path: Path, model: str, count: int) -> None:
    subset = tuple(range(4 - count, 4))  # the last `count` of GPUs 0-3
    knobs = {"instance_kind": "gpu", "placement": "split", "split_gpus": csv(subset)}
    config = render(tmp_path, {"shared": {"gpus": "0,1,2,3"}, model: knobs}, [model])[model]
    assert groups(config) == [(1, KIND_GPU, [gpu]) for gpu in subset]


def test_split_repository_text2semantic_on_0_1_codecs_on_2_3(tmp_path: Path) -> None:
    overrides = {
        "shared": {"gpus": parse_setting("shared.gpus=0,1,2,3")[2]},
        "text2semantic": {"instance_kind": "gpu", "placement": "split", "split_gpus": "0,1"},
        "codec_decoder": {"instance_kind": "gpu", "placement": "split", "split_gpus": [2, 3], "instance_count": 2},
        "codec_encoder": {"instance_kind": "gpu", "placement": "split", "split_gpus": 3},
    }
    configs = render_configs(tmp_path, overrides)
    assert groups(configs["text2semantic"]) == [(1, KIND_GPU, [0]), (1, KIND_GPU, [1])]
    assert groups(configs["codec_decoder"]) == [(2, KIND_GPU, [2]), (2, KIND_GPU, [3])]
    assert groups(configs["codec_encoder"]) == [(1, KIND_GPU, [3])]
    assert groups(configs["tts"]) == [(4, KIND_CPU, [])]  # BLS glue stays on the CPU, 4 processes by default
    for config in configs.values():
        parsed(config)  # every config is valid ModelConfig text


def test_gpu_instances_without_gpus_keep_tritons_default(tmp_path: Path) -> None:
    configs = render(tmp_path, {m: {"instance_kind": "gpu"} for m in GPU_MODELS}, list(GPU_MODELS))
    for model in GPU_MODELS:
        assert groups(configs[model]) == [(1, KIND_GPU, [])]


def test_default_build_is_one_cpu_group_per_model(tmp_path: Path) -> None:
    for name, config in render_configs(tmp_path).items():
        assert groups(config) == [(4 if name == "tts" else 1, KIND_CPU, [])], name  # tts: 4 BLS processes


def test_explicit_cpu_instances_ignore_the_shared_gpus(tmp_path: Path) -> None:
    overrides: dict[str, dict[str, Any]] = {
        "shared": {"gpus": "0,1"},
        "codec_encoder": {"instance_kind": "cpu", "instance_count": 3},
    }
    assert groups(render(tmp_path, overrides, ["codec_encoder"])["codec_encoder"]) == [(3, KIND_CPU, [])]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"codec_decoder": {}}, r"auto resolved to cpu .* lists \[0, 1\]"),
        ({"codec_decoder": {"instance_kind": "cpu", "placement": "split", "split_gpus": "0"}}, "needs GPU instances"),
        ({"codec_decoder": {"instance_kind": "cpu", "split_gpus": "1"}}, "needs GPU instances"),
        ({"codec_decoder": {"instance_kind": "gpu", "placement": "split"}}, "on no GPU; set split_gpus"),
        ({"codec_decoder": {"instance_kind": "gpu", "split_gpus": "1"}}, "only read with placement"),
        (
            {"codec_decoder": {"instance_kind": "gpu", "placement": "split", "split_gpus": "1,5"}},
            r"split_gpus \[5\] are not among the shared gpus \[0, 1\]",
        ),
        ({"codec_decoder": {"instance_kind": "gpu", "split_gpus": "1,1"}}, "unique"),
        ({"text2semantic": {"instance_kind": "gpu", "instance_count": 2}}, r"unknown knobs \['instance_count'\]"),
    ],
)
def test_placement_errors(tmp_path: Path, overrides: dict[str, dict[str, Any]], message: str) -> None:
    with pytest.raises(KnobError, match=message):
        render_configs(tmp_path, {"shared": {"gpus": "0,1"}, **overrides}, models=list(overrides))


@pytest.mark.parametrize(("gpus", "message"), [("0,2,2", "unique"), ("-1", "non-negative"), ("x", "GPU ids")])
def test_shared_gpus_are_validated(tmp_path: Path, gpus: str, message: str) -> None:
    with pytest.raises(KnobError, match=message):
        render_configs(tmp_path, {"shared": {"gpus": gpus}})


def test_a_model_with_placement_must_declare_its_companions(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "alpha").mkdir(parents=True)
    (source / "knobs.toml").write_text(
        '[knobs.checkpoint_dir]\ntype = "path"\ndescription = "c"\n'
        '[knobs.gpus]\ntype = "gpu_ids"\ndefault = ""\ndescription = "g"\n'
    )
    (source / "alpha" / "knobs.toml").write_text(
        'shared = ["checkpoint_dir", "gpus"]\n[knobs.placement]\ntype = "choice"\nchoices = ["per_gpu", "split"]\n'
        'default = "per_gpu"\ndescription = "p"\n[knobs.instance_kind]\ntype = "instance_kind"\n'
        'default = "gpu"\ndescription = "k"\n'
    )
    (source / "alpha" / "config.pbtxt.tmpl").write_text('name: "alpha"\n# ${checkpoint_dir}\n${instance_group}\n')
    with pytest.raises(KnobError, match=r"missing: \['split_gpus'\]"):
        render_configs(tmp_path, source=source)


def test_place_and_render_groups_directly() -> None:
    placed = place(
        kind="gpu", requested_kind="gpu", count=2, placement="per_gpu", gpus=(1, 3), split_gpus=(), where="m"
    )
    assert placed == [InstanceGroup(2, "gpu", 1), InstanceGroup(2, "gpu", 3)]
    text = render_groups(placed)
    assert text.startswith("instance_group [") and text.count("kind: KIND_GPU") == 2
    assert groups(text) == [(2, KIND_GPU, [1]), (2, KIND_GPU, [3])]
