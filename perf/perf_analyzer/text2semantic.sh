#!/usr/bin/env bash
# perf_analyzer on text2semantic (decoupled: --streaming). Usage: text2semantic.sh GRPC_URL [CONCURRENCY_RANGE
# (default 1:8:7)] [INPUT_JSON (default speech.json)]. For decoupled models perf_analyzer reports the latency of the first response.
here=$(dirname "$0")
PA_EXTRA="--streaming ${PA_EXTRA:-}" exec "$here/run.sh" text2semantic "$1" "${2:-1:8:7}" "${3:-$here/speech.json}"
