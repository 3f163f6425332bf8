"""Job payloads shared by the gateway (validates and stores them in `Job.request`) and the worker (reads them).

Limits that are deployment settings (line length, script size, languages) are checked by the gateway against
`Settings`; the bounds here are the ones no deployment may exceed.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class OutputFormat(StrEnum):
    wav = "wav"
    flac = "flac"
    mp3 = "mp3"
    ogg = "ogg"  # Opus in an Ogg container


class CaptionFormat(StrEnum):
    json = "json"
    vtt = "vtt"
    srt = "srt"


SUPPORTED_SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
# Opus only encodes at these rates; libsndfile resamples nothing for us.
OPUS_SAMPLE_RATES = (8000, 16000, 24000, 48000)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScriptLine(_Strict):
    speaker_id: str = Field(min_length=1, max_length=40, description="A ready speaker of the caller's project.")
    text: str = Field(min_length=1, max_length=20_000, description="What the speaker says.")
    pause_after_ms: int | None = Field(None, ge=0, le=10_000, description="Silence after this line (overrides).")
    temperature: float | None = Field(None, gt=0, le=2.0, description="Sampling temperature for this line.")
    top_p: float | None = Field(None, gt=0, le=1.0, description="Nucleus sampling mass for this line.")
    repetition_penalty: float | None = Field(None, ge=1.0, le=2.0, description="Penalty on repeated codes.")
    seed: int | None = Field(None, ge=0, lt=2**63, description="Seed for reproducible sampling of this line.")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must contain non-whitespace characters")
        return value


class SynthesisRequest(_Strict):
    script: list[ScriptLine] = Field(min_length=1, max_length=5000, description="Lines in the order spoken.")
    output_format: OutputFormat = Field(OutputFormat.wav, description="Container/codec of the delivered audio.")
    sample_rate: int = Field(44100, description=f"One of {SUPPORTED_SAMPLE_RATES}.")
    caption_format: CaptionFormat = Field(CaptionFormat.json, description="Format of the caption file.")
    loudness_lufs: float = Field(-16.0, ge=-40.0, le=-5.0, description="Integrated loudness target (EBU R128).")
    true_peak_dbtp: float = Field(-1.0, ge=-12.0, le=0.0, description="True-peak ceiling of the master.")
    pause_ms: int = Field(300, ge=0, le=10_000, description="Default silence between lines.")
    seed: int | None = Field(None, ge=0, lt=2**63, description="Default seed for lines without their own.")

    @field_validator("sample_rate")
    @classmethod
    def _known_rate(cls, value: int) -> int:
        if value not in SUPPORTED_SAMPLE_RATES:
            raise ValueError(f"sample_rate must be one of {SUPPORTED_SAMPLE_RATES}")
        return value

    def model_post_init(self, _context: object) -> None:
        if self.output_format is OutputFormat.ogg and self.sample_rate not in OPUS_SAMPLE_RATES:
            raise ValueError(f"ogg/opus output needs sample_rate in {OPUS_SAMPLE_RATES}")

    @property
    def characters(self) -> int:
        return sum(len(line.text) for line in self.script)


class RegisterSpeakerRequest(_Strict):
    speaker_id: str
