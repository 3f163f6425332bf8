#!/usr/bin/env bash
# perf_analyzer on tts (BLS, decoupled: --streaming). Usage: tts.sh GRPC_URL [CONCURRENCY_RANGE (default 1:8:7)]
# [INPUT_JSON (default speech.json)]. Needs text2semantic and codec_decoder loaded in the same server.
here=$(dirname "$0")
PA_EXTRA="--streaming ${PA_EXTRA:-}" exec "$here/run.sh" tts "$1" "${2:-1:8:7}" "${3:-$here/speech.json}"
