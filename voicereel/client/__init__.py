"""VoiceReel Python SDK: sync and async clients of the public API (DESIGN §3).

from voicereel.client import VoiceReelClient
with VoiceReelClient(api_key="vr_...") as vr:
    spk = vr.create_speaker("Alice", "en", "alice.wav", "Transcript of alice.wav")
    vr.wait_for_job(spk.job_id)
    job = vr.synthesize({"script": [{"speaker_id": spk.speaker_id, "text": "Hello!"}]})
    vr.wait_for_job(job.job_id, on_progress=lambda j: print(f"{j.progress:.0%}"))
    vr.download_audio(job.job_id, "hello.wav")
"""

from voicereel.client.async_client import AsyncVoiceReelClient
from voicereel.client.errors import (
    ApiError,
    AuthError,
    ConflictError,
    EngineUnavailableError,
    InsufficientReferenceError,
    InvalidInputError,
    InvalidRequestError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnsupportedMediaError,
    VoiceReelClientError,
)
from voicereel.client.models import (
    Caption,
    Health,
    Job,
    JobAccepted,
    JobList,
    Readiness,
    Speaker,
    SpeakerAccepted,
    SpeakerList,
    Usage,
)
from voicereel.client.retry import RetryPolicy
from voicereel.client.sync_client import VoiceReelClient
from voicereel.client.transport import UnexpectedResponseError
from voicereel.schemas import CaptionFormat, OutputFormat, ScriptLine, SynthesisRequest

__all__ = [
    "ApiError",
    "AsyncVoiceReelClient",
    "AuthError",
    "Caption",
    "CaptionFormat",
    "ConflictError",
    "EngineUnavailableError",
    "Health",
    "InsufficientReferenceError",
    "InvalidInputError",
    "InvalidRequestError",
    "Job",
    "JobAccepted",
    "JobFailedError",
    "JobList",
    "JobTimeoutError",
    "NotFoundError",
    "OutputFormat",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitedError",
    "Readiness",
    "RetryPolicy",
    "ScriptLine",
    "ServerError",
    "Speaker",
    "SpeakerAccepted",
    "SpeakerList",
    "SynthesisRequest",
    "TransportError",
    "UnexpectedResponseError",
    "UnsupportedMediaError",
    "Usage",
    "VoiceReelClient",
    "VoiceReelClientError",
]
