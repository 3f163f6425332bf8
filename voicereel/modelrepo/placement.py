"""Where a model's Triton instances run: its `instance_group` block, one group per GPU.

A model opts in by declaring the knob `placement` (choice per_gpu | split) together with `instance_kind`,
`split_gpus` (gpu_ids) and, optionally, `instance_count` (without it: one instance per GPU, as text2semantic
needs: one engine owns a GPU's KV slots), and by using the repository-wide knob `gpus`. Its template then has
`${instance_group}` where the block goes, and none of those knobs on their own.

- GPU instances, `per_gpu`: `instance_count` instances on every GPU of the shared `gpus`, one group per GPU
  (`gpus: [i]`). With `gpus` empty, one group without `gpus`, Triton's default: that many instances on every
  visible GPU.
- GPU instances, `split`: the same, on the model's own `split_gpus` only (a subset of `gpus` when that is set),
  so that an operator can give text2semantic GPUs 0-1 and codec_decoder GPUs 2-3.
- CPU instances: one CPU group. An explicit `instance_kind = "cpu"` ignores the shared `gpus` (that model runs on
  the CPU on purpose, e.g. the ONNX codec without a CUDA provider). Errors: `split` or `split_gpus` on CPU
  instances, and `auto` resolving to cpu (no CUDA at build time) while `gpus` lists GPUs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voicereel.modelrepo.filler import Block
from voicereel.modelrepo.knobs import Knob, KnobError

BLOCK = "instance_group"
PLACEMENT = "placement"
SHARED_GPUS = "gpus"
SPLIT_GPUS = "split_gpus"
COUNT = "instance_count"
KIND = "instance_kind"
PER_GPU, SPLIT = "per_gpu", "split"


@dataclass(frozen=True)
class InstanceGroup:
    count: int
    kind: str  # "cpu" or "gpu"
    gpu: int | None = None  # None: the kind's default placement


def place(
    *,
    kind: str,
    requested_kind: str,
    count: int,
    placement: str,
    gpus: tuple[int, ...],
    split_gpus: tuple[int, ...],
    where: str,
) -> list[InstanceGroup]:
    """The instance groups of one model. `kind` is the resolved instance kind, `requested_kind` the knob's value
    before `auto` was resolved."""
    if kind == "cpu":
        if placement == SPLIT or split_gpus:
            raise KnobError(
                f"{where}: placement {placement!r} with split_gpus {list(split_gpus)} needs GPU instances, "
                "but instance_kind is cpu"
            )
        if gpus and requested_kind == "auto":
            raise KnobError(
                f"{where}: instance_kind auto resolved to cpu (no CUDA visible at build time) while shared gpus "
                f'lists {list(gpus)}; set instance_kind = "gpu" to build for a GPU host, or "cpu" to keep this '
                "model on the CPU"
            )
        return [InstanceGroup(count, "cpu")]
    if placement == PER_GPU:
        if split_gpus:
            raise KnobError(
                f'{where}: split_gpus {list(split_gpus)} is only read with placement = "split" '
                "(per_gpu uses the shared gpus)"
            )
        if not gpus:
            return [InstanceGroup(count, "gpu")]
        targets = gpus
    elif placement == SPLIT:
        if not split_gpus:
            raise KnobError(f'{where}: placement split puts the model on no GPU; set split_gpus, e.g. "0,1"')
        outside = [gpu for gpu in split_gpus if gpus and gpu not in gpus]
        if outside:
            raise KnobError(f"{where}: split_gpus {outside} are not among the shared gpus {list(gpus)}")
        targets = split_gpus
    else:
        raise KnobError(f"{where}: placement must be {PER_GPU!r} or {SPLIT!r}, got {placement!r}")
    return [InstanceGroup(count, "gpu", gpu) for gpu in targets]


def render_groups(groups: list[InstanceGroup]) -> str:
    """Triton's `instance_group [...]` text (protobuf text format)."""
    entries = []
    for group in groups:
        lines = [f"    count: {group.count}", f"    kind: {'KIND_GPU' if group.kind == 'gpu' else 'KIND_CPU'}"]
        if group.gpu is not None:
            lines.append(f"    gpus: [ {group.gpu} ]")
        entries.append("  {\n" + "\n".join(lines) + "\n  }")
    return "instance_group [\n" + ",\n".join(entries) + "\n]"


def placement_block(
    knobs: Mapping[str, Knob],
    shared: tuple[str, ...],
    values: Mapping[str, Any],
    given: Mapping[str, Any],
    where: str,
) -> Block | None:
    """The `instance_group` block of a model that declares `placement` (None for one that does not).

    `knobs` are the model's own declarations, `shared` the shared knobs it uses, `values` its resolved values
    (shared ones included), `given` its overrides (for the instance kind as requested, before `auto`).
    """
    if PLACEMENT not in knobs:
        return None
    needed = sorted({KIND, SPLIT_GPUS} - set(knobs))
    if needed or SHARED_GPUS not in shared:
        raise KnobError(
            f"{where}: a model with knob {PLACEMENT!r} also declares {sorted({KIND, SPLIT_GPUS})} and uses the "
            f"shared knob {SHARED_GPUS!r} (missing: {needed + ([] if SHARED_GPUS in shared else [SHARED_GPUS])})"
        )
    kind_knob = knobs[KIND]
    requested_kind = kind_knob.coerce(given[KIND], where) if KIND in given else kind_knob.default
    groups = place(
        kind=values[KIND],
        requested_kind=requested_kind,
        count=values.get(COUNT, 1),
        placement=values[PLACEMENT],
        gpus=values[SHARED_GPUS],
        split_gpus=values[SPLIT_GPUS],
        where=where,
    )
    consumed = {PLACEMENT, KIND, SPLIT_GPUS, SHARED_GPUS} | ({COUNT} if COUNT in knobs else set())
    return Block(render_groups(groups), frozenset(consumed))
