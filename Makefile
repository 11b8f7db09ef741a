# The two commands of the README: `make demo` (the offline demo) and `make test` (the whole suite).
# Both set up everything they need on a fresh machine: a virtualenv with baton, its test tools and the
# real Claude Code CLI (bundled in the claude-agent-sdk wheel).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/baton demo

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -n 2

bench: setup
	$(PY) bench/run.py
