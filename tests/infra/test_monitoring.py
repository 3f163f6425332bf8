"""Prometheus rules and config, Alertmanager routing, and the Grafana dashboard: checked by the real tools, and every
metric name they use checked against what the gateway and Triton really expose."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import yaml

from voicereel.stack import REPO_ROOT

INFRA = REPO_ROOT / "infra"
ALERTS = INFRA / "prometheus" / "alerts.yml"
DASHBOARD = INFRA / "grafana" / "dashboards" / "voicereel.json"
Runner = Callable[..., subprocess.CompletedProcess[str]]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


# --- the extractor the name checks rely on -------------------------------------------------------------------


def test_metric_name_extraction(metric_names_in: Callable[[str], set[str]]) -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, route) (rate(voicereel_http_request_duration_seconds_bucket"
        '{method="GET", route!~"/v1/files/.*|up"}[5m]))) > 1e6 and on (job) up{job="x"} == 0 '
        "unless ignoring(model) nv_gpu_utilization offset 5m / sum without (gpu_uuid) (nv_gpu_power_usage)"
        "[$__rate_interval:1m]"
    )
    assert metric_names_in(expr) == {
        "voicereel_http_request_duration_seconds_bucket",
        "up",
        "nv_gpu_utilization",
        "nv_gpu_power_usage",
    }


# --- Prometheus ------------------------------------------------------------------------------------------------


def test_promtool_checks_rules_and_config(run_cli: Runner) -> None:
    rules = run_cli("promtool", "check", "rules", str(ALERTS))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in rules.stdout
    config = run_cli("promtool", "check", "config", str(INFRA / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_alert_unit_tests_pass(run_cli: Runner) -> None:
    """infra/prometheus/alerts_test.yml: each alert fires on a synthetic incident and stays silent on a near miss."""
    result = run_cli("promtool", "test", "rules", str(INFRA / "prometheus" / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = yaml.safe_load((INFRA / "prometheus" / "alerts_test.yml").read_text())
    names = {case["alertname"] for test in tested["tests"] for case in test.get("alert_rule_test", [])}
    assert names == {rule["alert"] for rule in alert_rules()}, "every alert needs a promtool unit test"


def test_alerts_use_only_exposed_metrics(
    metric_names_in: Callable[[str], set[str]], all_known_series: set[str]
) -> None:
    for rule in alert_rules():
        used = metric_names_in(rule["expr"])
        assert used, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        unknown = used - all_known_series
        assert not unknown, f"{rule['alert']} uses metrics nothing exposes: {sorted(unknown)}"


def test_alert_bucket_bounds_exist(gateway_exposition: str) -> None:
    """An `le` matcher must name a bucket bound the gateway's histogram really has (the text differs: 60 vs 60.0)."""
    import re

    bounds = set(re.findall(r'_bucket\{[^}]*le="([^"]+)"', gateway_exposition))
    assert "+Inf" in bounds
    for rule in alert_rules():
        for bound in re.findall(r'le="([^"]+)"', rule["expr"]):
            assert bound in bounds, f"{rule['alert']}: no bucket le={bound!r}; the gateway has {sorted(bounds)}"


def test_alerts_cover_the_required_failures(metric_names_in: Callable[[str], set[str]]) -> None:
    """5xx ratio, p99 latency, queue depth growth, failing jobs, Triton down, GPU memory: each has an alert on the
    metric that shows it, with a severity Alertmanager routes."""
    by_metric: dict[str, set[str]] = {}
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        for name in metric_names_in(rule["expr"]):
            by_metric.setdefault(name, set()).add(rule["alert"])
    for needed in (
        "voicereel_http_requests_total",
        "voicereel_http_request_duration_seconds_bucket",
        "voicereel_queue_depth",
        "voicereel_jobs",
        "up",
        "nv_inference_request_failure",
        "nv_gpu_memory_used_bytes",
    ):
        assert needed in by_metric, f"no alert watches {needed}"


