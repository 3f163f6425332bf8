"""`POST /v1/synthesize`: validate the whole script, then write the job to the database, then enqueue it.

Validation happens before anything is written: the body's shape (`voicereel.schemas.SynthesisRequest`), this
deployment's limits (lines per script, characters per line), and every speaker: it exists, belongs to the caller's
project (another project's speaker is NOT_FOUND) and is ready. Then the monthly quota is charged, the job row is
committed, and only then is the RQ job created (the database is the source of truth; RQ only carries the id).

`Prefer: wait=N` (RFC 7240) holds the response up to N seconds (capped by `max_prefer_wait_s`): a job that
finishes in time is returned whole (200, like `GET /v1/jobs/{id}`), otherwise the usual 202.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import anyio
from sqlalchemy import Connection, bindparam, insert, select
from sqlmodel import SQLModel
from starlette.responses import Response

from gateway import schemas
from gateway.api import Call, Operation, Out, json_response
from gateway.idempotency import request_fingerprint, run_once, validate_key
from gateway.routes.jobs import job_links, job_view, read_job
from gateway.routes.speakers import enqueue_or_log
from gateway.usage import consume_quota
from voicereel.db.models import Job, JobKind, JobStatus, SpeakerStatus
from voicereel.errors import ErrorCode, VoiceReelError
from voicereel.ids import has_prefix, new_id
from voicereel.quota import give_back_async, month_of
from voicereel.schemas import SynthesisRequest

_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,6})(?:$|[,;\s])", re.IGNORECASE)


def prefer_wait(header: str | None, cap_s: int) -> int:
    if not header:
        return 0
    match = _WAIT.search(header)
    return min(int(match.group(1)), cap_s) if match else 0


def check_limits(request: SynthesisRequest, max_lines: int, max_line_chars: int) -> None:
    if len(request.script) > max_lines:
        raise VoiceReelError(
            ErrorCode.INVALID_INPUT,
            f"script has {len(request.script)} lines; at most {max_lines} are allowed",
            {"lines": len(request.script), "max_lines": max_lines},
        )
    for index, line in enumerate(request.script):
        if len(line.text) > max_line_chars:
            raise VoiceReelError(
                ErrorCode.INVALID_INPUT,
                f"line {index} has {len(line.text)} characters; at most {max_line_chars} are allowed",
                {"line": index, "characters": len(line.text), "max_line_chars": max_line_chars},
            )


_SPEAKERS = SQLModel.metadata.tables["speaker"]
_SELECT_SPEAKERS = select(_SPEAKERS.c.id, _SPEAKERS.c.status).where(
    _SPEAKERS.c.project_id == bindparam("project_id"), _SPEAKERS.c.id.in_(bindparam("ids", expanding=True))
)
_JOBS = SQLModel.metadata.tables["job"]


def check_speakers(connection: Connection, project_id: str, speaker_ids: list[str]) -> None:
    wanted = list(dict.fromkeys(speaker_ids))
    shaped = [s for s in wanted if has_prefix(s, "spk")]
    found: dict[str, SpeakerStatus] = {}
    if shaped:
        rows = connection.execute(_SELECT_SPEAKERS, {"project_id": project_id, "ids": shaped}).all()
        found = {row[0]: SpeakerStatus(row[1]) for row in rows}
    missing = [s for s in wanted if s not in found]
    if missing:
        raise VoiceReelError(
            ErrorCode.NOT_FOUND, "script names speakers that do not exist in this project", {"speaker_ids": missing}
        )
    not_ready = {s: str(status) for s, status in found.items() if status is not SpeakerStatus.ready}
    if not_ready:
        raise VoiceReelError(
            ErrorCode.CONFLICT, "script names speakers that are not ready", {"speaker_status": not_ready}
        )


async def wait_for(call: Call, job_id: str, seconds: int) -> Any:
    """Poll the job row until it finishes or `seconds` pass; backs off from 50 ms to 500 ms between reads."""
    deadline = time.monotonic() + seconds
    delay = 0.05
    project_id = call.who.project_id
    while True:
        job = await read_job(call.services, project_id, job_id)
        if job is not None and job.status.finished:
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        await anyio.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.5)


async def synthesize(call: Call) -> Response:
    services, settings = call.services, call.services.settings
    request = call.json(SynthesisRequest)
    check_limits(request, settings.max_script_lines, settings.max_line_chars)
    idempotency_key = validate_key(call.request.headers.get("idempotency-key"))
    wait_s = prefer_wait(call.request.headers.get("prefer"), settings.max_prefer_wait_s)
    caller = call.who
    speaker_ids = [line.speaker_id for line in request.script]
    characters = request.characters

    async def submit() -> Response:
        job = Job(
            id=new_id("job"),
            project_id=caller.project_id,
            api_key_id=caller.key_id,
            kind=JobKind.synthesize,
            request=request.model_dump(mode="json"),
            characters=characters,
        )
        await consume_quota(
            services.redis,
            services.engine,
            caller.key_id,
            caller.monthly_quota_chars,
            characters,
            month_of(job.created_at),
        )
        row = job.model_dump()

        def check_write_enqueue(connection: Connection) -> None:
            # One worker-thread trip: the speakers are checked, the row is written (one statement, atomic on
            # its own), and only then is the RQ job created.
            check_speakers(connection, caller.project_id, speaker_ids)
            connection.execute(insert(_JOBS), row)
            enqueue_or_log(services.queue, job, settings)

        try:
            await services.read(check_write_enqueue)
        except BaseException:
            await give_back_async(services.redis, job)
            raise
        headers = {"Location": f"/v1/jobs/{job.id}"}
        if wait_s:
            headers["Preference-Applied"] = f"wait={wait_s}"
            finished = await wait_for(call, job.id, wait_s)
            if finished is not None:
                return json_response(job_view(finished, services.storage), 200, headers)
        return json_response(schemas.JobAccepted(job_id=job.id, status=JobStatus.queued), 202, headers)

    return await run_once(
        services.redis,
        project_id=caller.project_id,
        key=idempotency_key,
        # The validated request, not the raw bytes: a retry that serialises the same JSON differently is the same.
        fingerprint=request_fingerprint(
            "POST", call.request.url.path, hashlib.sha256(request.model_dump_json().encode()).hexdigest()
        ),
        ttl_s=int(settings.idempotency_ttl_h * 3600),
        in_flight_ttl_s=settings.max_prefer_wait_s + 120,
        produce=submit,
    )


OPERATIONS = [
    Operation(
        "POST",
        "/v1/synthesize",
        synthesize,
        "synthesize",
        "Render a multi-speaker script into one mastered audio file plus captions",
        "synthesis",
        (
            Out(
                202,
                schemas.JobAccepted,
                "Accepted and queued; poll `GET /v1/jobs/{job_id}`.",
                links=job_links("$response.body#/job_id"),
            ),
            Out(200, schemas.Job, "With `Prefer: wait=N`: the job finished within N seconds."),
        ),
        errors=(
            ErrorCode.NOT_FOUND,
            ErrorCode.CONFLICT,
            ErrorCode.PAYLOAD_TOO_LARGE,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            ErrorCode.UNPROCESSABLE,
            ErrorCode.QUOTA_EXCEEDED,
        ),
        scope="jobs:write",
        body=SynthesisRequest,
        idempotent=True,
        prefer_wait=True,
        description="Every line's speaker must exist in the caller's project and be ready (404 / 409 otherwise); "
        "lines and characters per line are limited by the deployment's settings.",
    ),
]
