"""The deployed shape end to end: `python -m gateway` under uvicorn, the admin command's key, a real RQ worker and
Triton (tiny checkpoint). A voice registered from espeak-ng speech becomes ready; a script comes back finished
through `Prefer: wait`; the audio and captions download through the signed URLs; DELETE removes them."""

from __future__ import annotations

import io
import time

import httpx
import soundfile as sf


def test_register_synthesize_download_delete(live_gateway, speech_reference) -> None:
    audio, transcript = speech_reference
    with httpx.Client(base_url=live_gateway.url, headers=live_gateway.headers, timeout=180) as client:
        created = client.post(
            "/v1/speakers",
            data={"name": "Narrator", "lang": "en", "reference_script": transcript},
            files={"reference_audio": ("narrator.wav", audio, "audio/wav")},
        )
        assert created.status_code == 202, created.text
        speaker_id = created.json()["speaker_id"]
        deadline = time.monotonic() + 300
        while (speaker := client.get(f"/v1/speakers/{speaker_id}").json())["status"] == "pending":
            assert time.monotonic() < deadline, "speaker registration did not finish"
            time.sleep(0.5)
        assert speaker["status"] == "ready", speaker

        finished = client.post(
            "/v1/synthesize",
            json={
                "script": [
                    {"speaker_id": speaker_id, "text": "Good morning."},
                    {"speaker_id": speaker_id, "text": "The train leaves at six."},
                ],
                "output_format": "wav",
                "sample_rate": 24000,
                "caption_format": "vtt",
            },
            headers={"Prefer": "wait=120"},
        )
        assert finished.status_code == 200, finished.text
        job = finished.json()
        assert job["status"] == "succeeded" and job["progress"] == 1.0
        assert [c["text"] for c in job["captions"]] == ["Good morning.", "The train leaves at six."]

        # Download URLs carry their own signature: no API key.
        wav = httpx.get(job["audio_url"], timeout=30)
        assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
        samples, rate = sf.read(io.BytesIO(wav.content))
        assert rate == 24000 and abs(len(samples) / rate - job["duration_s"]) < 0.01
        vtt = httpx.get(job["caption_url"], timeout=30)
        assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
        tampered = job["audio_url"].replace("sig=", "sig=0")
        assert httpx.get(tampered, timeout=30).status_code == 403

        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
        assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "expired"
        assert httpx.get(job["audio_url"], timeout=30).status_code == 404
