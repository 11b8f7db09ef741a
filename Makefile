# The two commands of the README: `make demo` (the offline demo) and `make test` (the whole suite).
# Both set up everything they need on a fresh machine: a virtualenv with baton, its test tools and the
# real agent CLIs: Claude Code (bundled in the claude-agent-sdk wheel), and the pinned Codex and
# Gemini CLIs from npm (package-lock.json), linked into the virtualenv's bin so baton finds them.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml package.json package-lock.json
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	npm ci --no-audit --no-fund --loglevel=error
	ln -sf "$(CURDIR)/node_modules/.bin/codex" "$(CURDIR)/node_modules/.bin/gemini" $(VENV)/bin/
	touch $@

demo: setup
	$(VENV)/bin/baton demo

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -n 2

bench: setup
	$(PY) bench/run.py
