# Two commands on a fresh machine with Python 3.11:  `make train` (quickstart on CPU)  and  `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: install train test test-all bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/crl train --config configs/quickstart.yaml

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m ""

bench: $(STAMP)
	$(VENV)/bin/crl bench networks
	$(VENV)/bin/crl bench train

clean:
	rm -rf $(VENV) build *.egg-info
