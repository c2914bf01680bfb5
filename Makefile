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
	$(PY) -m uniparser_sdk.fused.build --cuda-check
	$(PY) -m pytest -q tests

test-gpu: venv
	$(PY) -m pytest -q -m gpu tests

DEMO := out/demo
# held-out synthetic scenes for the demo's evaluation (seed never used in training)
DEMO_EVAL := --dataset synthetic --num-images 100 --synthetic-seed 31337 --synthetic-size 384x288 --synthetic-persons 1-4

demo: venv
	@echo "== 1/3 export the embedded default model to ONNX (parity report below)"
	$(VENV)/bin/uniparser-export -o $(DEMO)/default_model.onnx
	@echo "== 2/3 parse the bundled sample scenes -> $(DEMO)/predictions"
	$(VENV)/bin/uniparser-predict $(DEMO)/default_model.onnx uniparser_sdk/assets/samples -o $(DEMO)/predictions --cihp
	@echo "== 3/3 evaluate the default model on 100 held-out synthetic scenes"
	$(VENV)/bin/uniparser-eval $(DEMO)/default_model.onnx $(DEMO_EVAL) --no-progress --json $(DEMO)/eval.json
	@echo "demo outputs in $(DEMO)/"

kernels: venv
	$(PY) -m uniparser_sdk.fused.build --all

cuda-check: venv
	$(PY) -m uniparser_sdk.fused.build --cuda-check --trt-check

clean:
	rm -rf build kernels/build out .pytest_cache
