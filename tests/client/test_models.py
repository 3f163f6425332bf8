"""The SDK's response models must match what the gateway serves: same field names as the gateway's response
schemas (from which its OpenAPI document is generated), and every documented response of the OpenAPI document
parses into the SDK model for that operation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from pydantic import BaseModel

from gateway import schemas as gw
from voicereel.client import models as sdk

if TYPE_CHECKING:
    from tests.client.live_gateway import LiveServer

PAIRS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (sdk.SpeakerAccepted, gw.SpeakerCreated),
    (sdk.Speaker, gw.Speaker),
    (sdk.SpeakerList, gw.Page[gw.Speaker]),
    (sdk.JobAccepted, gw.JobAccepted),
    (sdk.Job, gw.Job),
    (sdk.JobList, gw.Page[gw.Job]),
    (sdk.JobError, gw.JobError),
    (sdk.Caption, gw.Caption),
    (sdk.Usage, gw.Usage),
    (sdk.MonthUsage, gw.MonthUsage),
    (sdk.KeyUsage, gw.KeyUsage),
    (sdk.QuotaState, gw.QuotaState),
    (sdk.Health, gw.Health),
    (sdk.Check, gw.Check),
    (sdk.Readiness, gw.Readiness),
]


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_fields_match_the_gateway(ours: type[BaseModel], theirs: type[BaseModel]) -> None:
    assert set(ours.model_fields) == set(theirs.model_fields)
    # a field the gateway always sends may be optional here, but one the gateway may omit must not be required
    for name, field in ours.model_fields.items():
        if field.is_required():
            assert theirs.model_fields[name].is_required(), name


def test_served_openapi_responses_match_the_sdk_models(server: LiveServer) -> None:
    document = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()
    paths = document["paths"]
    expected: dict[tuple[str, str, str], type[BaseModel]] = {
        ("/v1/speakers", "post", "202"): sdk.SpeakerAccepted,
        ("/v1/speakers/{speaker_id}", "get", "200"): sdk.Speaker,
        ("/v1/synthesize", "post", "202"): sdk.JobAccepted,
        ("/v1/jobs/{job_id}", "get", "200"): sdk.Job,
        ("/v1/usage", "get", "200"): sdk.Usage,
        ("/healthz", "get", "200"): sdk.Health,
    }
    components = document["components"]["schemas"]
    for (path, method, status), model in expected.items():
        schema = paths[path][method]["responses"][status]["content"]["application/json"]["schema"]
        ref = schema["$ref"].rsplit("/", 1)[-1]
        assert set(components[ref]["properties"]) == set(model.model_fields), (path, method)


def test_sdk_reads_a_gateway_job_as_serialised() -> None:
    from datetime import UTC, datetime

    job = gw.Job(
        id="job_01jd0000000000000000000000",
        kind="synthesize",
        status="succeeded",
        progress=1.0,
        speaker_id=None,
        characters=20,
        audio_url="http://x/v1/files/a.wav?exp=1&sig=s",
        caption_url=None,
        captions=[gw.Caption(start=0.0, end=1.5, speaker="Alice", speaker_id="spk_1", text="Hi")],
        duration_s=1.5,
        sample_rate=44100,
        output_format="wav",
        caption_format="json",
        error=None,
        created_at=datetime.now(UTC),
        started_at=None,
        finished_at=None,
        expires_at=None,
    )
    parsed = sdk.Job.model_validate_json(job.model_dump_json())
    assert parsed.finished and parsed.captions is not None and parsed.captions[0].speaker == "Alice"
