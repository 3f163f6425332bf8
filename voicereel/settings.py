"""The one settings object: every knob of every component, read from `VR_*` environment variables (and `.env`).

Each field is declared once, with a type, a default and a description. Secrets have no default outside the
`dev` and `test` profiles: `Settings()` fails at start in `prod` when one is missing.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Secrets that get a well-known value in the dev/test profiles only (never in production).
_DEV_SECRET = "dev-insecure-secret-change-me"  # noqa: S105 (dev/test profiles only)
# The secrets the prod profile cannot start without. Other SecretStr fields (metrics_token) are optional.
PROD_REQUIRED_SECRETS = ("url_signing_secret", "admin_token", "key_signing_secret")


def _split_csv(value: object) -> object:
    """Accept `a,b,c` from the environment for list fields (JSON lists work too)."""
    if isinstance(value, str) and not value.lstrip().startswith("["):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Profile(StrEnum):
    dev = "dev"
    test = "test"
    prod = "prod"


class StorageBackend(StrEnum):
    local = "local"
    s3 = "s3"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VR_", env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True
    )

    # --- profile and paths -------------------------------------------------------------------------------
    profile: Profile = Field(Profile.dev, description="dev (local demo), test (test suite) or prod.")
    data_dir: Path = Field(Path(".data"), description="Root for embedded state: SQLite file, local storage, logs.")
    debug: bool = Field(False, description="Log request bodies and return error details meant for developers.")
    log_level: str = Field("INFO", description="Python log level name for all components.")

    # --- database and queue ------------------------------------------------------------------------------
    database_url: str = Field(
        "", description="SQLAlchemy URL. Empty: SQLite file `<data_dir>/voicereel.db` (the embedded default)."
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for RQ, rate limits and replay cache.")
    queue_name: str = Field("voicereel", description="RQ queue that the gateway fills and the worker drains.")
    synth_job_timeout_s: int = Field(1800, gt=0, description="RQ job_timeout of one synthesis attempt.")
    register_job_timeout_s: int = Field(300, gt=0, description="RQ job_timeout of one speaker registration.")
    rq_result_ttl_s: int = Field(86400, gt=0, description="How long RQ keeps results and failures (the DB keeps jobs).")
    rq_queued_ttl_s: int = Field(86400, gt=0, description="A job not started within this is dropped by RQ (ttl).")
    rq_retries: int = Field(2, ge=0, le=3, description="RQ-level retries of a job whose attempt crashed.")

    # --- Triton ----------------------------------------------------------------------------------------
    triton_grpc_url: str = Field("127.0.0.1:8001", description="Triton gRPC endpoint (host:port) for the worker.")
    triton_http_url: str = Field("http://127.0.0.1:8000", description="Triton HTTP endpoint, for readiness checks.")
    triton_timeout_s: float = Field(120.0, gt=0, description="Deadline of one Triton request (one script line).")
    worker_max_in_flight: int = Field(
        32,
        ge=1,
        description="Triton requests one worker keeps in flight across the lines of its jobs, per GPU serving "
        "text2semantic (the limit is this times triton_gpu_count).",
    )
    triton_gpu_count: int = Field(
        1,
        ge=1,
        description="GPUs serving text2semantic (its model-repository placement: one engine with its own KV slots "
        "per GPU); the worker's in-flight limit scales with it.",
    )

    # --- worker reliability and maintenance (worker/) ----------------------------------------------------
    triton_retry_deadline_s: float = Field(
        600.0,
        gt=0,
        description="How long the worker retries one Triton request on transient errors (unavailable, timeout, "
        "overload) before the job fails with ENGINE_UNAVAILABLE.",
    )
    triton_retry_max_wait_s: float = Field(
        10.0, gt=0, description="Cap of the exponential backoff (full jitter) between retries of a Triton request."
    )
    worker_heartbeat_s: float = Field(
        5.0,
        gt=0,
        description="A running job refreshes its liveness key in Redis this often; the key lives three times as "
        "long, so the reconciler sees a killed worker's job as abandoned within three heartbeats.",
    )
    job_max_attempts: int = Field(
        3, ge=1, description="Started runs of one job before it fails for good instead of being run again."
    )
    reconcile_interval_s: int = Field(
        30, gt=0, description="How often the reconciler re-enqueues jobs the database has but RQ lost or abandoned."
    )
    reconcile_grace_s: float = Field(
        30.0,
        ge=0,
        description="Queued jobs younger than this are left to the gateway's own enqueue (no race with it).",
    )
    sweep_interval_s: int = Field(
        60,
        gt=0,
        description="How often the sweeper deletes artifacts past artifact_ttl_h (each finished job also gets a "
        "one-off sweep scheduled at its exact expiry).",
    )
    dashboard_host: str = Field("127.0.0.1", description="Bind address of the RQ dashboard (`make dashboard`).")
    dashboard_port: int = Field(9181, gt=0, lt=65536, description="Port of the RQ dashboard.")
    dashboard_username: str = Field(
        "admin", description="Basic-auth user of the RQ dashboard; the password is VR_ADMIN_TOKEN."
    )

    # --- checkpoints ----------------------------------------------------------------------------------
    checkpoint_dir: Path = Field(
        Path("checkpoints/openaudio-s1-mini"),
        description="Real checkpoint (openaudio-s1-mini layout). If absent, `make run` uses the tiny random one.",
    )
    tiny_checkpoint_dir: Path = Field(Path("checkpoints/tiny"), description="Where the tiny random checkpoint lives.")

    # --- storage ---------------------------------------------------------------------------------------
    storage_backend: StorageBackend = Field(StorageBackend.local, description="local filesystem or s3.")
    storage_dir: Path = Field(Path(".data/storage"), description="Root of the local-filesystem storage backend.")
    s3_bucket: str = Field("voicereel", description="S3 bucket for uploads and artifacts.")
    s3_prefix: str = Field("", description="Key prefix inside the bucket.")
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint override (MinIO, moto); None for AWS.")
    public_base_url: str = Field(
        "http://127.0.0.1:8080", description="Base URL of the gateway as clients see it (for local file URLs)."
    )
    url_signing_secret: SecretStr | None = Field(None, description="HMAC key for local-storage download URLs.")
    presign_expiry_s: int = Field(900, gt=0, description="Lifetime of download URLs (presigned or local).")
    artifact_ttl_h: float = Field(48.0, gt=0, description="Artifacts are deleted this long after a job finishes.")

    # --- API limits and defaults ----------------------------------------------------------------------
    max_upload_mb: float = Field(30.0, gt=0, description="Largest reference-audio upload, enforced while streaming.")
    min_reference_s: float = Field(30.0, ge=0, description="Shortest accepted reference audio, in seconds.")
    max_reference_decoded_s: float = Field(
        600.0, gt=0, description="Decoding of an upload stops past this many seconds (decompression bombs)."
    )
    probe_isolated: bool = Field(
        True,
        description="The gateway decodes uploaded reference audio in a short-lived child process, so a decoder "
        "crash or hang costs that request only.",
    )
    probe_timeout_s: float = Field(
        20.0, gt=0, description="Longest an isolated decode of one upload may take before it is killed (400)."
    )
    languages: Annotated[list[str], NoDecode] = Field(
        ["ko", "en", "ja", "zh", "fr", "de", "es"], description="Accepted ISO 639-1 language codes."
    )
    max_line_chars: int = Field(2000, gt=0, description="Longest text of one script line.")
    max_script_lines: int = Field(500, gt=0, description="Most lines in one synthesis script.")
    default_rate_limit_per_min: int = Field(600, gt=0, description="Requests per minute for a new API key.")
    default_monthly_quota_chars: int = Field(5_000_000, gt=0, description="Characters per month for a new API key.")
    signature_window_s: int = Field(300, gt=0, description="Accepted clock skew of signed requests, in seconds.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        [], description="Origins allowed by CORS (comma separated). Empty: no CORS headers."
    )

    # --- gateway serving -------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Gateway bind address.")
    port: int = Field(8080, gt=0, lt=65536, description="Gateway port.")
    tls_certfile: Path | None = Field(None, description="PEM certificate; with tls_keyfile, serve TLS 1.3 only.")
    tls_keyfile: Path | None = Field(None, description="PEM private key for tls_certfile.")
    admin_token: SecretStr | None = Field(None, description="Bearer token of admin endpoints (dashboards).")
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token GET /metrics requires (Prometheus: authorization.credentials_file); "
        "unset leaves /metrics open, so keep it off the public network then.",
    )
    sentry_dsn: str | None = Field(None, description="Sentry DSN; unset disables error reporting.")
    workers: int = Field(1, ge=1, le=64, description="Gateway processes (uvicorn workers) `python -m gateway` runs.")
    key_signing_secret: SecretStr | None = Field(
        None,
        description="Server secret from which each API key's request-signing secret is derived "
        "(HMAC-SHA256(secret, key id)); changing it invalidates every signing secret handed out.",
    )
    api_key_cache_s: float = Field(
        5.0, ge=0, description="How long a gateway process caches an API key lookup (revocation takes this long)."
    )
    max_json_body_kb: int = Field(1024, gt=0, description="Largest JSON request body, in KiB.")
    max_prefer_wait_s: int = Field(60, ge=0, description="Longest `Prefer: wait=N` a request may hold a connection.")
    idempotency_ttl_h: float = Field(24.0, gt=0, description="How long an Idempotency-Key's response is replayed.")
    migrate_on_start: bool = Field(True, description="Gateway applies database migrations when it starts.")
    db_pool_size: int = Field(10, ge=1, description="Database connections per gateway process (plus as many overflow).")
    access_log: bool = Field(True, description="One JSON log line per request (request id, key id, route, status).")
    readiness_timeout_s: float = Field(2.0, gt=0, description="Timeout of each /readyz check (DB, Redis, Triton).")
    usage_flush_s: float = Field(5.0, gt=0, description="How often request counts are added to the database.")
    docs_assets_url: str = Field(
        "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5",
        description="Where /docs loads Swagger UI's script and stylesheet from.",
    )

    @model_validator(mode="before")
    @classmethod
    def _lists_from_csv(cls, data: object) -> object:
        if isinstance(data, dict):
            for name in ("languages", "cors_origins"):
                if name in data:
                    data[name] = _split_csv(data[name])
        return data

    @model_validator(mode="after")
    def _secrets_and_consistency(self) -> Settings:
        for name in PROD_REQUIRED_SECRETS:
            value = getattr(self, name)
            if value is None or not value.get_secret_value().strip():
                if self.profile is Profile.prod:
                    raise ValueError(f"VR_{name.upper()} is required in the prod profile")
                setattr(self, name, SecretStr(_DEV_SECRET))
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("VR_TLS_CERTFILE and VR_TLS_KEYFILE must be set together")
        if "*" in self.cors_origins and self.profile is Profile.prod:
            raise ValueError("VR_CORS_ORIGINS may not be '*' in the prod profile")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'voicereel.db').as_posix()}"

    @property
    def triton_max_in_flight(self) -> int:
        """Triton requests one worker keeps in flight: worker_max_in_flight for each GPU serving text2semantic."""
        return self.worker_max_in_flight * self.triton_gpu_count

    @property
    def active_checkpoint_dir(self) -> Path:
        """The real checkpoint when present, else the tiny random one."""
        if (self.checkpoint_dir / "model.pth").exists():
            return self.checkpoint_dir
        return self.tiny_checkpoint_dir

    def secret(self, name: str) -> str:
        value = getattr(self, name)
        assert isinstance(value, SecretStr), name
        return value.get_secret_value()


def render_env_example() -> str:
    """`.env.example`, generated from the fields above so that the two cannot drift (a test compares them)."""
    lines = [
        "# VoiceReel settings: every VR_* variable, its default and what it does.",
        "# Generated by `python -m voicereel.settings > .env.example`; uncomment what you change.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, list):
            value = ",".join(str(v) for v in default)
        elif default is None:
            value = ""
        elif isinstance(default, StrEnum):
            value = default.value
        else:
            value = str(default)
        lines.append(f"# {field.description}")
        lines.append(f"# VR_{name.upper()}={value}")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, validated once at start."""
    return Settings()


if __name__ == "__main__":
    print(render_env_example(), end="")
