# `make run` and `make test` bootstrap everything they need by themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG_DIR ?= config
# Each prints one JSON line of figures.
BENCHES := bench/core.py bench/api.py bench/mqtt_ingest.py bench/recorder_codec.py bench/recorder.py

.PHONY: run test bench frontend clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt --upgrade pip
	PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# tests/compat runs an unmodified npm client library (home-assistant-js-websocket) against the
# hub: install it from the lock file when node_modules is missing or the lock file changed.
# Without npm the JavaScript test skips locally (and fails under CI, where it must run).
COMPAT := tests/compat
NPM_STAMP := $(COMPAT)/node_modules/.installed

$(NPM_STAMP): $(COMPAT)/package.json $(COMPAT)/package-lock.json
	@if command -v npm >/dev/null; then \
		cd $(COMPAT) && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else \
		echo "npm not found: the JavaScript client test in $(COMPAT) will not run" >&2; \
	fi

# The web UI's dependencies come from npm at set-up time (once frontend/package.json exists).
frontend:
	@if [ -f frontend/package.json ]; then cd frontend && npm ci --no-audit --no-fund && npm run build; fi

run: $(STAMP) frontend
	$(VENV)/bin/hub run -c $(CONFIG_DIR)

test: $(STAMP) $(NPM_STAMP) frontend
	$(PY) -m pytest

bench: $(STAMP)
	@for b in $(BENCHES); do $(PY) $$b; done

clean:
	rm -rf $(VENV) .pytest_cache
