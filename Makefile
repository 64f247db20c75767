# The README's two commands: `make demo` and `make test` (lint, then the tests).
# Both work on a fresh machine with only Python 3.11: they create .venv,
# install the project with the CPU TensorFlow wheel, then run.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cpu,test,data,plots]"
	$(PY) -m pip install --quiet --no-deps tf-keras==2.21.0
	rm -f $(VENV)/.installed-* && touch $@

demo: venv
	$(PY) scripts/demo.py

test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest -q tests

bench: venv
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
