# `make demo` and `make test` each set up .venv first (pinned installs), so a
# fresh clone needs nothing but python3.11 and network access to PyPI.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean

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

clean:
	rm -rf $(VENV) demo-output
