"""docker-compose.yml and docker-compose.gpu.yml, resolved by docker-compose itself for every env profile: valid
against compose's schema, referring only to files that exist, configuring only real settings, and giving Triton a
GPU with knobs the model repository really declares."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from voicereel.modelrepo.__main__ import parse_setting
from voicereel.modelrepo.build import render_configs
from voicereel.settings import Settings
from voicereel.stack import REPO_ROOT

Configs = dict[tuple[str, str], dict[str, Any]]
MountsOf = Callable[[dict[str, Any]], dict[str, str]]


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, int]]:
    """(host address or None for all, container port) of each published port; docker-compose v1 prints
    `[host_ip:]published:target[/proto]` strings."""
    out = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.append((entry.get("host_ip"), int(entry["target"])))
            continue
        parts = entry.split("/")[0].split(":")
        out.append((parts[0] if len(parts) == 3 else None, int(parts[-1])))
    return out


# Host paths a user provides (gitignored): the real checkpoint from `make weights`.
USER_PROVIDED = {REPO_ROOT / "checkpoints"}


def test_every_profile_resolves_and_keeps_the_services(compose_configs: Configs) -> None:
    """docker-compose config succeeds (schema, interpolation, env files found) for each file set and profile."""
    assert {env for _, env in compose_configs} == {"dev.env", "staging.env", "prod.env"}
    for (files, env), config in compose_configs.items():
        services = set(config["services"])
        expected = {"gateway", "worker", "storage-init", "triton", "redis", "postgres", "minio"}
        assert expected <= services, (files, env, expected - services)
        assert {"prometheus", "alertmanager", "grafana", "redis-exporter", "postgres-exporter"} <= services


def test_builds_and_bind_mounts_point_at_files_that_exist(compose_configs: Configs, mounts_of: MountsOf) -> None:
    for config in compose_configs.values():
        for name, service in config["services"].items():
            build = service.get("build")
            if build:
                dockerfile = Path(build["context"]) / build["dockerfile"]
                assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
                if "target" in build:
                    stages = [
                        line.split()[-1]
                        for line in dockerfile.read_text().splitlines()
                        if line.upper().startswith("FROM ") and " AS " in line.upper()
                    ]
                    assert build["target"] in stages, f"{name}: no stage {build['target']!r} in {dockerfile}"
            for target, source in mounts_of(service).items():
                if source.startswith("/"):
                    assert Path(source).exists() or Path(source) in USER_PROVIDED, f"{name}: {source} -> {target}"
                else:
                    assert source in config["volumes"], f"{name}: undeclared volume {source}"
        for secret in config.get("secrets", {}).values():
            assert Path(secret["file"]).is_file(), secret


def test_images_built_here_are_tagged_and_shared(compose_configs: Configs) -> None:
    services = compose_configs[("base", "dev.env")]["services"]
    assert services["storage-init"]["image"] == services["worker"]["image"], "storage-init runs the worker image"
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag ({image})"


def test_health_checks_gate_the_start_order(compose_configs: Configs) -> None:
    services = compose_configs[("base", "dev.env")]["services"]
    for name in ("gateway", "worker", "triton", "redis", "postgres", "minio"):
        check = services[name]["healthcheck"]
        assert check.get("test") and not check.get("disable"), f"{name} needs a health check"
    gateway_deps = services["gateway"]["depends_on"]
    assert gateway_deps["postgres"]["condition"] == "service_healthy"
    assert gateway_deps["redis"]["condition"] == "service_healthy"
    assert gateway_deps["storage-init"]["condition"] == "service_completed_successfully"
    worker_deps = services["worker"]["depends_on"]
    assert {worker_deps[s]["condition"] for s in ("postgres", "redis", "triton")} == {"service_healthy"}
    assert services["storage-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    # Health checks run the component's own probe, at the port the gateway is told to bind.
    assert services["gateway"]["healthcheck"]["test"][-2:] == ["/app/infra/docker/healthcheck.py", "gateway"]
    assert services["worker"]["healthcheck"]["test"][-2:] == ["/app/infra/docker/healthcheck.py", "worker"]
    assert published_ports(services["gateway"]) == [(None, int(services["gateway"]["environment"]["VR_PORT"]))]


def test_worker_scales(compose_configs: Configs) -> None:
    """`--scale worker=N` needs no fixed container name and no published port."""
    worker = compose_configs[("base", "dev.env")]["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker


def test_every_vr_variable_is_a_settings_field(compose_configs: Configs) -> None:
    fields = {f"VR_{name.upper()}" for name in Settings.model_fields}
    for (files, env), config in compose_configs.items():
        for name, service in config["services"].items():
            unknown = {key for key in service.get("environment", {}) if key.startswith("VR_")} - fields
            assert not unknown, f"{files}/{env}: {name} sets {sorted(unknown)}, which Settings does not have"


def test_app_containers_are_locked_down(compose_configs: Configs) -> None:
    services = compose_configs[("base", "prod.env")]["services"]
    for name in ("gateway", "worker", "storage-init"):
        service = services[name]
        assert service["read_only"] is True, name
        assert "ALL" in service["cap_drop"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_gpu_override_reserves_a_gpu_with_declared_knobs(compose_configs: Configs, tmp_path: Path) -> None:
    base = compose_configs[("base", "dev.env")]["services"]["triton"]
    gpu = compose_configs[("gpu", "dev.env")]["services"]["triton"]
    assert "deploy" not in base and not base["environment"]["MODELREPO_SET"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]

    # MODELREPO_SET goes to `python -m voicereel.modelrepo build --set ...` at start: render it for real.
    overrides: dict[str, dict[str, Any]] = {}
    for setting in shlex.split(gpu["environment"]["MODELREPO_SET"]):  # the entrypoint splits on whitespace too
        scope, knob, value = parse_setting(setting)
        overrides.setdefault(scope, {})[knob] = value
    configs = render_configs(tmp_path / "checkpoint", overrides)
    for model in ("text2semantic", "codec_encoder", "codec_decoder"):
        assert "KIND_GPU" in configs[model] and "KIND_CPU" not in configs[model], model
    assert "bfloat16" in configs["text2semantic"]


@pytest.mark.parametrize("env", ["staging.env", "prod.env"])
def test_prod_like_profiles_do_not_publish_datastores_to_the_world(compose_configs: Configs, env: str) -> None:
    services = compose_configs[("base", env)]["services"]
    for name, service in services.items():
        for host_ip, port in published_ports(service):
            if name != "gateway":
                assert host_ip == "127.0.0.1", f"{name} publishes port {port} beyond localhost"
