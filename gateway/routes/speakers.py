"""`POST /v1/speakers` (multipart upload), `GET /v1/speakers`, `GET /v1/speakers/{speaker_id}`,
`DELETE /v1/speakers/{speaker_id}`.

Registration: the upload is read as a stream under the size cap, the form fields are validated, the audio is sniffed
and decoded in bounded blocks; only then are the bytes stored, the Speaker (pending) and its register_speaker Job
written to the database, and the job enqueued. The worker measures quality and makes the voice ready.
"""

from __future__ import annotations

import logging

from rq import Queue
from sqlmodel import Session, col, func, select
from starlette.responses import Response

from gateway import schemas
from gateway.api import Call, Operation, Out, check_strings, json_response
from gateway.idempotency import request_fingerprint, run_once, validate_key
from gateway.pagination import page_of
from gateway.probe_sandbox import probe_isolated
from gateway.routes.jobs import job_links, not_found
from gateway.uploads import probe_audio, read_multipart
from voicereel.db.models import Job, JobKind, Speaker
from voicereel.errors import ErrorCode, VoiceReelError
from voicereel.ids import has_prefix, new_id
from voicereel.jobqueue import enqueue
from voicereel.settings import Settings

log = logging.getLogger("voicereel.gateway")

FILE_FIELD = "reference_audio"


def speaker_view(row: Speaker) -> schemas.Speaker:
    return schemas.Speaker(
        id=row.id,
        name=row.name,
        lang=row.lang,
        status=row.status,
        duration_s=row.duration_s,
        quality=row.quality,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def upload_key(project_id: str, speaker_id: str) -> str:
    return f"uploads/{project_id}/{speaker_id}/reference"


async def create_speaker(call: Call) -> Response:
    services, settings = call.services, call.services.settings
    form = await read_multipart(
        call.request,
        max_file_bytes=int(settings.max_upload_mb * 1024 * 1024),
        file_fields={FILE_FIELD},
        text_fields=set(schemas.SpeakerForm.model_fields),
    )
    try:
        await call.verify_signature(form.body_sha256)
        idempotency_key = validate_key(call.request.headers.get("idempotency-key"))
        check_strings(form.fields, "form")
        fields = schemas.SpeakerForm.model_validate(form.fields)
        if fields.lang not in settings.languages:
            raise VoiceReelError(
                ErrorCode.INVALID_INPUT,
                f"language {fields.lang!r} is not supported",
                {"lang": fields.lang, "supported": settings.languages},
            )
        if form.file is None:
            raise VoiceReelError(ErrorCode.INVALID_INPUT, f"{FILE_FIELD} (a file) is required", {"field": FILE_FIELD})
        upload = form.file
        max_s, min_s, timeout_s = settings.max_reference_decoded_s, settings.min_reference_s, settings.probe_timeout_s
        if settings.probe_isolated:
            probe = await services.in_thread(
                lambda: probe_isolated(upload, timeout_s=timeout_s, max_decoded_s=max_s, min_duration_s=min_s)
            )
        else:
            probe = await services.in_thread(lambda: probe_audio(upload, max_decoded_s=max_s, min_duration_s=min_s))
        project_id = call.who.project_id
        key_id = call.who.key_id

        async def register() -> Response:
            speaker_id, job_id = new_id("spk"), new_id("job")
            key = upload_key(project_id, speaker_id)
            assert form.file is not None
            form.file.seek(0)
            data = form.file.read()
            await services.in_thread(services.storage.put_bytes, key, data, probe.content_type)

            def write(session: Session) -> Job:
                session.add(
                    Speaker(
                        id=speaker_id,
                        project_id=project_id,
                        name=fields.name,
                        lang=fields.lang,
                        reference_key=key,
                        reference_text=fields.reference_script,
                        duration_s=probe.duration_s,
                    )
                )
                job = Job(
                    id=job_id,
                    project_id=project_id,
                    api_key_id=key_id,
                    kind=JobKind.register_speaker,
                    request={"speaker_id": speaker_id},
                )
                session.add(job)
                return job

            try:
                job = await services.db(write)
            except Exception:
                await services.in_thread(services.storage.delete, key)
                raise
            await services.in_thread(enqueue_or_log, services.queue, job, settings)
            body = schemas.SpeakerCreated(speaker_id=speaker_id, job_id=job_id)
            return json_response(body, 202, {"Location": f"/v1/speakers/{speaker_id}"})

        return await run_once(
            services.redis,
            project_id=project_id,
            key=idempotency_key,
            fingerprint=request_fingerprint("POST", call.request.url.path, form.content_sha256),
            ttl_s=int(settings.idempotency_ttl_h * 3600),
            in_flight_ttl_s=300,
            produce=register,
        )
    finally:
        form.close()


def enqueue_or_log(queue: Queue, job: Job, settings: Settings) -> None:
    """Call after the job row is committed (blocking). If Redis refuses the enqueue, the reconciler re-enqueues the
    job later (the database is the source of truth), so the request still succeeds."""
    try:
        enqueue(queue, job, settings)
    except Exception:
        log.exception("enqueue failed for %s; left for the reconciler", job.id)


async def list_speakers(call: Call) -> Response:
    query: schemas.SpeakerListQuery = call.query
    project_id = call.who.project_id

    def work(session: Session) -> tuple[list[Speaker], int]:
        filters = [Speaker.project_id == project_id]
        if query.status is not None:
            filters.append(Speaker.status == query.status)
        total = session.exec(select(func.count()).select_from(Speaker).where(*filters)).one()
        stmt = select(Speaker).where(*filters)
        if query.cursor:
            stmt = stmt.where(col(Speaker.id) < query.cursor)
        rows = session.exec(stmt.order_by(col(Speaker.id).desc()).limit(query.limit + 1)).all()
        return list(rows), int(total)

    rows, total = await call.services.db(work)
    return json_response(page_of(schemas.Page[schemas.Speaker], rows, total, query.limit, speaker_view))


def load_speaker(session: Session, project_id: str, speaker_id: str) -> Speaker | None:
    if not has_prefix(speaker_id, "spk"):
        return None
    return session.exec(select(Speaker).where(Speaker.id == speaker_id, Speaker.project_id == project_id)).first()


async def get_speaker(call: Call) -> Response:
    speaker_id = call.path_param("speaker_id")
    row = await call.services.db(lambda s: load_speaker(s, call.who.project_id, speaker_id))
    if row is None:
        raise not_found("speaker", speaker_id)
    return json_response(speaker_view(row))


async def delete_speaker(call: Call) -> Response:
    speaker_id = call.path_param("speaker_id")
    project_id = call.who.project_id

    def work(session: Session) -> bool:
        row = load_speaker(session, project_id, speaker_id)
        if row is None:
            return False
        session.delete(row)
        return True

    if not await call.services.db(work):
        raise not_found("speaker", speaker_id)
    storage = call.services.storage
    for prefix in (f"uploads/{project_id}/{speaker_id}/", f"speakers/{project_id}/{speaker_id}/"):
        await call.services.in_thread(storage.delete_prefix, prefix)
    return Response(status_code=204)


_SPEAKER_ID = {"speaker_id": "A speaker id (`spk_…`) of the caller's project."}


def speaker_links(expression: str) -> tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]:
    return tuple((f"{op}Link", op, (("speaker_id", expression),)) for op in ("getSpeaker", "deleteSpeaker"))


