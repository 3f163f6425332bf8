"""S3 storage against moto's server over HTTP. moto checks neither presigned signatures nor their expiry (it
serves any presigned URL); those properties are checked by recomputing SigV4 independently (sigv4.py)."""

import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from tests.storage.conftest import ACCESS_KEY, SECRET_KEY
from tests.storage.sigv4 import verify_presigned_get
from voicereel.storage import ObjectNotFound, S3Storage
from voicereel.storage.lifecycle import RULE_ID, apply_lifecycle


def test_round_trip_under_the_prefix(s3_storage: S3Storage) -> None:
    s3_storage.put_bytes("jobs/prj_1/job_1/audio.mp3", b"ID3 data", "audio/mpeg")
    assert s3_storage.exists("jobs/prj_1/job_1/audio.mp3")
    assert s3_storage.get_bytes("jobs/prj_1/job_1/audio.mp3") == b"ID3 data"
    head = s3_storage.client.head_object(Bucket=s3_storage.bucket, Key="tenant-a/jobs/prj_1/job_1/audio.mp3")
    assert head["ContentType"] == "audio/mpeg"
    s3_storage.delete("jobs/prj_1/job_1/audio.mp3")
    assert not s3_storage.exists("jobs/prj_1/job_1/audio.mp3")
    with pytest.raises(ObjectNotFound):
        s3_storage.get_bytes("jobs/prj_1/job_1/audio.mp3")


def test_delete_prefix_pages_through_many_objects(s3_storage: S3Storage) -> None:
    for i in range(1005):  # more than one DeleteObjects batch and one listing page
        s3_storage.client.put_object(Bucket=s3_storage.bucket, Key=f"tenant-a/jobs/prj_1/job_1/part{i}", Body=b"")
    s3_storage.put_bytes("jobs/prj_1/job_2/audio.wav", b"x", "audio/wav")
    assert s3_storage.delete_prefix("jobs/prj_1/job_1/") == 1005
    assert s3_storage.exists("jobs/prj_1/job_2/audio.wav")


def _tamper(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_presigned_url_is_signed_expires_and_resists_tampering(s3_storage: S3Storage) -> None:
    s3_storage.put_bytes("jobs/prj_1/job_1/audio.mp3", b"mp3 bytes", "audio/mpeg")
    url = s3_storage.download_url("jobs/prj_1/job_1/audio.mp3", filename="take 1.mp3")
    with urllib.request.urlopen(url, timeout=10) as response:  # moto serves it (without checking)
        assert response.read() == b"mp3 bytes"
        assert response.headers["Content-Disposition"] == 'attachment; filename="take1.mp3"'

    params = dict(parse_qsl(urlsplit(url).query))
    assert params["X-Amz-Expires"] == str(s3_storage.settings.presign_expiry_s) == "900"
    issued = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    def ok(candidate: str, at: datetime = issued) -> bool:
        return verify_presigned_get(candidate, access_key=ACCESS_KEY, secret_key=SECRET_KEY, region="eu-west-1", now=at)

    assert ok(url)
    assert ok(url, issued + timedelta(seconds=900))
    assert not ok(url, issued + timedelta(seconds=901))  # expired after presign_expiry_s
    assert not ok(url.replace("audio.mp3", "audio.wav"))  # other object
    assert not ok(url.replace("/tenant-a/", "/tenant-b/"))
    assert not ok(_tamper(url, "X-Amz-Expires", "604800"))  # longer life
    assert not ok(_tamper(url, "response-content-disposition", 'attachment; filename="x.exe"'))
    assert not ok(_tamper(url, "X-Amz-Date", (issued + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")))
    sig = params["X-Amz-Signature"]
    assert not ok(_tamper(url, "X-Amz-Signature", sig[:-1] + ("0" if sig[-1] != "0" else "1")))
    host = urlsplit(url).netloc
    assert not ok(url.replace(host, "evil.example.com", 1))
    assert not verify_presigned_get(url, access_key=ACCESS_KEY, secret_key="wrong", region="eu-west-1", now=issued)


def test_lifecycle_rule_applies_once_and_keeps_other_rules(s3_storage: S3Storage) -> None:
    client, bucket = s3_storage.client, s3_storage.bucket
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [{"ID": "theirs", "Filter": {"Prefix": "other/"}, "Status": "Enabled", "Expiration": {"Days": 30}}]
        },
    )
    apply_lifecycle(s3_storage.settings, client)
    rules = apply_lifecycle(s3_storage.settings, client)["Rules"]
    ours = [r for r in rules if r["ID"] == RULE_ID]
    assert len(ours) == 1 and len(rules) == 2
    assert ours[0]["Expiration"]["Days"] == 2  # 48 h, at S3's day granularity
    assert ours[0]["Filter"]["Prefix"] == "tenant-a/jobs/"


def test_lifecycle_command(s3_settings, tmp_path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "VR_PROFILE": "test",
        "VR_STORAGE_BACKEND": "s3",
        "VR_S3_BUCKET": s3_settings.s3_bucket + "-cmd",
        "VR_S3_ENDPOINT_URL": s3_settings.s3_endpoint_url,
        "VR_S3_REGION": "eu-west-1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "voicereel.storage.lifecycle", "--create-bucket"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert RULE_ID in done.stdout and '"Days": 2' in done.stdout
