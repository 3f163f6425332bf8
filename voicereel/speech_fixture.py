"""Speech-like reference clips without a person or a download: espeak-ng speaks text to WAV.

Used by `make run`'s demo and by tests to make reference audio on the fly (nothing recorded is committed).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import soundfile as sf

SENTENCES = {
    "en": [
        "The morning train left the station just after six, carrying sleepy commuters into the city.",
        "She opened the old wooden box and found a bundle of letters tied with a faded blue ribbon.",
        "Rain tapped against the window while the kettle began to whistle in the quiet kitchen.",
        "Every map tells a story, but only a few of them lead to somewhere worth going.",
        "The orchestra tuned their instruments as the last guests hurried to their seats.",
        "He counted the steps to the lighthouse and lost track somewhere after two hundred.",
    ],
    "ko": [
        "아침 기차는 여섯 시가 조금 넘어 역을 떠났고 사람들은 창밖을 바라보았다.",
        "그녀는 오래된 나무 상자를 열고 파란 리본으로 묶인 편지 묶음을 찾았다.",
        "창문에 빗방울이 부딪히는 동안 주전자가 조용한 부엌에서 울리기 시작했다.",
    ],
    "ja": [
        "朝の電車は六時過ぎに駅を出発し、眠そうな乗客を街へ運んだ。",
        "彼女は古い木箱を開けて、青いリボンで結ばれた手紙の束を見つけた。",
    ],
}
VOICES = {"en": ["en-us", "en-gb"], "ko": ["ko"], "ja": ["ja"]}


class SpeechFixtureError(RuntimeError):
    pass


def _espeak() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SpeechFixtureError("espeak-ng is not installed (make install-system installs it)")
    return binary


def speak(text: str, path: Path, *, voice: str = "en-us", words_per_minute: int = 160, pitch: int = 50) -> Path:
    """Write `text` spoken by espeak-ng to a WAV file (22.05 kHz mono) at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603 (fixed binary, arguments are ours)
        [_espeak(), "-v", voice, "-s", str(words_per_minute), "-p", str(pitch), "-w", str(path), text],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def reference_clip(path: Path, *, lang: str = "en", min_seconds: float = 32.0, variant: int = 0) -> tuple[Path, str]:
    """A clip of at least `min_seconds` of speech in `lang`, and its transcript.

    `variant` picks a different voice and pitch, so that two demo speakers sound different.
    """
    sentences = SENTENCES.get(lang, SENTENCES["en"])
    voices = VOICES.get(lang, VOICES["en"])
    voice = voices[variant % len(voices)]
    pitch = 35 + 25 * (variant % 3)
    spoken: list[str] = []
    while True:
        spoken.append(sentences[len(spoken) % len(sentences)])
        transcript = " ".join(spoken)
        speak(transcript, path, voice=voice, pitch=pitch)
        if sf.info(str(path)).duration >= min_seconds:
            return path, transcript
