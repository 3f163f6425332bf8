"""Deterministic storage keys (CONTRIBUTING "Storage keys"): a retried job writes the same objects again, so
jobs are idempotent and everything a job produced lives under one prefix."""

from __future__ import annotations

import re

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")


def check_key(key: str) -> str:
    """Keys are relative paths of safe characters without empty, '.' or '..' segments."""
    if not _SAFE_KEY.fullmatch(key) or any(part in ("", ".", "..") for part in key.rstrip("/").split("/")):
        raise ValueError(f"invalid storage key {key!r}")
    return key


def upload_key(project_id: str, speaker_id: str) -> str:
    return check_key(f"uploads/{project_id}/{speaker_id}/reference")


def codes_key(project_id: str, speaker_id: str) -> str:
    return check_key(f"speakers/{project_id}/{speaker_id}/codes.npy")


def job_prefix(project_id: str, job_id: str) -> str:
    return check_key(f"jobs/{project_id}/{job_id}/")


def audio_key(project_id: str, job_id: str, extension: str) -> str:
    return check_key(f"{job_prefix(project_id, job_id)}audio.{extension}")


def caption_key(project_id: str, job_id: str, extension: str) -> str:
    return check_key(f"{job_prefix(project_id, job_id)}captions.{extension}")
