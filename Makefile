# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_out

.PHONY: demo test install bench bench-export deepsparse-env zigzag-env bench-zigzag clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of torch; pinned so pip never pulls a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m rigl_hw demo --out $(DEMO_OUT)

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) studies/bench/simulator.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache

# DeepSparse (sparse CPU runtime) lives in its own venv: it pins onnx<1.15 and numpy 1.26.
deepsparse-env:
	$(PYTHON) -m venv .deepsparse
	.deepsparse/bin/pip install --quiet --upgrade pip
	.deepsparse/bin/pip install --quiet deepsparse==1.8.0

bench-export: $(VENV)/.installed
	$(PY) studies/bench/export_runtimes.py --model resnet50 --sparsity 0.9 --batches 1 64

# ZigZag (zigzag-dse, the reference mapper of studies/bench/mapper_vs_zigzag.py) lives in its own venv;
# it imports six without declaring it. The package and the tests never import it.
zigzag-env:
	$(PYTHON) -m venv .zigzag
	.zigzag/bin/pip install --quiet zigzag-dse==3.9.1 six

bench-zigzag: $(VENV)/.installed
	$(PY) studies/bench/mapper_vs_zigzag.py
