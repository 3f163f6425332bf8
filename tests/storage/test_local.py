from urllib.parse import parse_qs, urlsplit

import pytest

from voicereel.storage import LocalStorage, ObjectNotFound, make_storage, verify_local_url
from voicereel.storage.signing import local_url


@pytest.fixture
def storage(settings_factory) -> LocalStorage:
    store = make_storage(settings_factory(storage_backend="local"))
    assert isinstance(store, LocalStorage)
    return store


def test_put_get_exists_delete(storage: LocalStorage) -> None:
    storage.put_bytes("jobs/prj_1/job_1/audio.wav", b"RIFF....", "audio/wav")
    assert storage.exists("jobs/prj_1/job_1/audio.wav")
    assert storage.get_bytes("jobs/prj_1/job_1/audio.wav") == b"RIFF...."
    storage.put_bytes("jobs/prj_1/job_1/audio.wav", b"second", "audio/wav")  # overwrite is atomic
    assert storage.get_bytes("jobs/prj_1/job_1/audio.wav") == b"second"
    assert not list(storage.path("jobs/prj_1/job_1/audio.wav").parent.glob(".tmp-*"))
    storage.delete("jobs/prj_1/job_1/audio.wav")
    storage.delete("jobs/prj_1/job_1/audio.wav")  # missing is fine
    assert not storage.exists("jobs/prj_1/job_1/audio.wav")
    with pytest.raises(ObjectNotFound):
        storage.get_bytes("jobs/prj_1/job_1/audio.wav")


def test_delete_prefix_counts_and_spares_neighbours(storage: LocalStorage) -> None:
    for name in ("audio.mp3", "captions.vtt"):
        storage.put_bytes(f"jobs/prj_1/job_1/{name}", b"x", "application/octet-stream")
    storage.put_bytes("jobs/prj_1/job_10/audio.mp3", b"x", "audio/mpeg")
    assert storage.delete_prefix("jobs/prj_1/job_1/") == 2
    assert storage.exists("jobs/prj_1/job_10/audio.mp3")
    assert storage.delete_prefix("jobs/prj_1/job_1/") == 0


def test_keys_cannot_escape_the_root(storage: LocalStorage) -> None:
    with pytest.raises(ValueError):
        storage.put_bytes("../outside", b"x", "text/plain")


def test_signed_url_round_trip_and_tampering(settings_factory) -> None:
    settings = settings_factory(public_base_url="https://api.example.com/", presign_expiry_s=900)
    url = local_url(settings, "jobs/prj_1/job_1/audio.mp3", now=1_000_000)
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == "api.example.com"
    assert parts.path == "/v1/files/jobs/prj_1/job_1/audio.mp3"
    query = parse_qs(parts.query)
    exp, sig = query["exp"][0], query["sig"][0]
    assert exp == str(1_000_900)
    key = parts.path.removeprefix("/v1/files/")

    assert verify_local_url(settings, key, exp, sig, now=1_000_000)
    assert verify_local_url(settings, key, exp, sig, now=1_000_900)  # valid through its last second
    assert not verify_local_url(settings, key, exp, sig, now=1_000_901)  # expired
    assert not verify_local_url(settings, "jobs/prj_1/job_1/audio.wav", exp, sig, now=1_000_000)  # other key
    assert not verify_local_url(settings, key, str(int(exp) + 3600), sig, now=1_000_000)  # extended expiry
    assert not verify_local_url(settings, key, exp + " ", sig, now=1_000_000)
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert not verify_local_url(settings, key, exp, flipped, now=1_000_000)
    assert not verify_local_url(settings, key, "soon", sig, now=1_000_000)
    assert not verify_local_url(settings, "../etc/passwd", exp, sig, now=1_000_000)
    other = settings_factory(url_signing_secret="another-secret")
    assert not verify_local_url(other, key, exp, sig, now=1_000_000)


def test_download_url_expires_after_the_configured_lifetime(storage: LocalStorage) -> None:
    import time

    url = storage.download_url("jobs/prj_1/job_1/audio.mp3", filename="ignored.mp3")
    query = parse_qs(urlsplit(url).query)
    assert set(query) == {"exp", "sig"}
    assert int(query["exp"][0]) - time.time() == pytest.approx(storage.settings.presign_expiry_s, abs=5)
