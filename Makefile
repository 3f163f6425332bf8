# VoiceReel — `make run` (the whole local stack with a demo) and `make test` (the suite against real services).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages the stack and the tests need; installed only when missing.
SYSTEM_PACKAGES := redis-server postgresql libb64-0d espeak-ng sox prometheus prometheus-alertmanager docker-compose

.PHONY: help install install-system run test test-fast lint export weights tiny dashboard bench-gateway bench-worker freeze clean

help:
	@echo "make run     install, then start Redis, Triton, a worker and the gateway, and render a demo"
	@echo "make test    install, then run the whole test suite against real services"
	@echo "make lint    ruff and mypy"
	@echo "make export  checkpoint -> ONNX (and TensorRT where available) -> model_repository"

install: install-system $(STAMP)

install-system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# fish-speech, descript-* and nvidia-pytriton are installed without their declared requirements (they do not
# resolve, DESIGN §7); what their modules import is in the `engine` extra. constraints.txt pins everything.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c constraints.txt -e '.[engine,dev]'
	$(PY) -m pip install -q --no-deps -c constraints.txt fish-speech descript-audio-codec descript-audiotools nvidia-pytriton
	@touch $(STAMP)

run: install
	$(PY) -m voicereel.devstack

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: install
	$(VENV)/bin/pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy gateway worker voicereel export perf

tiny: install
	$(PY) -m voicereel.engine.checkpoints tiny --out checkpoints/tiny

weights: install
	$(PY) -m voicereel.engine.weights --out checkpoints/openaudio-s1-mini

export: install
	$(PY) -m export $(EXPORT_ARGS)

dashboard: install
	$(PY) -m worker.dashboard

bench-gateway: install
	$(PY) perf/gateway_load.py

bench-worker: install
	$(PY) perf/worker_bench.py

# Re-pin every installed distribution (run after changing dependencies in pyproject.toml).
freeze:
	$(PY) -m pip freeze --exclude-editable | grep -v -E '^(voicereel)[=@ ]' > constraints.txt

clean:
	rm -rf .run .data build
