# The two commands of the README: `make demo` (the offline demo) and `make test` (the whole suite);
# `make test-fast` is the inner loop (see below).
# Both set up everything they need on a fresh machine: a virtualenv with baton, its test tools and the
# real agent CLIs: Claude Code (bundled in the claude-agent-sdk wheel), and the pinned Codex, Gemini,
# Copilot and OpenCode CLIs from npm (package-lock.json), all five linked into the virtualenv's bin (npm
# also brings the test tools pinned there, the MCP conformance suite among them); and
# Debian's Chromium, which the dashboard's browser tests drive through Playwright (never
# `playwright install`: it downloads a browser, and the machine may be offline).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup chromium servers image-tools shell-tools services demo test test-warm test-fast lint bench image service-images
setup: $(VENV)/.installed $(VENV)/bin/claude chromium servers image-tools shell-tools services

# The services the tests talk to: PostgreSQL, Redis, RabbitMQ on 127.0.0.1. One that does not answer is
# started with the machine's own command (see the machine's notes) and waited for (up to 60 s); when all
# answer, this is three connection attempts. One that cannot be started here (not installed as a
# service, not root) is left to the tests, which start a private throw-away server of their own
# (tests/private_services.py) from the server packages.
ANSWERS = python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()'
PG_START = pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
REDIS_START = redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
	--dir /var/lib/redis --logfile /var/log/redis/ci.log
RABBITMQ_START = rabbitmq-server -detached
define start_service
	@if ! $(ANSWERS) $(1) 2>/dev/null; then \
		echo "make services: $(2) does not answer on 127.0.0.1:$(1); starting it"; \
		if ( $(3) ) >/dev/null 2>&1; then \
			i=0; until $(ANSWERS) $(1) 2>/dev/null; do \
				i=$$((i + 1)); \
				[ $$i -le 120 ] || { echo "make services: $(2) still does not answer on 127.0.0.1:$(1)" >&2; exit 1; }; \
				sleep 0.5; \
			done; \
		else echo "make services: could not start $(2) here; the tests start a private one"; fi; \
	fi
endef
services:
	$(call start_service,5432,PostgreSQL,$(PG_START))
	$(call start_service,6379,Redis,$(REDIS_START))
	$(call start_service,5672,RabbitMQ,$(RABBITMQ_START))

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