OPERATIONS = [
    Operation(
        "POST",
        "/v1/speakers",
        create_speaker,
        "createSpeaker",
        "Register a voice from reference audio and its transcript",
        "speakers",
        (
            Out(
                202,
                schemas.SpeakerCreated,
                "Accepted: the speaker is pending until its registration job finishes.",
                links=speaker_links("$response.body#/speaker_id") + job_links("$response.body#/job_id"),
            ),
        ),
        errors=(
            ErrorCode.PAYLOAD_TOO_LARGE,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            ErrorCode.INSUFFICIENT_REF,
            ErrorCode.CONFLICT,
        ),
        scope="speakers:write",
        form=schemas.SpeakerForm,
        file_field=FILE_FIELD,
        idempotent=True,
        description="multipart/form-data with `name`, `lang` (ISO 639-1), `reference_script` (the transcript) and "
        "`reference_audio` (WAV, FLAC, Ogg or MP3; at most the upload limit, 30 MB by default; at least the minimum "
        "reference length, 30 s by default).",
    ),
    Operation(
        "GET",
        "/v1/speakers",
        list_speakers,
        "listSpeakers",
        "List speakers, newest first",
        "speakers",
        (
            Out(
                200,
                schemas.Page[schemas.Speaker],
                "A page of speakers.",
                links=speaker_links("$response.body#/data/0/id"),
            ),
        ),
        scope="speakers:read",
        query=schemas.SpeakerListQuery,
    ),
    Operation(
        "GET",
        "/v1/speakers/{speaker_id}",
        get_speaker,
        "getSpeaker",
        "Show a speaker: status, duration, quality report",
        "speakers",
        (Out(200, schemas.Speaker, "The speaker."),),
        errors=(ErrorCode.NOT_FOUND,),
        scope="speakers:read",
        path_params=_SPEAKER_ID,
    ),
    Operation(
        "DELETE",
        "/v1/speakers/{speaker_id}",
        delete_speaker,
        "deleteSpeaker",
        "Delete a speaker and its stored reference audio and codes",
        "speakers",
        (Out(204, None, "Deleted."),),
        errors=(ErrorCode.NOT_FOUND,),
        scope="speakers:write",
        path_params=_SPEAKER_ID,
    ),
]
