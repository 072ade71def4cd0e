# Two entry points on a fresh machine: `make demo` (set up + short search) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch wheel to install; override for a CUDA build, e.g. make TORCH=torch==2.13.0+cu128
TORCH ?= torch==2.13.0
# Ray must keep every socket on loopback and needs no token on a single machine.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export RAY_AUTH_MODE := disabled
export PYTHONUNBUFFERED := 1

.PHONY: setup test demo clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,onnx]"
	touch $@

setup: $(VENV)/.installed  ## create .venv with evonas and its dependencies

test: setup  ## check the import contracts, then run the whole test suite
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --durations=15

demo: setup  ## a short search on CIFAR-10 (synthetic data, labelled so, if CIFAR-10 cannot be had)
	bash scripts/demo.sh

clean:
	rm -rf $(VENV) build *.egg-info
