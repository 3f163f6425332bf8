#!/usr/bin/env bash
# Builds .dev/ for the GPU machine (no network there): wheels of what fish-speech's modules and our client import
# that its image lacks, and Triton 2.51 (the nvidia-pytriton 0.7.0 build) trimmed to the Python 3.12 stub.
# Usage: bash perf/device/bundle.sh   (then carry .dev in the device call)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.dev
mkdir -p "$out/whl"
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
plat=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
pin() { grep -i "^$1==" constraints.txt || echo "$1"; }
for n in pytest pluggy iniconfig pytest-timeout fish-speech loguru loralib hydra-core omegaconf descript-audio-codec descript-audiotools julius flatten-dict \
         ffmpy importlib-resources markdown2 pystoi torch-stoi pyloudnorm librosa audioread soxr lazy-loader pooch \
         soundfile cffi pycparser docstring-parser fire termcolor decorator platformdirs tritonclient python-rapidjson \
         pydantic pydantic-core pydantic-settings annotated-types typing-inspection python-dotenv; do
  python3 -m pip download -q --no-deps --only-binary=:all: "${plat[@]}" -d "$out/whl" "$(pin $n)"
done
# perf_client is a second copy of perf_analyzer: drop it to stay inside the 64 MiB a device call carries.
zip -q -d "$out"/whl/tritonclient-*.whl 'tritonclient-*.data/data/bin/perf_client' || true
# sdist-only packages: build pure-python wheels here.
python3 -m pip wheel -q --no-deps -w "$out/whl" antlr4-python3-runtime==4.9.3 "$(pin argbind)" "$(pin randomname)"
# Triton server: drop the Python 3.13 runtime and every stub but 3.12 (the GPU image runs Python 3.12).
tmp=$(mktemp -d)
mkdir -p "$tmp/pytriton"
cp -r "$site/pytriton/tritonserver" "$tmp/pytriton/tritonserver"
cp -r "$site/nvidia_pytriton.libs" "$tmp/nvidia_pytriton.libs"
rm -f "$tmp"/nvidia_pytriton.libs/libpython3-*.13.so*
find "$tmp/pytriton/tritonserver/python_backend_stubs" -mindepth 1 -maxdepth 1 ! -name 3.12 -exec rm -rf {} +
rm -rf "$tmp/pytriton/tritonserver/__pycache__"
# Unpacked anywhere, it is what VOICEREEL_TRITON_DIST points at (voicereel.stack).
tar -C "$tmp" -czf "$out/tritonserver.tgz" pytriton nvidia_pytriton.libs
rm -rf "$tmp"
du -sh "$out"/*
