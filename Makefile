# The README's two commands: `make demo` and `make test` (lint, docs site, tests).
# Both work on a fresh machine with only Python 3.11: they create .venv,
# install the project with the CPU TensorFlow wheel, then run. Afterwards
# `. .venv/bin/activate` puts the `slimnorm` command on the PATH.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)
EXTRAS := cpu,test,data,plots,tensorboard,docs,tflite,onnx
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-quick test-gpu docs bench venv clean

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m pip install --quiet --no-deps tf-keras==2.21.0
	rm -f $(VENV)/.installed-* && touch $@

demo: venv
	$(VENV)/bin/slimnorm demo

# What CI runs (.ci/run): lint, the documentation site (strict), every test.
test: venv
	$(PY) -m ruff check .
	$(MKDOCS)
	$(PY) -m pytest -q tests

# Lint, the site, and the unit tests of the layers, the command and the data code:
# 261 tests: 37 s on the 2-core machine with the kernels compiled (3.6 min under load, compile included).
QUICK_TESTS := cli_main package batch_norm_errors batch_norm_semantics moving_averages \
	training layer_norm instance_norm datasets tfrecord convert slim_flags nets_factory \
	preprocessing plot docs_results
test-quick: venv
	$(PY) -m ruff check .
	$(MKDOCS)
	$(PY) -m pytest -q $(patsubst %,tests/test_%.py,$(QUICK_TESTS))

# Not --quiet: it hides the warnings that --strict turns into errors.
MKDOCS := $(VENV)/bin/mkdocs build --strict --site-dir site
docs: venv
	$(MKDOCS)

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
	$(VENV)/bin/slimnorm bench norms

clean:
	rm -rf $(VENV) $(GPU_VENV) *.egg-info .pytest_cache site
