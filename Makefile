# BCX: two commands set up a fresh Debian/Ubuntu machine (as root):
#   make run    install what is missing, start a private redis-server if none is reachable,
#               run every component under honcho
#   make test   install what is missing, run ruff and every test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | md5sum | cut -c1-12)
# command:package pairs the tests need beyond Redis (browser tests, Highcharts from npm,
# unit verification).
TEST_PACKAGES := chromium:chromium npm:npm systemd-analyze:systemd

.PHONY: all setup system venv test lint run demo bench clean

all: test

system:
	@scripts/ensure-system.sh

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

setup: system venv

test: export BCX_EXTRA_PACKAGES = $(TEST_PACKAGES)
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .

run: setup
	$(BIN)/python -m bcx.devstack

bench: setup
	$(BIN)/python bench/store_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
