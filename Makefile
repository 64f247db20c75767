# The README's two commands: `make demo` and `make test` (lint, then the tests).
# Both work on a fresh machine with only Python 3.11: they create .venv,
# install the project with the CPU TensorFlow wheel, then run.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-gpu bench venv clean

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cpu,test,data,plots]"
	rm -f $(VENV)/.installed-* && touch $@

demo: venv
	$(PY) scripts/demo.py

test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest -q tests

# GPU tests (tests/test_gpu.py) on a machine with an NVIDIA GPU: their own venv
# with the gpu extra (tensorflow[and-cuda] cannot share one with tensorflow-cpu);
# SLIMNORM_REQUIRE_GPU=1 makes "no GPU visible" a failure instead of skips.
GPU_VENV := .venv-gpu
GPU_PY   := $(GPU_VENV)/bin/python
test-gpu:
	test -x $(GPU_PY) || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_PY) -m pip install --quiet --upgrade pip
	$(GPU_PY) -m pip install --quiet -e ".[gpu,test,data]"
	SLIMNORM_REQUIRE_GPU=1 timeout 600 $(GPU_PY) -m pytest -q -rs tests/test_gpu.py

bench: venv
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) $(GPU_VENV) *.egg-info .pytest_cache
