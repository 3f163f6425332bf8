"""Audio DSP for the worker: decoding and resampling, reference quality, prompt window, stitching, loudness
mastering, true peak and encoding. Pure numpy/soxr/pyloudnorm/soundfile code, no I/O beyond bytes in and out."""

# The codec (and so every PCM chunk Triton returns) runs at this rate.
CODEC_RATE = 44_100
