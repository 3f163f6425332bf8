#!/usr/bin/env bash
# perf_analyzer on codec_encoder. Usage: codec_encoder.sh GRPC_URL [CONCURRENCY_RANGE (default 1:8:7)] [INPUT_JSON]
exec "$(dirname "$0")/run.sh" codec_encoder "$@"
