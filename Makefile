# Entry points for a fresh machine: `make demo` (the main job), `make test` (the CI suite) and
# `make demo-cluster` (two instances on Redis and PostgreSQL behind nginx; docs/cluster.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-cluster test lint typecheck unit bench web web-screenshot

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m puregrpc_streaming.demo

# Installs redis-server, postgresql and nginx with apt-get where missing (root or sudo -n).
demo-cluster: $(STAMP)
	$(PY) -m puregrpc_streaming.demo_cluster --install

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check puregrpc puregrpc_streaming tests _puregrpc_pytestplugin.py

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict puregrpc puregrpc_streaming _puregrpc_pytestplugin.py

unit: $(STAMP)
	$(VENV)/bin/pytest -q --cov --cov-report=term-missing

test: lint typecheck unit

# The browser console (docs/grpc-web.md): web/console/ -> puregrpc_streaming/web_console/static/.
# npm ci (the exact versions of package-lock.json), the clients protoc-gen-es generates from
# the protos (grpc_tools' protoc), a TypeScript check, the esbuild bundle (the same bytes each time).
web: $(STAMP)
	cd web/console && npm ci --no-audit --no-fund
	cd web/console && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npm run generate
	cd web/console && npm run check && npm run bundle

# docs/web-console.png: the real-browser test (Debian's chromium) saves its screenshot there.
web-screenshot: $(STAMP)
	PUREGRPC_CONSOLE_SCREENSHOT=$(CURDIR)/docs/web-console.png \
		$(VENV)/bin/pytest -q -p no:cacheprovider tests/streaming/test_console_browser.py

# Benchmark suite (bench/README.md): installs its own venvs and h2load, ~15 min; BENCH_QUICK=1 for ~3 min.
bench:
	$(PYTHON) bench/run.py
