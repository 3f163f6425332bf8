"""Gateway load benchmark: requests/s and latency percentiles of `GET /v1/jobs/{id}` and `POST /v1/synthesize`.

    .venv/bin/python perf/gateway_load.py [--workers 2] [--duration 20] [--connections 64]

What it runs, all on this machine:
- a fresh PostgreSQL database on the machine's server and our own redis-server on a free port;
- the gateway as deployed: `python -m gateway` (uvicorn, `--workers` processes, access log on, PROMETHEUS
  multiprocess), migrated at start;
- an API key from `python -m gateway.admin create-key` (rate limit and quota set high enough not to interfere), one
  ready speaker row (as the worker leaves it after registration) and one job to read;
- the load from a separate process: wrk (Debian package `wrk`) with a Lua script per scenario, after a warm-up.

Every response is checked by wrk's Lua `response` hook: anything but the expected status counts as an error.
No RQ worker drains the queue during the POST run (the gateway's cost ends at the enqueue).

Figures go to `perf/results/gateway_load-<git sha>.json` and are printed. Targets (issue 4): GET >= 1000 req/s with
p99 <= 50 ms; POST >= 300 req/s with zero errors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicereel.stack import REPO_ROOT, Supervisor, ensure_postgres, free_port, http_ok, python_service, redis_service  # noqa: E402

RESULTS = REPO / "perf" / "results"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

# wrk Lua: the request, and a response hook counting unexpected statuses (wrk's own counter only sees >= 400).
LUA = """
wrk.method = "{method}"
wrk.headers["X-VR-APIKEY"] = "{key}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
local unexpected = 0
function response(status, headers, body)
  if status ~= {expected} then
    unexpected = unexpected + 1
    if unexpected <= 3 then io.stderr:write("unexpected " .. status .. ": " .. body .. "\\n") end
  end
