import pytest

from voicereel.storage.keys import audio_key, caption_key, check_key, codes_key, job_prefix, upload_key


def test_keys_are_deterministic_and_documented() -> None:
    assert upload_key("prj_1", "spk_2") == "uploads/prj_1/spk_2/reference"
    assert codes_key("prj_1", "spk_2") == "speakers/prj_1/spk_2/codes.npy"
    assert job_prefix("prj_1", "job_3") == "jobs/prj_1/job_3/"
    assert audio_key("prj_1", "job_3", "mp3") == "jobs/prj_1/job_3/audio.mp3"
    assert caption_key("prj_1", "job_3", "vtt") == "jobs/prj_1/job_3/captions.vtt"


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a//b", "./a", "a/./b", "a b", "a\\b", "a?b", "..", "é"])
def test_unsafe_keys_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        check_key(bad)
