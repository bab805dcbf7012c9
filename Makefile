# camwatch — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.camwatch-req-$(REQ_HASH)
# glibc allocator settings for long-running torch processes (see docs/operations.md).
export MALLOC_MMAP_MAX_ ?= 0
export MALLOC_TRIM_THRESHOLD_ ?= 68719476736

.PHONY: venv test lint typecheck pytest clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	@rm -f $(VENV)/.camwatch-req-*
	@touch $@

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check . || true

typecheck: venv
	$(PY) -m mypy worker db dashboard

pytest: venv
	$(PY) -m pytest -q

test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest -q

clean:
	rm -rf .pytest_cache .ruff_cache .mypy_cache
