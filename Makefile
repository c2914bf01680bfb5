# UniParser SDK -- the two commands of README.md:
#   make demo   set up, export the embedded default model, parse the bundled samples, evaluate
#   make test   set up and run the test suite
# Both create the virtual environment themselves (.venv, or VENV=path).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: venv test test-gpu demo kernels cuda-check clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

test: venv
	$(PY) -m uniparser_sdk.kernels.build --cuda-check
	$(PY) -m pytest -q tests

test-gpu: venv
	$(PY) -m pytest -q -m gpu tests

kernels: venv
	$(PY) -m uniparser_sdk.kernels.build

cuda-check: venv
	$(PY) -m uniparser_sdk.kernels.build --cuda-check

clean:
	rm -rf build kernels/build out .pytest_cache
