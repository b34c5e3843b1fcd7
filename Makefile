# `make demo` and `make test` each set up .venv first (pinned installs), so a
# fresh clone needs nothing but python3.11 and network access to PyPI.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[export,serve,data,test]"
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
