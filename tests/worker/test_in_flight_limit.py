"""The worker's in-flight limit scales with the GPUs serving text2semantic (one engine, its own slots, per GPU)."""

import asyncio

import pytest
from pydantic import ValidationError

from voicereel.settings import Settings
from voicereel.triton_client import TtsClient


def test_limit_is_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None)
    assert (s.triton_gpu_count, s.triton_max_in_flight) == (1, s.worker_max_in_flight)
    monkeypatch.setenv("VR_TRITON_GPU_COUNT", "4")
    monkeypatch.setenv("VR_WORKER_MAX_IN_FLIGHT", "24")
    assert Settings(_env_file=None).triton_max_in_flight == 96
    with pytest.raises(ValidationError):
        Settings(_env_file=None, triton_gpu_count=0)


@pytest.mark.parametrize("gpus", [1, 2, 4])
def test_tts_client_admits_the_scaled_limit(gpus: int) -> None:
    settings = Settings(_env_file=None, worker_max_in_flight=3, triton_gpu_count=gpus)

    async def admitted() -> int:
        client = TtsClient(settings)  # no server needed: the channel connects on the first call
        try:
            taken = 0
            while not client.slots.locked():
                await client.slots.acquire()
                taken += 1
            return taken
        finally:
            await client.close()

    assert asyncio.run(admitted()) == 3 * gpus