# The server packages the tests start private instances from when the machine's services do not answer
# (tests/private_services.py), and xfsprogs for the XFS loop volume of the copy-on-write worktree tests
# (tests/xfs.py): installed through apt as root (or sudo) when one is missing; otherwise the one command
# to run is printed.
APT_SERVERS := apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql redis-server rabbitmq-server xfsprogs
servers:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v redis-server >/dev/null \
		|| [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || ! PATH="$$PATH:/usr/sbin:/sbin" command -v mkfs.xfs >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then sh -c '$(APT_SERVERS)'; \
		elif command -v sudo >/dev/null; then sudo sh -c '$(APT_SERVERS)'; \
		else echo "make setup: the PostgreSQL, Redis or RabbitMQ server is missing and this is not root: run as root: $(APT_SERVERS)" >&2; exit 1; fi; \
	fi

# What `make image` and its test need: podman (runc as its runtime) and debootstrap, for a Debian base
# image made from Debian's packages where no image registry is reachable. Installed as for the servers.
APT_IMAGE_TOOLS := apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y podman runc debootstrap
image-tools:
	@if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then sh -c '$(APT_IMAGE_TOOLS)'; \
		elif command -v sudo >/dev/null; then sudo sh -c '$(APT_IMAGE_TOOLS)'; \
		else echo "make setup: podman or debootstrap is missing and this is not root: run as root: $(APT_IMAGE_TOOLS)" >&2; exit 1; fi; \
	fi

# The images of docs/environment.md's services trial, PostgreSQL and Redis, on a Debian base made from
# Debian's packages (no image registry: deploy/image/base.sh); an image already there is reused. As root.
service-images: image-tools
	deploy/fleet/images.sh postgres redis

# What the docs' pasted blocks call beside baton (the README's tour, docs/service.md's curl examples, run
# as pasted by tests/project/test_readme_tour.py and tests/service/test_service_doc.py): curl and jq.
# Installed as for the servers.
APT_SHELL_TOOLS := apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y curl jq
shell-tools:
	@if ! command -v curl >/dev/null || ! command -v jq >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then sh -c '$(APT_SHELL_TOOLS)'; \
		elif command -v sudo >/dev/null; then sudo sh -c '$(APT_SHELL_TOOLS)'; \
		else echo "make setup: curl or jq is missing and this is not root: run as root: $(APT_SHELL_TOOLS)" >&2; exit 1; fi; \
	fi

$(VENV)/.installed: pyproject.toml package.json package-lock.json
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	npm ci --no-audit --no-fund --loglevel=error
	ln -sf "$(CURDIR)/node_modules/.bin/codex" "$(CURDIR)/node_modules/.bin/gemini" "$(CURDIR)/node_modules/.bin/copilot" "$(CURDIR)/node_modules/.bin/opencode" $(VENV)/bin/
	touch $@

# Claude Code as the wheel bundles it, linked beside the other four (docs/mcp.md's `claude mcp add`)
$(VENV)/bin/claude: $(VENV)/.installed
	@bundled="$$($(PY) -c 'from baton.agents.claude import bundled_claude; print(bundled_claude() or "")')"; \
	if [ -z "$$bundled" ]; then echo "make: the claude-agent-sdk wheel bundles no Claude Code here" >&2; exit 1; fi; \
	ln -sf "$$bundled" $@

# The demo needs only the virtualenv (Python, Node and git): no service, no browser, no root.
demo: $(VENV)/.installed $(VENV)/bin/claude
	$(VENV)/bin/baton demo
	@echo; echo "baton and the agent CLIs are in $(VENV)/bin: run  . $(VENV)/bin/activate  to put them on PATH (the README's tour)"

# baton's container image, localhost/baton:dev (deploy/Dockerfile; works with no image registry: see
# deploy/image/build.sh). ENGINE=docker to use Docker; IMAGE=NAME:TAG for another name.
image:
	deploy/image/build.sh

# A trial fleet on this host from the same manifests (deploy/fleet, an overlay of deploy/kubernetes):
# baton serve, two baton workers, PostgreSQL, Redis and RabbitMQ as pods of `podman kube play`, on the
# host's network (API http://127.0.0.1:28765). As root; builds the images that are missing (from
# Debian's packages, no registry) and makes missing secrets (random passwords) in FLEET_SECRETS
# (deploy/fleet/secrets); a fake GitHub on the host runs the forge loop (deploy/fleet/fake_github.py).
# fleet-down removes the pods (each given its grace), their volumes and secrets, and stops the fake
# GitHub; both are idempotent.
# docs/deploy.md, "A trial fleet with podman".
FLEET_SECRETS ?= deploy/fleet/secrets
.PHONY: fleet-up fleet-down
fleet-up: $(VENV)/.installed image-tools
	FLEET_SECRETS=$(FLEET_SECRETS) PY=$(PY) deploy/fleet/fleet.sh up
fleet-down: $(VENV)/.installed
	FLEET_SECRETS=$(FLEET_SECRETS) PY=$(PY) deploy/fleet/fleet.sh down

lint: setup
	$(VENV)/bin/ruff check src tests bench deploy
	$(VENV)/bin/ruff format --check src tests bench deploy
	$(VENV)/bin/mypy

# The suite: lint and the tests' warm-up side by side (mypy keeps one core busy), then pytest on
# TEST_WORKERS workers: twice this 2-core machine's cores, as two fifths of the tests' time is spent
# waiting (a model's held reply, a process's start, a lease's TTL): with 2 workers the cores were idle
# ~35 % of the run, with 3 ~10 %, with 4 ~1 % (docs/development.md, "The test suite").
TEST_WORKERS ?= 4
test: setup
	@$(MAKE) --no-print-directory -j2 lint test-warm
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=20

# Compiled once before the tests, whatever PYTHONDONTWRITEBYTECODE says (it is set on CI machines; a
# .pyc is read either way): baton's modules (every `baton`, fake agent and mock process the tests start
# would compile them again: ~0.17 s of CPU each on the run path), and the test modules with pytest's
# rewritten asserts, which each xdist worker would rewrite again (~20 s of CPU a worker). Without
# Schemathesis' plugin: its cases (7 s of CPU) are made at collection, and each worker makes its own.
test-warm: $(VENV)/.installed
	$(PY) -m compileall -q src > /dev/null
	@out=$$(PYTHONDONTWRITEBYTECODE= $(PY) -m pytest --collect-only -q -p no:cacheprovider -p no:schemathesis 2>&1) \
		|| { echo "$$out"; exit 1; }; echo "the test modules compiled"

# The inner loop: no `slow` test (a real agent CLI, a large git repo) and no test that needs a service
# beyond SQLite and git (`services`: PostgreSQL, Redis, RabbitMQ, the browser; conftest marks them), and
# ruff only (mypy is `make lint`). Needs the virtualenv, not the services. pytest exits 5 (a failure)
# should the selection ever be empty. `make test` runs everything.
FAST_TESTS ?= not slow and not services
test-fast: test-warm
	$(VENV)/bin/ruff check src tests bench deploy
	$(PY) -m pytest -n 2 --dist worksteal -m "$(FAST_TESTS)"

bench: setup
	$(PY) bench/run.py

# The agent CLIs' compatibility matrix (bench/compat.py): the pinned release, the newest and two older
# ones of each CLI, through tests/agents/test_compat.py's scenarios; writes docs/compat.md and the versions
# `baton doctor` accepts (src/baton/agents/tested.json). Installs the releases under .compat/ (npm and
# PyPI). CI runs only the pinned column (`make test`). AGENTS=claude,codex to run fewer.
AGENTS ?= claude,codex,gemini,copilot,opencode
.PHONY: compat compat-failures bump-agents
compat: $(VENV)/.installed
	$(PY) bench/compat.py --agents $(AGENTS)

# Only the failure events (the resume-fidelity matrix: tests/agents/test_compat_failures.py), the
# second table of each agent in docs/compat.md: the pinned column, or every column with COLUMNS=all.
COLUMNS ?= pinned
compat-failures: $(VENV)/.installed
	$(PY) bench/compat_failures.py --agents $(AGENTS) --columns $(COLUMNS)

# Moving the pins is the checklist in docs/release.md ("Agent CLI pins"); this prints it.
bump-agents:
	@awk '/^## Agent CLI pins/ { p = 1; print; next } /^## / { p = 0 } p' docs/release.md
