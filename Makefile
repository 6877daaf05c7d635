# BCX: two commands set up a fresh Debian/Ubuntu machine (as root):
#   make run    install what is missing, start a private redis-server if none is reachable,
#               run every component under honcho
#   make test   install what is missing, run ruff, mypy and every test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | md5sum | cut -c1-12)
# command:package pairs the tests need beyond Redis (browser tests, Highcharts from npm,
# unit verification, the logrotate rules).
TEST_PACKAGES := chromium:chromium npm:npm systemd-analyze:systemd logrotate:logrotate openssl:openssl
# The API benchmark loads the server from a second process with wrk.
BENCH_PACKAGES := wrk:wrk
# Highcharts Stock for the pages comes from npm at the version package-lock.json pins.
RUN_PACKAGES := npm:npm
NODE_STAMP := node_modules/.installed-$(shell cat package.json package-lock.json | md5sum | cut -c1-12)

.PHONY: all setup system venv node test lint mutation run demo bench install uninstall clean

all: test

system:
	@scripts/ensure-system.sh

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# npm ci installs exactly the lock file (it empties node_modules first, old stamps with it);
# --prefer-offline reuses npm's cache when the registry is unreachable.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --prefer-offline
	@touch $@

node: $(NODE_STAMP)

setup: system venv node

# Coverage ([tool.coverage] in pyproject.toml) follows every process the tests start: coverage's
# own .pth hook (installed with it) starts measuring in each Python subprocess (`bcx` commands,
# gunicorn and its forked workers). The exit status stays pytest's; the figure is printed
# after it and the per-file report (missed lines and branches) is left in COV_REPORT.
COV_DIR := $(CURDIR)/.coverage-data
COV_REPORT := $(COV_DIR)/report.txt
test: export BCX_EXTRA_PACKAGES = $(TEST_PACKAGES)
test: export COVERAGE_FILE = $(COV_DIR)/coverage
test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	@rm -rf $(COV_DIR) && mkdir -p $(COV_DIR)
	@$(BIN)/python -m coverage run -m pytest; status=$$?; \
	  $(BIN)/python -m coverage combine --quiet && \
	  $(BIN)/python -m coverage report --show-missing > $(COV_REPORT) && \
	  echo "coverage (lines and branches, every process): $$($(BIN)/python -m coverage report --format=total)% - per file: $(COV_REPORT)"; \
	  exit $$status

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# Mutation testing of the core modules ([tool.mutmut] in pyproject.toml), outside CI: slow.
# MUTATE=... narrows it (mutmut's own glob of mutant names, e.g. 'bcx.rollups*').
mutation: venv
	$(BIN)/mutmut run $(MUTATE)
	$(BIN)/mutmut results

run: export BCX_EXTRA_PACKAGES = $(RUN_PACKAGES)
run: setup
	$(BIN)/python -m bcx.devstack

# The same stack against looping local replays (Procfile.demo): no exchange access needed.
demo: export BCX_EXTRA_PACKAGES = $(RUN_PACKAGES)
demo: setup
	$(BIN)/python -m bcx.demo var/demo/coinbase_demo.session.jsonl
	$(BIN)/python -m bcx.devstack --procfile Procfile.demo

bench: export BCX_EXTRA_PACKAGES = $(BENCH_PACKAGES)
bench: setup
	$(BIN)/python bench/store_bench.py
	$(BIN)/python bench/history_bench.py
	$(BIN)/python bench/replay_bench.py
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/inflight_bench.py --rate 5000
	$(BIN)/python bench/server_bench.py
	$(BIN)/python bench/api_bench.py
	$(BIN)/python bench/rules_bench.py
	$(BIN)/python bench/sse_bench.py
	$(BIN)/python bench/cluster_bench.py

# Boot-time services (README "Install as a service"); both honour DESTDIR and are idempotent.
install: venv node
	@DESTDIR="$(DESTDIR)" BCX_BUILD_PYTHON="$(abspath $(BIN))/python" scripts/install.sh install

uninstall:
	@DESTDIR="$(DESTDIR)" PURGE="$(PURGE)" scripts/install.sh uninstall

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .mypy_cache build *.egg-info .coverage-data mutants