def test_scrape_targets_match_the_compose_services(compose_configs: dict[tuple[str, str], dict[str, Any]]) -> None:
    config = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    services = compose_configs[("base", "dev.env")]["services"]
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets["gateway"] == f"gateway:{services['gateway']['environment']['VR_PORT']}"
    entrypoint = (INFRA / "docker" / "triton-entrypoint.sh").read_text()
    host, port = targets["triton"].split(":")
    assert host in services and f"--metrics-port={port}" in entrypoint
    for job, target in targets.items():
        host = target.split(":")[0]
        assert host == "localhost" or host in services, f"scrape job {job}: {host} is not a compose service"
    alertmanager = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    assert alertmanager.split(":")[0] in services


# --- Alertmanager ----------------------------------------------------------------------------------------------


def test_alertmanager_config_and_routes(run_cli: Runner) -> None:
    config = str(INFRA / "alertmanager" / "alertmanager.yml")
    check = run_cli("amtool", "check-config", config)
    assert check.returncode == 0, check.stdout + check.stderr

    def receivers(*labels: str) -> str:
        result = run_cli("amtool", "config", "routes", "test", f"--config.file={config}", *labels)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip()

    assert receivers("severity=page", "alertname=TritonNotReady") == "pagerduty,slack"
    assert receivers("severity=ticket", "alertname=TritonGpuMemoryHigh") == "slack"


def test_alertmanager_secrets_are_placeholders_in_files_compose_mounts(
    compose_configs: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Receivers read their URL/key from files that compose mounts as secrets; the committed files are
    placeholders, so no webhook or routing key is ever in git."""
    config = yaml.safe_load((INFRA / "alertmanager" / "alertmanager.yml").read_text())
    paths = {
        value
        for receiver in config["receivers"]
        for kind in receiver.values()
        if isinstance(kind, list)
        for entry in kind
        for key, value in entry.items()
        if key.endswith("_file")
    }
    compose = compose_configs[("base", "prod.env")]
    mounted = {
        f"/run/secrets/{entry if isinstance(entry, str) else entry['source']}"
        for entry in compose["services"]["alertmanager"]["secrets"]
    }
    assert paths == mounted
    for name, secret in compose["secrets"].items():
        text = (REPO_ROOT / secret["file"]).read_text()
        assert "CHANGE_ME" in text, f"committed secret file of {name} must be a placeholder"


# --- Grafana ---------------------------------------------------------------------------------------------------


def test_dashboard_queries_use_only_exposed_metrics(
    metric_names_in: Callable[[str], set[str]], all_known_series: set[str]
) -> None:
    targets = dashboard_targets()
    assert targets
    used: set[str] = set()
    for title, expr in targets:
        names = metric_names_in(expr)
        assert names, f"panel {title!r}: no metric in {expr!r}"
        unknown = names - all_known_series
        assert not unknown, f"panel {title!r} queries metrics nothing exposes: {sorted(unknown)}"
        used |= names
    # requests, latency, queue depth, jobs by state, Triton queue and compute time, GPU utilisation and memory
    for needed in (
        "voicereel_http_requests_total",
        "voicereel_http_request_duration_seconds_bucket",
        "voicereel_queue_depth",
        "voicereel_jobs",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_gpu_utilization",
        "nv_gpu_memory_used_bytes",
    ):
        assert needed in used, f"no dashboard panel shows {needed}"


def test_dashboard_is_importable_and_provisioned(
    compose_configs: dict[tuple[str, str], dict[str, Any]], mounts_of: Callable[[dict[str, Any]], dict[str, str]]
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]

    provider = yaml.safe_load((INFRA / "grafana" / "provisioning" / "dashboards" / "voicereel.yml").read_text())
    datasource = yaml.safe_load((INFRA / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    grafana = compose_configs[("base", "dev.env")]["services"]["grafana"]
    mounts = mounts_of(grafana)
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert (REPO_ROOT / mounts[dashboards_dir] / DASHBOARD.name).is_file()
    assert (REPO_ROOT / mounts["/etc/grafana/provisioning"]).resolve() == INFRA / "grafana" / "provisioning"
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