end
function done(summary, latency, requests)
  local p = {{50, 75, 90, 99, 99.9}}
  local out = {{}}
  for _, q in ipairs(p) do
    out[#out + 1] = string.format('"p%s_ms": %.3f', tostring(q), latency:percentile(q) / 1000)
  end
  io.write(string.format('RESULT {{"requests": %d, "duration_s": %.3f, "rps": %.1f, "mean_ms": %.3f, ' ..
    '"max_ms": %.3f, "socket_errors": %d, "status_errors": %d, "timeouts": %d, %s}}\\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6), latency.mean / 1000,
    latency.max / 1000, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.status, summary.errors.timeout, table.concat(out, ", ")))
end
"""


def git_sha() -> str:
    sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "gateway", "voicereel"], cwd=REPO, capture_output=True, text=True
    ).stdout
    return sha.strip() + ("-dirty" if dirty.strip() else "")


def make_database() -> tuple[str, str]:
    ensure_postgres()
    name = f"vr_perf_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ready_speaker(db_url: str, project_id: str) -> str:
    """A speaker as the worker leaves it after registration (the benchmark measures the gateway, not Triton)."""
    from sqlmodel import Session

    from voicereel.db.models import Speaker, SpeakerStatus
    from voicereel.db.session import make_engine
    from voicereel.ids import new_id

    engine = make_engine(db_url)
    speaker_id = new_id("spk")
    with Session(engine) as session:
        session.add(
            Speaker(
                id=speaker_id,
                project_id=project_id,
                name="bench",
                lang="en",
                status=SpeakerStatus.ready,
                reference_key=f"uploads/{project_id}/{speaker_id}/reference",
                reference_text="x",
            )
        )
        session.commit()
    engine.dispose()
    return speaker_id


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by every live process in a process group."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: process group
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def run_wrk(url: str, lua: str, *, duration: int, connections: int, threads: int, workdir: Path) -> dict:
    script = workdir / f"scenario-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(lua)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed:\n{out.stdout}\n{out.stderr}")
    result = json.loads(line.removeprefix("RESULT "))
    unexpected = re.findall(r"^unexpected (\d+)", out.stderr, re.MULTILINE)
    result["unexpected_status_samples"] = out.stderr.strip().splitlines()[:3]
    result["unexpected_status_seen"] = bool(unexpected)
    result["command"] = " ".join(argv)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="gateway (uvicorn) processes")
    parser.add_argument("--duration", type=int, default=20, help="seconds of measured load per scenario")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of unmeasured load before each scenario")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--access-log", choices=("on", "off"), default="on")
    parser.add_argument(
        "--baseline", action="store_true", help="also measure GET /healthz (no key, no database): the serving floor"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="vr-gateway-load-"))
    db_name, db_url = make_database()
    try:
        with Supervisor(work / "logs") as sup:
            redis_port = free_port()
            sup.start(redis_service(redis_port, work / "logs"))
            port = free_port()
            env = {
                "VR_PROFILE": "test",
                "VR_HOST": "127.0.0.1",
                "VR_PORT": str(port),
                "VR_WORKERS": str(args.workers),
                "VR_DATABASE_URL": db_url,
                "VR_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "VR_DATA_DIR": str(work),
                "VR_STORAGE_DIR": str(work / "storage"),
                "VR_ACCESS_LOG": "true" if args.access_log == "on" else "false",
                "VR_LOG_LEVEL": "INFO",
            }
            os.environ.update({k: v for k, v in env.items() if k in ("VR_DATABASE_URL", "VR_PROFILE")})
            key = json.loads(
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "gateway.admin",
                        "create-key",
                        "--project",
                        "bench",
                        "--rate-limit",
                        "100000000",
                        "--quota",
                        "2000000000",
                        "--json",
                    ],
                    env={**os.environ, **env},
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=REPO_ROOT,
                ).stdout
            )
            speaker_id = ready_speaker(db_url, key["project_id"])
            gateway = sup.start(
                python_service(
                    "gateway", ["-m", "gateway"], http_ok(f"http://127.0.0.1:{port}/healthz"), env, work / "logs"
                )
            )
            assert gateway.process is not None
            base = f"http://127.0.0.1:{port}"
            body = json.dumps(
                {
                    "script": [
                        {"speaker_id": speaker_id, "text": "Good morning, this is a benchmark line."},
                        {"speaker_id": speaker_id, "text": "And a second line."},
                    ]
                }
            )
            import httpx

            first = httpx.post(
                f"{base}/v1/synthesize",
                content=body,
                headers={"X-VR-APIKEY": key["api_key"], "Content-Type": "application/json"},
            )
            first.raise_for_status()
            job_id = first.json()["job_id"]
            scenarios = {
                "get_job": (
                    f"{base}/v1/jobs/{job_id}",
                    LUA.format(method="GET", key=key["api_key"], body="nil", expected=200),
                ),
                "post_synthesize": (
                    f"{base}/v1/synthesize",
                    LUA.format(method="POST", key=key["api_key"], body=json.dumps(body), expected=202),
                ),
            }
            if args.baseline:
                scenarios = {
                    "healthz": (f"{base}/healthz", LUA.format(method="GET", key="", body="nil", expected=200)),
                    **scenarios,
                }
            results = {}
            for name, (url, lua) in scenarios.items():
                run_wrk(
                    url, lua, duration=args.warmup, connections=args.connections, threads=args.threads, workdir=work
                )
                load_before = os.getloadavg()
                cpu_before = group_cpu_s(gateway.process.pid)
                results[name] = run_wrk(
                    url, lua, duration=args.duration, connections=args.connections, threads=args.threads, workdir=work
                )
                cpu = group_cpu_s(gateway.process.pid) - cpu_before
                results[name]["loadavg_before"] = [round(x, 2) for x in load_before]
                results[name]["gateway_cpu_ms_per_request"] = round(cpu * 1000 / max(1, results[name]["requests"]), 3)
                print(
                    f"{name}: {results[name]['rps']:.0f} req/s, p50 {results[name]['p50_ms']:.1f} ms, "
                    f"p99 {results[name]['p99_ms']:.1f} ms, errors {results[name]['socket_errors']} socket / "
                    f"{results[name]['status_errors']} status / {results[name]['timeouts']} timeouts; "
                    f"gateway CPU {results[name]['gateway_cpu_ms_per_request']:.2f} ms/request, "
                    f"load before {results[name]['loadavg_before'][0]}"
                    + (" (unexpected statuses seen)" if results[name]["unexpected_status_seen"] else "")
                )
            queued = httpx.get(f"{base}/v1/jobs?status=queued&limit=1", headers={"X-VR-APIKEY": key["api_key"]}).json()[
                "total"
            ]
    finally:
        drop_database(db_name)
        shutil.rmtree(work, ignore_errors=True)

    sha = git_sha()
    report = {
        "sha": sha,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu": _cpu_model(),
        },
        "setup": {
            "gateway_workers": args.workers,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "access_log": args.access_log,
            "database": "PostgreSQL (local)",
            "redis": "redis-server (local)",
        },
        "results": results,
        "jobs_queued_after_post_run": queued,
        "targets": {"get_job": "rps >= 1000 and p99 <= 50 ms", "post_synthesize": "rps >= 300 and zero errors"},
        "met": {
            "get_job": results["get_job"]["rps"] >= 1000 and results["get_job"]["p99_ms"] <= 50,
            "post_synthesize": results["post_synthesize"]["rps"] >= 300
            and not results["post_synthesize"]["unexpected_status_seen"]
            and results["post_synthesize"]["socket_errors"] == 0
            and results["post_synthesize"]["timeouts"] == 0,
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"gateway_load-{sha}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}; targets met: {report['met']}")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
