"""GET /v1/files/{key}: local-storage downloads through signed, expiring URLs; no API key needed or accepted
instead of the signature."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from voicereel.storage.signing import local_url

pytestmark = pytest.mark.anyio


async def test_signed_url_downloads_and_tampering_is_refused(gateway, error_code) -> None:
    storage = gateway.services.storage
    key = "jobs/prj_test/job_test/captions.vtt"
    storage.put_bytes(key, b"WEBVTT\n\n", "text/vtt")
    url = urlsplit(storage.download_url(key))
    ok = await gateway.request("GET", f"{url.path}?{url.query}", None)
    assert ok.status_code == 200 and ok.content == b"WEBVTT\n\n"
    assert ok.headers["content-type"].startswith("text/vtt")
    assert ok.headers["content-disposition"] == 'attachment; filename="captions.vtt"'

    other = "jobs/prj_test/job_test/audio.wav"
    storage.put_bytes(other, b"RIFF", "audio/wav")
    swapped = await gateway.request("GET", f"/v1/files/{other}?{url.query}", None)  # signature of another key
    assert swapped.status_code == 403 and error_code(swapped) == "FORBIDDEN"
    expired = urlsplit(local_url(gateway.settings, key, now=0))
    stale = await gateway.request("GET", f"{expired.path}?{expired.query}", None)
    assert stale.status_code == 403
    unsigned = await gateway.request("GET", f"/v1/files/{key}", gateway.new_key())
    assert unsigned.status_code == 400  # exp and sig are required; an API key does not replace them

    storage.delete(key)
    gone = await gateway.request("GET", f"{url.path}?{url.query}", None)
    assert gone.status_code == 404 and error_code(gone) == "NOT_FOUND"


async def test_s3_deployments_do_not_serve_files(gateway_factory, s3_endpoint) -> None:
    async with gateway_factory(storage_backend="s3", s3_endpoint_url=s3_endpoint, s3_bucket="gateway-files") as gw:
        response = await gw.request("GET", "/v1/files/jobs/a/b/audio.wav?exp=9999999999&sig=abc", None)
    assert response.status_code == 404
