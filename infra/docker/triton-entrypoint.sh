#!/usr/bin/env bash
# Start of the Triton image: build the model repository from the mounted checkpoint, then exec tritonserver.
#   VR_CHECKPOINT_DIR       the real checkpoint (openaudio-s1-mini layout), mounted read-only
#   VR_TINY_CHECKPOINT_DIR  where the tiny random checkpoint is made when the real one is absent (not in prod)
#   MODEL_REPOSITORY_DIR    where the repository is written (rebuilt at every start)
#   MODELREPO_SET           space-separated knob overrides, `scope.knob=value` (python -m voicereel.modelrepo knobs)
# Extra arguments are passed to tritonserver.
set -euo pipefail

checkpoint="${VR_CHECKPOINT_DIR:-/checkpoints/openaudio-s1-mini}"
tiny="${VR_TINY_CHECKPOINT_DIR:-/var/lib/voicereel/tiny}"
repository="${MODEL_REPOSITORY_DIR:-/models}"

if [ ! -f "$checkpoint/model.pth" ]; then
  if [ "${VR_PROFILE:-dev}" = prod ]; then
    echo "voicereel-triton: no checkpoint at $checkpoint (model.pth missing); prod never serves the random one" >&2
    exit 66  # EX_NOINPUT
  fi
  echo "voicereel-triton: WARNING: $checkpoint/model.pth not found; serving the TINY RANDOM checkpoint:" \
       "its audio is noise. Mount a real checkpoint (make weights) at $checkpoint." >&2
  if [ ! -f "$tiny/model.pth" ]; then
    python -m voicereel.engine.checkpoints tiny --out "$tiny"
  fi
  checkpoint="$tiny"
fi

build_args=(--checkpoint "$checkpoint" --out "$repository")
for setting in ${MODELREPO_SET:-}; do
  build_args+=(--set "$setting")
done
python -m voicereel.modelrepo build "${build_args[@]}"

exec tritonserver \
  --model-repository="$repository" \
  --http-port=8000 --grpc-port=8001 --metrics-port=8002 \
  --allow-metrics=true --allow-gpu-metrics=true --allow-cpu-metrics=true \
  --strict-readiness=true --exit-on-error=true \
  --log-verbose=0 \
  "$@"
