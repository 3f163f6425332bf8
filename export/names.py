"""Names of the exported graphs (kept free of heavy imports: the CLI parses its arguments before loading torch)."""

from __future__ import annotations

CODEC_ENCODER = "codec_encoder"
CODEC_DECODER = "codec_decoder"
T2S_SLOW_STEP = "t2s_slow_step"
T2S_FAST_STEP = "t2s_fast_step"
CODEC_GRAPHS = (CODEC_ENCODER, CODEC_DECODER)
T2S_GRAPHS = (T2S_SLOW_STEP, T2S_FAST_STEP)
ALL_GRAPHS = CODEC_GRAPHS + T2S_GRAPHS
