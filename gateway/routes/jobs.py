"""`GET /v1/jobs`, `GET /v1/jobs/{job_id}`, `DELETE /v1/jobs/{job_id}`.

A job of another project is `NOT_FOUND`, like one that does not exist: every query filters on the caller's project.
Download URLs are made at read time from the storage keys the worker recorded, so they always have their full
lifetime when handed out.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, cast

from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from sqlalchemy import Connection, CursorResult, Row, bindparam, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, SQLModel, col, func, select
from starlette.responses import Response

from gateway import schemas
from gateway.api import Call, Operation, Out, json_response
from gateway.fastread import fetch_job
from gateway.pagination import page_of
from gateway.services import Services
from voicereel.db.models import Job, JobKind, JobStatus
from voicereel.errors import ErrorCode, VoiceReelError
from voicereel.ids import has_prefix
from voicereel.quota import give_back_async

log = logging.getLogger("voicereel.gateway")


def not_found(what: str, ident: str) -> VoiceReelError:
    return VoiceReelError(ErrorCode.NOT_FOUND, f"no {what} {ident!r} in this project", {"id": ident})


_JOBS = SQLModel.metadata.tables["job"]
# Built once: SQLAlchemy caches the compiled form, and Core rows skip the ORM's identity map (this is the hottest
# query of the API, `GET /v1/jobs/{id}` polled by every client).
_SELECT_JOB = sa_select(_JOBS).where(_JOBS.c.id == bindparam("job_id"), _JOBS.c.project_id == bindparam("project_id"))


def find_job(connection: Connection, project_id: str, job_id: str) -> Row[Any] | None:
    if not has_prefix(job_id, "job"):
        return None
    return connection.execute(_SELECT_JOB, {"job_id": job_id, "project_id": project_id}).first()


async def read_job(services: Services, project_id: str, job_id: str) -> Any:
    """The job row (attributes as on `Job`), or None; through gateway.fastread on PostgreSQL."""
    if not has_prefix(job_id, "job"):
        return None
    if services.pg_pool is not None:
        return await fetch_job(services.pg_pool, project_id, job_id)
    return await services.read(lambda c: find_job(c, project_id, job_id))


def load_job(session: Session, project_id: str, job_id: str) -> Job | None:
    if not has_prefix(job_id, "job"):
        return None
    return session.exec(select(Job).where(Job.id == job_id, Job.project_id == project_id)).first()


def job_view(job: Any, storage: Any) -> schemas.Job:
    """The API's view of a job row (an ORM `Job`, a Core row or a fastread row: same attributes)."""
    result = job.result or {}
    request = job.request or {}
    audio_url = caption_url = None
    if job.status is JobStatus.succeeded:
        if result.get("audio_key"):
            audio_url = storage.download_url(result["audio_key"], filename=f"{job.id}.{result.get('output_format')}")
        if result.get("caption_key"):
            caption_url = storage.download_url(
                result["caption_key"], filename=f"{job.id}.{result.get('caption_format')}"
            )
    captions = result.get("captions") if job.status is JobStatus.succeeded else None
    error = None
    if job.error_code:
        error = schemas.JobError(code=job.error_code, message=job.error_message or "")
    return schemas.Job(
        id=job.id,
        kind=job.kind,
        status=job.status,
        progress=min(max(job.progress, 0.0), 1.0),
        speaker_id=request.get("speaker_id") if job.kind is JobKind.register_speaker else None,
        characters=job.characters,
        audio_url=audio_url,
        caption_url=caption_url,
        captions=[schemas.Caption.model_validate(c) for c in captions] if captions else None,
        duration_s=result.get("duration_s"),
        sample_rate=result.get("sample_rate", request.get("sample_rate")),
        output_format=result.get("output_format", request.get("output_format")),
        caption_format=result.get("caption_format", request.get("caption_format")),
        error=error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        expires_at=job.expires_at,
    )


async def get_job(call: Call) -> Response:
    job_id = call.path_param("job_id")
    job = await read_job(call.services, call.who.project_id, job_id)
    if job is None:
        raise not_found("job", job_id)
    return json_response(job_view(job, call.services.storage))


