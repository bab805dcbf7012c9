# camwatch — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.camwatch-req-$(REQ_HASH)
DB ?= sqlite:///camwatch.db
# make demo SOURCE=redis: the generator publishes events to Redis (127.0.0.1:6379) instead of writing files.
SOURCE ?= folder

.PHONY: venv test lint demo dashboard chromium benchmarks clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	@rm -f $(VENV)/.camwatch-req-*
	@touch $@

# The browser test drives Debian's Chromium through Playwright (no browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: venv chromium
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy camwatch worker db dashboard demo

demo: venv
	$(PY) -m demo.run --source $(SOURCE)

dashboard: venv
	$(PY) -m worker dashboard --db $(DB)

benchmarks: venv
	$(PY) benchmarks/cam_throughput.py
	$(PY) benchmarks/worker_throughput.py
	$(PY) benchmarks/queue_throughput.py
	$(PY) benchmarks/dashboard_latency.py

clean:
	rm -rf .pytest_cache .ruff_cache .mypy_cache test-output
