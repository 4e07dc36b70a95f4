# Two commands on a fresh machine: `make demo` (the try-on demo against the embedded emulator) and
# `make test` (lint, types, the whole suite). Both create .venv and install the project first.
# Another Python gets a virtualenv of its own: `make test PYTHON=python3.13` uses .venv-python3.13.
PYTHON ?= python3
VENV ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(notdir $(PYTHON)))
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
NPM_DIR := tests/conformance/js

.PHONY: demo test suite lint bench clean js-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The benchmarks' extra (ffmpeg's binary for the snippet baseline) is not part of a normal install.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

# The official JS SDK for the browser conformance test (skipped there when npm is missing). The test
# drives the system Chromium: no npm package may download a browser of its own.
js-deps:
	@if command -v npm >/dev/null 2>&1 && [ -f $(NPM_DIR)/package-lock.json ]; then \
		cd $(NPM_DIR) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error; fi

demo: $(STAMP)
	$(PY) -m bot demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: lint suite

# The test suite alone (lint is the same on every Python): `make suite PYTHON=python3.13`.
suite: $(STAMP) js-deps
	$(PY) -m pytest

bench: $(BENCH_STAMP)
	$(PY) -m bench

clean:
	rm -rf .venv .venv-* out .pytest_cache .mypy_cache .ruff_cache $(NPM_DIR)/node_modules
