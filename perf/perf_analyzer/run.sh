#!/usr/bin/env bash
# perf_analyzer (tritonclient 2.51, same version as the server) against a running Triton, one codec model.
# Usage: perf/perf_analyzer/run.sh codec_encoder|codec_decoder GRPC_URL [CONCURRENCY_RANGE] [INPUT_JSON]
#   e.g. perf/perf_analyzer/run.sh codec_decoder 127.0.0.1:8001 1:8:7
# perf_analyzer needs libb64-0d (Debian) and libcudart.so.12 (PyPI nvidia-cuda-runtime-cu12) even on CPU; this
# script puts the latter on LD_LIBRARY_PATH from the virtualenv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
model=${1:?model: codec_encoder or codec_decoder}
url=${2:?grpc url, e.g. 127.0.0.1:8001}
range=${3:-1:8:7}
data=${4:-$here/$model.json}
python=${PYTHON:-$root/.venv/bin/python}
cudart=$("$python" -c 'import nvidia.cuda_runtime, os; print(os.path.join(list(nvidia.cuda_runtime.__path__)[0], "lib"))')
export LD_LIBRARY_PATH="$cudart${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$(dirname "$python")/perf_analyzer" -m "$model" -u "$url" -i grpc -b 1 \
  --input-data "$data" --concurrency-range "$range" \
  --measurement-interval "${MEASUREMENT_MS:-10000}" --stability-percentage "${STABILITY:-50}" --max-trials "${MAX_TRIALS:-8}" \
  --percentile 95 ${PA_EXTRA:-}
