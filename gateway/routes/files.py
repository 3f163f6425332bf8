"""`GET /v1/files/{key}`: downloads for the local-filesystem storage backend.

The URL itself is the credential (no API key): `storage.download_url` signs the key and an expiry with
`url_signing_secret`, and `voicereel.storage.verify_local_url` checks both. With S3 storage, clients download
from S3's presigned URLs and this route answers 404.
"""

from __future__ import annotations

import mimetypes
import posixpath

from starlette.responses import Response

from gateway import schemas
from gateway.api import Call, Operation, Out
from voicereel.errors import ErrorCode, VoiceReelError
from voicereel.settings import StorageBackend
from voicereel.storage import verify_local_url

_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
    ".json": "application/json",
}


async def get_file(call: Call) -> Response:
    services, settings = call.services, call.services.settings
    key = call.path_param("key")
    query: schemas.FileQuery = call.query
    if settings.storage_backend is not StorageBackend.local:
        raise VoiceReelError(ErrorCode.NOT_FOUND, "files are served by the object store, not the gateway")
    if not verify_local_url(settings, key, query.exp, query.sig):
        raise VoiceReelError(ErrorCode.FORBIDDEN, "download URL is invalid or expired")
    if not await services.in_thread(services.storage.exists, key):
        raise VoiceReelError(ErrorCode.NOT_FOUND, "file no longer exists (artifacts expire)")
    data = await services.in_thread(services.storage.get_bytes, key)
    extension = posixpath.splitext(key)[1].lower()
    media_type = _TYPES.get(extension) or mimetypes.guess_type(key)[0] or "application/octet-stream"
    filename = posixpath.basename(key)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private, no-store"}
    return Response(data, media_type=media_type, headers=headers)


OPERATIONS = [
    Operation(
        "GET",
        "/v1/files/{key:path}",
        get_file,
        "getFile",
        "Download an artifact through a signed, expiring URL (local storage backend)",
        "files",
        (Out(200, None, "The file.", media_type="application/octet-stream"),),
        errors=(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
        query=schemas.FileQuery,
        path_params={"key": "Storage key, exactly as in the URL the API handed out."},
    ),
]
