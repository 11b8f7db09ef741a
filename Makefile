# The two commands of the README: `make demo` (the offline demo) and `make test` (the whole suite).
# Both set up everything they need on a fresh machine: a virtualenv with baton, its test tools and the
# real agent CLIs: Claude Code (bundled in the claude-agent-sdk wheel), and the pinned Codex and
# Gemini CLIs from npm (package-lock.json), linked into the virtualenv's bin so baton finds them; and
# Debian's Chromium, which the dashboard's browser tests drive through Playwright (never
# `playwright install`: it downloads a browser, and the machine may be offline).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup chromium demo test lint bench
setup: $(VENV)/.installed chromium

# Debian's Chromium, when /usr/bin/chromium is missing: as root, or through sudo; otherwise say how.
CHROMIUM := /usr/bin/chromium
APT_CHROMIUM := apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ]; then sh -c '$(APT_CHROMIUM)'; \
		elif command -v sudo >/dev/null; then sudo sh -c '$(APT_CHROMIUM)'; \
		else echo "make setup: $(CHROMIUM) is missing and this is not root (no sudo): run as root: $(APT_CHROMIUM)" >&2; exit 1; fi; \
		[ -x $(CHROMIUM) ] || { echo "make setup: apt-get installed chromium but $(CHROMIUM) is still missing" >&2; exit 1; }; \
	fi

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
