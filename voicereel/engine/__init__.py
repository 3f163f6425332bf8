"""Speech engine: fish-speech checkpoints, the codec, batched text-to-semantic generation.

Everything here runs inside Triton's python backend (or in tests); the gateway never imports it.
"""
