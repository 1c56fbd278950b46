# Two commands on a fresh machine with Python 3.11:  `make train` (quickstart on CPU)  and  `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
OGBENCH_STAMP := $(VENV)/.ogbench

.PHONY: install install-gpu install-tpu train test test-all bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The optional `ogbench` extra (OGBench's envs and loader), pinned beside the CPU lock; the tests use it.
$(OGBENCH_STAMP): $(STAMP) requirements-ogbench.lock
	$(VENV)/bin/pip install --quiet -r requirements.lock -r requirements-ogbench.lock
	touch $(OGBENCH_STAMP)

# jax for NVIDIA GPUs (CUDA 12 by default; `make install-gpu CUDA=13`) or TPUs, pinned beside the CPU lock.
CUDA ?= 12
install-gpu: $(STAMP)
	$(VENV)/bin/pip install --quiet -r requirements.lock -r requirements-cuda$(CUDA).lock

install-tpu: $(STAMP)
	$(VENV)/bin/pip install --quiet -r requirements.lock -r requirements-tpu.lock

train: $(STAMP)
	$(VENV)/bin/crl train --config configs/quickstart.yaml

# Two pytest-xdist workers, one test file each at a time (module fixtures stay shared within a file).
TEST_WORKERS ?= 2
test: $(STAMP) $(OGBENCH_STAMP)
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-all: $(STAMP) $(OGBENCH_STAMP)
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m ""

bench: $(STAMP)
	$(VENV)/bin/crl bench networks
	$(VENV)/bin/crl bench train

clean:
	rm -rf $(VENV) build *.egg-info
