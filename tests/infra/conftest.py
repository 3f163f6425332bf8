"""Fixtures for the infra tests: the resolved compose configurations, the CLI tools that check Prometheus and
Alertmanager files, and the metric names that the gateway and Triton really expose.

promtool (Debian `prometheus`), amtool (`prometheus-alertmanager`) and docker-compose (`docker-compose`, v1: it
resolves and validates compose files offline, without a Docker engine) are required: a missing one fails the
test with the install command instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from voicereel.stack import REPO_ROOT, Supervisor, TritonPorts, triton_service

INFRA = REPO_ROOT / "infra"
COMPOSE_FILES = {"base": ["docker-compose.yml"], "gpu": ["docker-compose.yml", "docker-compose.gpu.yml"]}
ENV_FILES = sorted((INFRA / "env").glob("*.env"))
TOOLS = {"promtool": "prometheus", "amtool": "prometheus-alertmanager", "docker-compose": "docker-compose"}
# Recorded from tritonserver 2.51 (the nvidia-pytriton 0.7.0 build) on an NVIDIA H200: GPU metrics need a GPU.
TRITON_GPU_EXPOSITION = Path(__file__).with_name("data") / "triton_2.51_gpu_metrics.prom"
# Series that no VoiceReel process exposes: Prometheus' own `up`, and the exporters' liveness gauges as the
# exporters document them (oliver006/redis_exporter: redis_up; prometheus-community/postgres_exporter: pg_up).
SYNTHETIC_AND_EXPORTER_SERIES = frozenset({"up", "redis_up", "pg_up"})


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install -y {TOOLS[name]} (Makefile SYSTEM_PACKAGES)")
    return path


def run_tool(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(argv[0]), *argv[1:]],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def compose_config(files: list[str], env_file: Path) -> dict[str, Any]:
    """`docker-compose config` (all profiles) with VOICEREEL_ENV_FILE=env_file: anchors, overrides and env files
    resolved, and the result validated against compose's schema."""
    argv = ["docker-compose", "--profile", "monitoring"]
    for name in files:
        argv += ["-f", name]
    result = run_tool([*argv, "config"], VOICEREEL_ENV_FILE=str(env_file.relative_to(REPO_ROOT)))
    assert result.returncode == 0, f"docker-compose config failed for {files} + {env_file.name}:\n{result.stderr}"
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """A resolved compose service's mounts, target -> source (a host path or a volume name)."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts[target] = source
    return mounts


@pytest.fixture
def mounts_of() -> Callable[[dict[str, Any]], dict[str, str]]:
    return volume_mounts


@pytest.fixture(scope="session")
def compose_configs() -> dict[tuple[str, str], dict[str, Any]]:
    """Resolved compose configuration for each (file set, env file) pair."""
    return {
        (label, env.name): compose_config(files, env) for label, files in COMPOSE_FILES.items() for env in ENV_FILES
    }


# --- metric names ------------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_IDENT = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?!\w)(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"inf", "nan", "atan2", "e"}
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, keywords, label names, strings,
    durations or numbers."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub("", text)
    text = _BRACKETS.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]")
_TYPE = re.compile(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|untyped)$")


def exposed_series(exposition: str) -> set[str]:
    """Series names in a Prometheus text exposition, exactly as written: every sample's name, and gauges that
    have no sample yet. (prometheus_client's parser would rename Triton's counters, which lack `_total`.)"""
    names: set[str] = set()
    for line in exposition.splitlines():
        match = _SAMPLE.match(line) or _TYPE.match(line)
        if match:
            names.add(match.group(1))
    return names


@pytest.fixture(scope="session")
def gateway_exposition(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> str:
    """The real gateway app's /metrics (after one request), on a migrated SQLite database and the session's Redis."""
    import anyio
    import httpx

    from gateway.app import create_app
    from voicereel.db.migrate import upgrade_database
    from voicereel.settings import Settings

    root = tmp_path_factory.mktemp("infra-gateway")
    settings = Settings(
        _env_file=None,
        profile="test",
        data_dir=root,
        storage_dir=root / "storage",
        database_url=f"sqlite:///{root / 'voicereel.db'}",
        redis_url=redis_url,
        triton_http_url="http://127.0.0.1:9",
    )
    upgrade_database(settings.effective_database_url)
    app = create_app(settings)

    async def scrape() -> str:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
                assert (await client.get("/healthz")).status_code == 200
                response = await client.get("/metrics")
                assert response.status_code == 200, response.text
                return response.text

    return anyio.run(scrape)


@pytest.fixture(scope="session")
def triton_cpu_exposition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a real tritonserver 2.51 (the binary `make run` uses) after one inference of a one-line python
    model: Triton's per-model metric families appear only once a model is loaded."""
    root = tmp_path_factory.mktemp("infra-triton")
    model = root / "repository" / "echo"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(
        'name: "echo"\nbackend: "python"\nmax_batch_size: 8\n'
        'input [ { name: "x", data_type: TYPE_FP32, dims: [ -1 ] } ]\n'
        'output [ { name: "y", data_type: TYPE_FP32, dims: [ -1 ] } ]\n'
        "instance_group [ { kind: KIND_CPU, count: 1 } ]\ndynamic_batching { }\n"
    )
    (model / "1" / "model.py").write_text(
        "import triton_python_backend_utils as pb_utils\n\n\n"
        "class TritonPythonModel:\n"
        "    def execute(self, requests):\n"
        "        return [pb_utils.InferenceResponse([pb_utils.Tensor('y', pb_utils.get_input_tensor_by_name(r, 'x')"
        ".as_numpy())]) for r in requests]\n"
    )
    ports = TritonPorts.free()
    with Supervisor(root / "logs") as supervisor:
        supervisor.start(triton_service(model.parent, ports, root / "work", root / "logs", timeout_s=90))
        body = json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports.http}/v2/models/echo/infer",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert json.loads(resp.read())["outputs"][0]["data"] == [1.0, 2.0, 3.0]
        with urllib.request.urlopen(f"http://127.0.0.1:{ports.metrics}/metrics", timeout=10) as resp:
            yield resp.read().decode()


@pytest.fixture(scope="session")
def known_series(gateway_exposition: str, triton_cpu_exposition: str) -> dict[str, set[str]]:
    """Series names by source: the gateway's live /metrics, Triton on CPU (live) and on a GPU (recorded)."""
    return {
        "gateway": exposed_series(gateway_exposition),
        "triton": exposed_series(triton_cpu_exposition) | exposed_series(TRITON_GPU_EXPOSITION.read_text()),
        "other": set(SYNTHETIC_AND_EXPORTER_SERIES),
    }


@pytest.fixture(scope="session")
def all_known_series(known_series: dict[str, set[str]]) -> set[str]:
    return set().union(*known_series.values())


@pytest.fixture
def metric_names_in() -> Callable[[str], set[str]]:
    return promql_metric_names


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run one of TOOLS in the repository root (fails the test, with the install command, when it is missing)."""
    return lambda *argv, **env: run_tool(list(argv), **env)
