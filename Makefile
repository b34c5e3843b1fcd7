# `make demo` and `make test` each set up .venv first (pinned installs), so a
# fresh clone needs nothing but python3.11 and network access to PyPI.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench setup clean

setup: $(STAMP)

FASHION_MNIST := /usr/share/datasets/fashion-mnist

$(STAMP): pyproject.toml constraints.txt
	@test -d $(FASHION_MNIST) || { echo "Installing Debian's dataset-fashion-mnist (the vision tests and benchmarks read it)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null \
	  || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null; }; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[export,serve,data,test,fleet]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo_bbc.py

test: $(STAMP)
	$(PY) -m pytest -q

# Side-by-side benchmarks; BENCH_MODE=full for the long run (see docs/performance.md).
BENCH_MODE ?= quick
bench: $(STAMP)
	$(PY) -m benchmarks --mode $(BENCH_MODE)

clean:
	rm -rf $(VENV) demo-output