async def list_jobs(call: Call) -> Response:
    query: schemas.JobListQuery = call.query
    project_id = call.who.project_id

    def work(session: Session) -> tuple[list[Job], int]:
        filters = [Job.project_id == project_id]
        if query.status is not None:
            filters.append(Job.status == query.status)
        if query.kind is not None:
            filters.append(Job.kind == query.kind)
        total = session.exec(select(func.count()).select_from(Job).where(*filters)).one()
        stmt = select(Job).where(*filters)
        if query.cursor:
            stmt = stmt.where(col(Job.id) < query.cursor)
        rows = session.exec(stmt.order_by(col(Job.id).desc()).limit(query.limit + 1)).all()
        return list(rows), int(total)

    rows, total = await call.services.db(work)
    storage = call.services.storage
    return json_response(page_of(schemas.Page[schemas.Job], rows, total, query.limit, lambda j: job_view(j, storage)))


def cancel_or_expire(session: Session, project_id: str, job_id: str) -> tuple[Job, bool] | None:
    """Mark the job canceled (unfinished) or expired (finished, artifacts going away). True when it was canceled
    just now. The UPDATE is conditional on the state, so a worker finishing at the same moment wins or loses
    cleanly instead of both writing."""
    job = load_job(session, project_id, job_id)
    if job is None:
        return None
    now = datetime.now(UTC)
    result = session.execute(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status).in_([JobStatus.queued, JobStatus.running]))
        .values(status=JobStatus.canceled, finished_at=now)
    )
    canceled = cast(CursorResult[Any], result).rowcount
    if not canceled:
        session.execute(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == JobStatus.succeeded)
            .values(status=JobStatus.expired, expires_at=now)
        )
    session.refresh(job)
    return job, bool(canceled)


def stop_rq_job(redis_sync: Any, job_id: str) -> None:
    """Take the job off the queue, or stop the worker's run of it (blocking: call from a thread)."""
    with contextlib.suppress(NoSuchJobError, InvalidJobOperation):
        RQJob.fetch(job_id, connection=redis_sync).cancel()
    with contextlib.suppress(NoSuchJobError, InvalidJobOperation):
        send_stop_job_command(redis_sync, job_id)


async def delete_job(call: Call) -> Response:
    job_id = call.path_param("job_id")
    project_id = call.who.project_id
    outcome = await call.services.db(lambda s: cancel_or_expire(s, project_id, job_id))
    if outcome is None:
        raise not_found("job", job_id)
    job, canceled = outcome
    services = call.services
    if canceled:
        await give_back_async(services.redis, job)
        try:
            await services.in_thread(stop_rq_job, services.redis_sync, job_id)
        except Exception:  # the database says canceled; the worker checks it before writing results
            log.warning("could not stop RQ job %s", job_id, exc_info=True)
    await services.in_thread(services.storage.delete_prefix, f"jobs/{project_id}/{job_id}/")
    return Response(status_code=204)


_JOB_ID = {"job_id": "A job id (`job_…`) of the caller's project."}


def job_links(expression: str) -> tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]:
    return tuple((f"{op}Link", op, (("job_id", expression),)) for op in ("getJob", "deleteJob"))


OPERATIONS = [
    Operation(
        "GET",
        "/v1/jobs",
        list_jobs,
        "listJobs",
        "List jobs, newest first",
        "jobs",
        (Out(200, schemas.Page[schemas.Job], "A page of jobs.", links=job_links("$response.body#/data/0/id")),),
        scope="jobs:read",
        query=schemas.JobListQuery,
    ),
    Operation(
        "GET",
        "/v1/jobs/{job_id}",
        get_job,
        "getJob",
        "Show a job: status, progress, download URLs, captions, durations, error",
        "jobs",
        (Out(200, schemas.Job, "The job."),),
        errors=(ErrorCode.NOT_FOUND,),
        scope="jobs:read",
        path_params=_JOB_ID,
    ),
    Operation(
        "DELETE",
        "/v1/jobs/{job_id}",
        delete_job,
        "deleteJob",
        "Cancel a job that has not finished and delete its artifacts",
        "jobs",
        (Out(204, None, "Canceled (if it was unfinished) and its artifacts deleted."),),
        errors=(ErrorCode.NOT_FOUND,),
        scope="jobs:write",
        path_params=_JOB_ID,
    ),
]
