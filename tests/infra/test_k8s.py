"""infra/k8s/: parseable manifests that kustomize lists, probes on every Deployment, non-root pods, Services and the
HPA pointing at what exists, settings that are real, and the same image entry points as compose. (No cluster or
kubeconform here: these are structural checks.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from voicereel.settings import Settings
from voicereel.stack import REPO_ROOT

INFRA = REPO_ROOT / "infra"
K8S = INFRA / "k8s"


def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return docs


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


def test_every_yaml_and_json_file_parses() -> None:
    files = [REPO_ROOT / "docker-compose.yml", REPO_ROOT / "docker-compose.gpu.yml"]
    files += sorted(p for p in INFRA.rglob("*") if p.suffix in (".yml", ".yaml", ".json"))
    assert len(files) >= 15
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            assert all(doc is not None for doc in yaml.safe_load_all(path.read_text())), path


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk
    images = {image["name"] for image in kustomization["images"]}
    used = {c["image"] for d in by_kind("Deployment").values() for c in d["spec"]["template"]["spec"]["containers"]}
    assert used == images


@pytest.mark.parametrize("name", ["gateway", "worker", "triton"])
def test_deployments_have_probes_and_run_unprivileged(name: str) -> None:
    deployment = by_kind("Deployment")[name]
    template = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    pod = template["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    assert "livenessProbe" in container and "startupProbe" in container, name
    if name != "worker":  # the worker serves nothing: no readiness
        assert "readinessProbe" in container
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    if name == "triton":
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    if name == "gateway":
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    if name == "worker":
        assert container["livenessProbe"]["exec"]["command"] == ["python", "/app/infra/docker/healthcheck.py", "worker"]


def test_services_and_hpa_point_at_deployments() -> None:
    deployments = by_kind("Deployment")
    for name, service in by_kind("Service").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name
        container_ports = {
            p["name"] for c in deployments[name]["spec"]["template"]["spec"]["containers"] for p in c["ports"]
        }
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports, name
    (hpa,) = by_kind("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_settings_are_real_and_secrets_stay_out_of_the_configmap() -> None:
    fields = {f"VR_{name.upper()}" for name in Settings.model_fields}
    (config,) = by_kind("ConfigMap").values()
    data = config["data"]
    assert set(data) <= fields, sorted(set(data) - fields)
    secret_fields = {f"VR_{n.upper()}" for n, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)}
    assert not secret_fields & set(data), "secrets belong in the Secret, not the ConfigMap"
    assert "VR_DATABASE_URL" not in data and "VR_REDIS_URL" not in data  # they carry passwords
    secrets = {"url_signing_secret": "x", "key_signing_secret": "x", "admin_token": "x"}  # from the Secret
    settings = Settings.model_validate({**{k[3:].lower(): v for k, v in data.items()}, **secrets})
    assert settings.profile.value == "prod" and settings.port == int(data["VR_PORT"])
    for deployment in by_kind("Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for entry in container.get("env", []):
                assert not entry["name"].startswith("VR_") or entry["name"] in fields, entry


def test_triton_gets_the_same_gpu_knobs_as_compose() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.gpu.yml").read_text())
    (container,) = by_kind("Deployment")["triton"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELREPO_SET"].split() == compose["services"]["triton"]["environment"]["MODELREPO_SET"].split()
    assert env["VR_PROFILE"] == "prod"


def test_gateway_port_matches_the_image() -> None:
    (config,) = by_kind("ConfigMap").values()
    (container,) = by_kind("Deployment")["gateway"]["spec"]["template"]["spec"]["containers"]
    assert container["ports"][0]["containerPort"] == int(config["data"]["VR_PORT"])
    assert "EXPOSE 8080" in (INFRA / "docker" / "Dockerfile").read_text()
