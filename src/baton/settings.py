"""One settings object, resolved once: explicit overrides > environment (``BATON_*``) >
``$BATON_HOME/config.toml`` > defaults, parsed strictly (an unknown key or a value of the wrong type is
an error naming the key and where it came from, never a silent default). Each setting is said once,
here: its field's type, default and meaning for people (an :class:`About`), from which
docs/configuration.md's table is generated (``bench/settings_doc.py``), with the variables only the
environment gives (:data:`ENV_ONLY`) and the words a switch takes (:data:`CHOICES`). :func:`read_config`
is the one reader of ``config.toml``, for the settings and for the tables other rooms own and type
(``[forge.*]``, ``[repo.*]``, ``[prune.*]``): docs/architecture.md, "One decision, one place".
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import platformdirs

from baton import allowlist
from baton.errors import BadInput
from baton.models import Access, Confine, Environment, OnConflict, OnInstructions, SyncHow


@dataclass(frozen=True)
class About:
    """What one setting means, as docs/configuration.md's table says it (the table is generated from
    these: ``bench/settings_doc.py``). The default and the type are the field's own, shown as people
    read them; ``default`` says what an empty default stands for (a value the code computes)."""

    meaning: str  # markdown: links into the other pages may stay
    default: str | None = None  # only where the field's default is empty: what baton uses then
    kind: str | None = None  # what it takes, when its type says too little (a size, names, a form)
    env_only: bool = False  # read from the environment only (BATON_NAME), never from config.toml


def about(meaning: str, **how: Any) -> dict[str, About]:
    """A setting's metadata: ``field(default=..., metadata=about("..."))``."""
    return {"about": About(meaning, **how)}


# the words a switch takes, as types: mypy checks every comparison and assignment, CHOICES lists them
AutoOff = Literal["auto", "off"]  # auto: where the host allows it (probed); off: never
OnOff = Literal["on", "off"]
LogFormat = Literal["text", "json"]
ServicesEngine = Literal["auto", "podman", "docker", "off"]
ServicesNetwork = Literal["host", "publish"]

_SIZE = "size"  # bytes, or 512M, 5G: parse_size
_CLI = "next to baton's Python (its platform package's native binary beside it is run)"


@dataclass(frozen=True)
class Settings:
    """Everything baton reads from its environment; built by :func:`load_settings`. Each field's
    :class:`About` is its meaning, for people and for the docs."""

    # laid out by hand: one line each plus their meaning's, where the formatter would take three times as many
    # fmt: off
    home: Path = field(metadata=about(
        "where everything lives", default="the platform's user data dir", env_only=True))
    ttl_days: float = field(default=30.0, metadata=about("a session expires this long after its last use"))
    lease_ttl: float = field(default=30.0, metadata=about("seconds a lease lives without a heartbeat"))
    heartbeat: float = field(default=5.0, metadata=about("seconds between heartbeats of a running run"))
    retry_backoff: float = field(default=2.0, metadata=about(
        "seconds the first retry of a run waits, doubling each time"))
    store_outage_wait: float = field(default=300.0, metadata=about(
        "seconds the end of a turn waits for a store that cannot be reached (a restart, a failover) to "
        "record its outcome, snapshot and checkpoint, the key's lease renewed as soon as the store answers; "
        "past it the run fails, its work kept on this machine: the key's next run marks it `crashed` and "
        "resumes its conversation"))
    kill_grace: float = field(default=3.0, metadata=about(
        "seconds between SIGTERM and SIGKILL of an agent being stopped"))
    run_timeout: float = field(default=3600.0, metadata=about(
        "seconds an agent may run before it is stopped (`timed_out`, the conversation kept); a run's "
        "`--timeout` wins; 0: no limit"))
    idle_timeout: float = field(default=900.0, metadata=about(
        "seconds an agent may go without a line of output before it is stopped the same way; 0: no limit"))
    setup_timeout: float = field(default=900.0, metadata=about(
        "seconds a repository's environment setup (`.baton/setup.sh`, devcontainer lifecycle commands, "
        "copilot-setup-steps' `run:` steps, a configured `setup`) may run, all its commands together, "
        "before it is stopped and the turn ends `failed` ([environment.md](environment.md)); 0: no limit"))
    environment: str = field(default="host", metadata=about(
        "where a repository's setup and its agent run: `host` (baton's host, in the walls) or `container` "
        "(the image its devcontainer.json names, or builds from its Dockerfile, through "
        "`container_engine`); a forge repository's `environment` and a run's `--environment` win "
        "([environment.md](environment.md#containers))"))
    container_engine: str = field(default="podman", metadata=about(
        "the engine that runs `environment = \"container\"` ([environment.md](environment.md#containers))"))
    unreachable_grace: float = field(default=20.0, metadata=about(
        "seconds an agent may report nothing but failed connections to its model API (a wrong "
        "`ANTHROPIC_BASE_URL`, a server that is down) before the turn ends `failed`, naming the address "
        "and the cause — once baton cannot connect to that address either; 0: leave the agent to its own "
        "retries (minutes) ([cli.md](cli.md#a-model-that-cannot-be-reached))"))
    min_free: str = field(default="100M", metadata=about(
        "a run refuses to start with less free space where `BATON_HOME` lives (bytes, or `512M`, `5G`); "
        "below it `/readyz` fails and a sweep frees space (prune, then eviction)", kind=_SIZE))
    disk_quota: str = field(default="", metadata=about(
        "bytes (`50G`): above it, a sweep evicts the least-recently-used idle worktrees, checkpointed "
        "first ([cli.md](cli.md#disk-and-expiry-du-and-sweep)); empty: no quota", kind=_SIZE))
    key_disk: str = field(default="", metadata=about(
        "bytes (`5G`): one key's disk budget during a run — its worktree, temp dir and agent home, counted "
        "as `du -s` counts them. A run that grows them past it is stopped, the conversation kept: \"the "
        "key's files grew to 5.2 GiB, 204.8 MiB over its disk budget of 5 GiB (BATON_KEY_DISK)\"; a run "
        "that starts over it is stopped as soon as that is measured, and every turn ends with one exact "
        "measure, so a write faster than the watch (a 200 MB file in a second, as the turn ends) still "
        "ends it `limited` (its files kept, the next turn told). Also during a run: free space under "
        "`BATON_MIN_FREE` where `BATON_HOME` lives stops it, whoever wrote. Empty: no budget (a worktree's "
        "size is the repository's; pick one that fits your largest) "
        "([security.md](security.md#disk-what-is-enforced))", kind=_SIZE))
    run_memory: str = field(default="8G", metadata=about(
        "the memory one run's processes may use together (bytes, or `512M`, `4G`; RAM and swap); past it "
        "the kernel kills one of them and the run ends `limited`: \"the agent's processes exceeded the "
        "run's memory limit of 4.0 GiB (BATON_RUN_MEMORY)\", the conversation kept; a run's `memory` wins; "
        "0: no limit. Enforced where runs get a cgroup "
        "([security.md](security.md#what-a-run-leaves-behind-nothing))", kind=_SIZE))
    run_pids: int = field(default=2048, metadata=about(
        "processes and threads one run may have at once (Node and Rust CLIs start tens of threads each); a "
        "fork past it fails, and the run ends `limited`; a run's `pids` wins; 0: no limit"))
    run_cpu: float = field(default=0.0, metadata=about(
        "cores' worth of CPU one run may use (`2`, `0.5`): its processes are throttled past it, never "
        "stopped; a run's `cpu` wins; 0: no limit"))
    on_limit: str = field(default="wait", metadata=about(
        "what a spent usage quota does: `wait` for its reset (the thread is `waiting_for_quota`, a queued "
        "run is queued again until then, `baton run` exits 75 or waits with `--wait-quota`), or "
        "`fallback:<agent>` (that agent carries the thread's turns meanwhile and hands it back); a run's "
        "`--on-limit` and a plan's `on_limit:` win ([agents.md](agents.md#usage-limits))",
        kind="`wait` or `fallback:<agent>`"))
    quota_wait: float = field(default=900.0, metadata=about(
        "seconds runs of a credential wait when its agent met a spent quota without saying when it resets; "
        "doubles for each refusal in a row after a reset (a phantom limit), up to 4 h"))
    quota_max_wait: float = field(default=691200.0, metadata=about(
        "the longest wait for a reset baton believes (8 days: a weekly window); a reset further away is "
        "not believed, and runs try again after this long (the breaker's detail says so)"))
    max_usd: float = field(default=0.0, metadata=about(
        "USD one thread may spend (the cost its agent reports for each turn) before it parks: the next "
        "turn does not start its agent and ends `needs_input`, saying what was spent and how to raise it "
        "(`baton budget`, a forge reply `@baton budget +5`); a run's `--max-usd` and a forge repo's "
        "`max_usd` hold too (the smaller); behind the model gateway with `model_prices`, a turn past it is "
        "stopped at its next model request; 0: no cap ([cli.md](cli.md#spending-caps-baton-budget))"))
    max_tokens: int = field(default=0, metadata=about(
        "input + output tokens one thread may use before it parks the same way (behind the model "
        "gateway, a turn past it is stopped at its next model request); 0: no cap"))
    max_minutes: float = field(default=0.0, metadata=about(
        "wall-clock minutes one thread's turns may run before it parks the same way; 0: no cap"))
    max_turns: int = field(default=0, metadata=about(
        "turns one thread may have before it parks the same way; 0: no cap"))
    repo_max_usd: float = field(default=0.0, metadata=about(
        "USD all threads of one repository may spend together before each of them parks "
        "(`baton budget -r REPO --repo-wide --usd +N` raises it); 0: no cap"))
    repo_max_tokens: int = field(default=0, metadata=about(
        "input + output tokens all threads of one repository may use together; 0: no cap"))
    repo_max_minutes: float = field(default=0.0, metadata=about(
        "wall-clock minutes all threads of one repository may run together; 0: no cap"))
    repo_max_turns: int = field(default=0, metadata=about(
        "turns all threads of one repository may have together; 0: no cap"))
    context_window: str = field(default="", metadata=about(
        "tokens a model's context holds, where baton's table of known windows (by model name: `claude-*` "
        "200k, `gpt-5*` 400k, `gemini-*` 1M) is wrong for you: `N` for every agent, or `NAME=N,NAME=N` "
        "where NAME is an agent (`codex=272000`) or a repository's slug, `*` allowed "
        "(`github.com/acme/*=100000`; a repository's wins over an agent's, an agent's over a bare `N`) "
        "([agent-clis.md](agent-clis.md#conversations-that-outgrow-the-window))",
        default="the table's window of the model the agent reported", kind="`N` or `NAME=N,NAME=N`"))
    context_threshold: float = field(default=0.8, metadata=about(
        "the share of its model's window a conversation may hold: a turn that ends above it makes the "
        "thread's next turn start a new conversation with a recap (a rollover, noted on the run and in "
        "the key's lineage), or compact it in place first where the CLI can (Claude Code's `/compact`); "
        "0: only when the model refuses the conversation as too long"))
    cgroups: AutoOff = field(default="auto", metadata=about(
        "`auto`: a control group per run where the host lets baton make one (cgroup v1 or v2, as root or "
        "in a delegated subtree), holding every process the run starts, with the limits above; `off`: none "
        "(the runner's subreaper still ends what a run leaves running). `baton doctor` says which applies"))
    concurrency: int = field(default=4, metadata=about("runs `baton serve` or a worker executes at once"))
    job_reruns: int = field(default=2, metadata=about(
        "times a submitted run (an API job, a forge turn) is run again, resuming its conversation, when "
        "the process running it died mid-turn (kill -9, a lost machine); then it ends `crashed` and a "
        "forge thread waits for a person. A job's own `retries` raises it; 0: never again"))
    closed_grace_days: float = field(default=7.0, metadata=about(
        "a closed session (expired, or cleaned up by a webhook) can still be resumed this long; then a "
        "sweep purges it"))
    prepared_idle_days: float = field(default=7.0, metadata=about(
        "a repository's prepared environment (its setup's results for one set of inputs, given to each new "
        "thread: [environment.md](environment.md)) no thread was given for this long is removed by a "
        "sweep; under disk pressure the prepared environments go first, before any pruning; 0: never "
        "by age"))
    services_engine: ServicesEngine = field(default="auto", metadata=about(
        "what starts the services a repository's tests need (`.baton/services.toml`: "
        "[environment.md](environment.md#services)): `auto`: podman, else docker, whichever is on `PATH`; "
        "`podman`, `docker`; `off`: none (each turn's note says its services were skipped)"))
    services_network: ServicesNetwork = field(default="host", metadata=about(
        "how a service's port is reached: `host`: the container shares the host's network and is told "
        "its own free port on 127.0.0.1 through its `port_env`; `publish`: its `port` is published on a "
        "free port of 127.0.0.1 (needs the engine's network helper)"))
    services_idle_minutes: float = field(default=30.0, metadata=about(
        "a key's services no turn used for this long are stopped by a sweep (their data stays in the "
        "key's space; the next turn starts them again); 0: only when the key is removed"))
    sweep_interval: float = field(default=86400.0, metadata=about(
        "seconds between the service's sweeps; 0: never"))
    prune_kinds: str = field(default="default", metadata=about(
        "`NAME,NAME`: the ignored, untracked directories a sweep prunes from idle worktrees before it "
        "evicts any ([below](#rebuildable-artefacts-prune)); `default` stands for the built-in list, "
        "`none` turns pruning off", kind="names"))
    forge_reconcile: float = field(default=300.0, metadata=about(
        "seconds between `baton serve`'s reconciles with the configured forges (the first at start); 0: "
        "webhooks only ([forge.md](forge.md#webhooks-and-the-reconcile))"))
    public_url: str = field(default="", metadata=about(
        "where people reach `baton serve` (`https://baton.example.com`): the forge loop's status comments "
        "link each run's dashboard page under it"))
    mcp_hosts: str = field(default="", metadata=about(
        "`HOST[:PORT]`, comma-separated: the names clients reach `baton serve`'s `/mcp` by, besides the "
        "address it is reached at (and the loopback names there) and `public_url`'s; a request whose `Host` "
        "or `Origin` names another is refused ([mcp.md](mcp.md#over-http-mcp-of-baton-serve))",
        kind="names"))
    store_url: str = field(default="", metadata=about(
        "the store; `postgresql+psycopg://...` for many machines (the `postgres` extra)",
        default="`sqlite:///$BATON_HOME/baton.db`"))
    store_lock_timeout: float = field(default=10.0, metadata=about(
        "seconds a store statement waits for a lock another connection holds (PostgreSQL's `lock_timeout`, "
        "SQLite's busy wait) before it fails, tried again by its caller; a lease never queues for its row: "
        "it tries again within its `--wait` ([fleet.md](fleet.md#a-paused-machine))"))
    store_idle_timeout: float = field(default=10.0, metadata=about(
        "seconds a PostgreSQL transaction of baton's may sit idle (`idle_in_transaction_session_timeout`): "
        "a process frozen mid-transaction (a paused VM, SIGSTOP, a swap storm) loses it, and its locks, "
        "then ([fleet.md](fleet.md#a-paused-machine))"))
    store_statement_timeout: float = field(default=30.0, metadata=about(
        "seconds a PostgreSQL statement of baton's may run (`statement_timeout`); migrations and the "
        "writes of transcript chunks and checkpoints are not limited"))
    store_keepalive: float = field(default=30.0, metadata=about(
        "seconds a PostgreSQL connection may be silent before TCP keepalive probes it, from both ends (3 "
        "probes a third of that apart): a peer cut off by the network is dropped within about twice this "
        "([fleet.md](fleet.md#a-paused-machine))"))
    redis_url: str = field(default="", metadata=about(
        "`redis://...`: fast cancel flags, and Redis leases (optional)"))
    broker_url: str = field(default="", metadata=about(
        "`redis://...` or `amqp://...`: runs go through Celery workers (`baton worker`) "
        "([fleet.md](fleet.md))"))
    lease_backend: str = field(default="sql", metadata=about(
        "where leases are held: the store, or Redis (needs `BATON_REDIS_URL`)", kind="`sql` or `redis`"))
    queue: str = field(default="", metadata=about(
        "the Celery queue runs go to and workers read", default="the store's own, `baton.<store id>`"))
    visibility_timeout: float = field(default=86400.0, metadata=about(
        "seconds (Redis broker) before a run a worker took and never acknowledged is delivered again: "
        "longer than the longest run"))
    queued_notice: float = field(default=30.0, metadata=about(
        "seconds until `baton submit --follow` says no worker took its run; 0: never"))
    drain_timeout: float = field(default=240.0, metadata=about(
        "seconds a stopping worker's turns run on before they are handed back; 0: wait for them"))
    claude_bin: str = field(default="", metadata=about(
        "Claude Code binary", default="the SDK's bundled CLI, else `claude` on PATH"))
    codex_bin: str = field(default="", metadata=about(
        "Codex CLI binary", default="`codex` on PATH, else next to baton's Python"))
    gemini_bin: str = field(default="", metadata=about(
        "Gemini CLI binary", default="`gemini` on PATH, else next to baton's Python"))
    copilot_bin: str = field(default="", metadata=about(
        "GitHub Copilot CLI binary", default=f"`copilot` on PATH, else {_CLI}"))
    opencode_bin: str = field(default="", metadata=about(
        "OpenCode binary", default=f"`opencode` on PATH, else {_CLI}"))
    sync: str = field(default="off", metadata=about(
        "`merge` or `rebase`: bring upstream changes into the worktree before every turn; `off`: never"))
    on_conflict: str = field(default="stop", metadata=about(
        "`stop`: a sync's conflict ends the turn (outcome `conflict`, the worktree untouched); `agent`: "
        "leave the conflict markers for the agent, with a note, instead of stopping"))
    on_instructions_change: str = field(default="tell", metadata=about(
        "what a resumed turn does when its agent's instruction files in the worktree (`CLAUDE.md`, "
        "`AGENTS.md`, `.claude/`, `.mcp.json`, ...) changed since its conversation last saw them: `tell`: "
        "its prompt says which changed and how (a bounded diff); `fresh`: a new conversation with a recap, "
        "which reads them itself; a run's `--on-instructions-change` and a forge repo's "
        "`on_instructions_change` win ([below](#instruction-files-that-change-under-a-thread))"))
    git_user_name: str = field(default="baton ({agent})", metadata=about(
        "the git name of each agent's commits and of baton's checkpoints (`{agent}` is replaced)"))
    git_user_email: str = field(default="{agent}@baton.invalid", metadata=about(
        "the git e-mail of each agent's commits and of baton's checkpoints (`{agent}` is replaced)"))
    log_level: str = field(default="INFO", metadata=about(
        "the log of `baton serve` and `baton worker`, in any case (the worker's `--loglevel` overrides it)"))
    log_format: LogFormat = field(default="text", metadata=about(
        "`text`: `TIME LEVEL LOGGER: MESSAGE` lines; `json`: one JSON object per line (`time`, `level`, "
        "`logger`, `message`, and `exc_info` with a traceback), uvicorn's and Celery's lines included"))
    otel: OnOff = field(default="off", metadata=about(
        "`on`: one OpenTelemetry trace per event — a webhook, the reconcile, the dispatch, a job's queue "
        "wait, its run's phases and the agent (given `TRACEPARENT`) — exported over OTLP/HTTP to "
        "`OTEL_EXPORTER_OTLP_ENDPOINT` (the `otel` extra; [deploy.md](deploy.md#tracing)); `off`: "
        "OpenTelemetry is not even imported"))
    access: str = field(default="edit", metadata=about(
        "what an agent may do: `read`, `edit` or `full` (a run's `--access` wins)"))
    confine: str = field(default="auto", metadata=about(
        "wall each agent into its key with Landlock: `auto` (where the kernel can; says so once "
        "otherwise), `required` (refuse, exit 2), `off`"))
    agent_env: str = field(default="", metadata=about(
        "`NAME,NAME`: more environment variables agents get (they get an allow-list; `BATON_*` is refused)",
        kind="names"))
    agent_ports: str = field(default="", metadata=about(
        "`PORT,PORT`: more TCP ports a walled agent may connect to (besides 80, 443, 22, 9418 and its base "
        "URLs')", kind="ports"))
    mount_ns: AutoOff = field(default="auto", metadata=about(
        "`auto`: a walled agent gets its own mount namespace, in which only the paths its walls allow "
        "exist (so a pathname UNIX socket elsewhere, PostgreSQL's or Docker's, is not there to connect to; "
        "its `/proc` shows only its own run's processes; `/etc/shadow` & co are empty files), where the "
        "host lets baton make one (root, or `CAP_SYS_ADMIN` in its user namespace); `off`: never. `baton "
        "doctor` says which applies ([security.md](security.md#what-the-walls-add))"))
    egress: str = field(default=allowlist.DEFAULT, metadata=about(
        "where a walled agent may connect, through baton's egress proxy: by default the package registries "
        "and the host of its repository's remote (`registries, remote`); `none`; hosts (`pypi.org`, "
        "`*.example.com`, `host:8443`, `localhost:8080`, `api.example.com GET HEAD`) and presets, "
        "comma-separated (a list in config.toml); `open`: anywhere on the walls' ports (an opt-out `baton "
        "doctor` and each run's note say). A forge repository's `egress` and a run's `--egress` win. A "
        "refusal is HTTP 403, an audit row and a run event ([security.md](security.md#the-network))",
        kind="list"))
    setup_egress: str = field(default="registries", metadata=about(
        "where a repository's setup may connect when the agent's `egress` is not `open` (with it `open`, "
        "so is the setup's): hosts and presets as `egress` takes them, and always the host of the "
        "repository's HTTP(S) remote; never the agent's model APIs ([environment.md](environment.md#the-"
        "setups-walls))", kind="list"))
    egress_upstream: str = field(default="", repr=False, metadata=about(
        "the operator's HTTP proxy that baton's egress proxy connects through, for a host that reaches "
        "the internet only that way: `http://[user:password@]host:port`; empty: `HTTPS_PROXY` (else "
        "`HTTP_PROXY`) of baton's own environment, minus the hosts its `NO_PROXY` spares; `direct`: "
        "never. Only connections baton's allow-list allowed reach it ([security.md](security.md#the-"
        "network))"))
    net_ns: AutoOff = field(default="auto", metadata=about(
        "`auto`: with `egress` not `open`, a walled agent gets its own network namespace holding only "
        "loopback, reaching out through baton's proxy alone, where the host lets baton make one (root, or "
        "`CAP_SYS_ADMIN` in its user namespace); `off` (or where it cannot): the walls' TCP rule allows "
        "only the proxy's port and the model APIs' ([security.md](security.md#the-network))"))
    model_gateway: OnOff = field(default="on", metadata=about(
        "`on` (the default): an agent's model API key stays outside its walls: the agent is given a token "
        "of its run and baton's model gateway (on the host's loopback) as its base URL, which swaps the "
        "token for the key, lends it only for the model API's own calls, forwards them to the base URL the "
        "operator set (else the vendor's API) and records the tokens the replies count as the run's "
        "`usage.wire`. Claude Code (an API key), Gemini CLI (a Gemini API key), Codex (its model "
        "provider's `env_key`), Copilot CLI (its own provider's key) and OpenCode (its model's provider, "
        "OpenAI- or Anthropic-compatible); logins keep their credential, as `baton doctor` says. `off`: the "
        "key is in the agent's environment (an opt-out `baton doctor` and each run's note say) "
        "([security.md](security.md#the-model-credential))"))
    model_prices: str = field(default="", metadata=about(
        "what your models cost you, in USD per million tokens, so that behind baton's model gateway "
        "(`model_gateway = on`) a USD cap is held as the turn spends (its next model request refused past "
        "it, as for a tokens cap): `MODEL=IN/OUT[/CACHE_READ[/CACHE_WRITE]]`, comma-separated, MODEL the "
        "name a reply names (exact) or `prefix*` (an exact name wins, else the longest prefix), as "
        "`claude-sonnet-4*=3/15/0.3/3.75,gpt-5*=1.25/10/0.125`; a cache price not given is the input's. "
        "baton has no table of its own (prices change: state yours). A reply of a model with no price "
        "leaves its turn's cost unknown: the USD caps are then held at the turn's end, from the cost its "
        "agent reports, and the run's events say so once. A turn whose agent reports no cost (all but "
        "Claude Code) is recorded at this one ([cli.md](cli.md#spending-caps-baton-budget))",
        kind="`MODEL=IN/OUT[/CR[/CW]]`, comma-separated"))
    model_gateway_upstream: str = field(default="", metadata=about(
        "where baton's model gateway sends each agent's model requests (`model_gateway = on`): `URL` for "
        "every agent, or `AGENT=URL` pairs (`claude=https://llm.example.com/anthropic,codex=https://llm."
        "example.com/openai/v1`), comma-separated, an agent's own pair winning; a base URL as the agent's "
        "CLI would take it, with no credentials in it. Empty: the base URL the agent's own configuration "
        "names, else its vendor's API ([security.md](security.md#the-model-credential))",
        default="each agent's own base URL", kind="`URL` or `AGENT=URL`, comma-separated"))
    shared_caches: OnOff = field(default="on", metadata=about(
        "`on`: the threads of a repository share its package managers' caches, in `BATON_HOME/caches/<repo "
        "slug>/@shared/` (npm, pnpm, yarn, pip, uv, cargo's `CARGO_HOME`, Go's module and build caches, "
        "each through its own variable; not at access `read`), walled read-write for that repository's "
        "keys only; `off`: each key caches in its own home. A thread can poison its repository's caches, "
        "never another's ([security.md](security.md#shared-package-caches))"))
    reflink: AutoOff = field(default="auto", metadata=about(
        "`auto`: where `BATON_HOME`'s cache clones and worktrees are on one file system that clones files "
        "(XFS, btrfs; probed, not assumed), a new worktree is a reflinked copy of a pristine checkout of "
        "its commit, sharing its blocks; `off`: always `git worktree add` "
        "([cli.md](cli.md#copy-on-write-worktrees))"))
    # fmt: on
    extra: dict[str, str] = field(default_factory=dict)  # adapters' own (fake_bin): no variable, file or docs

    @property
    def min_free_bytes(self) -> int:
        return parse_size(self.min_free, "min_free")

    @property
    def disk_quota_bytes(self) -> int | None:
        return parse_size(self.disk_quota, "disk_quota") if self.disk_quota else None

    @property
    def run_memory_bytes(self) -> int | None:
        """The memory limit of one run; None: unbounded."""
        size = parse_size(self.run_memory, "run_memory") if self.run_memory else 0
        check_memory(size, "setting 'run_memory'")
        return size or None

    @property
    def key_disk_bytes(self) -> int | None:
        """The disk budget of one key (worktree, temp dir, agent home) during a run; None: no budget."""
        return parse_size(self.key_disk, "key_disk") if self.key_disk else None

    @property
    def agent_env_names(self) -> tuple[str, ...]:
        """The names of ``agent_env`` (comma-separated); BadInput for a ``BATON_*`` name (baton's own
        variables never reach agents) or one that is no variable name."""
        names = tuple(n.strip() for n in self.agent_env.split(",") if n.strip())
        for name in names:
            if name.upper().startswith("BATON_"):
                raise BadInput(f"setting agent_env names {name!r}: baton's own variables never reach agents")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise BadInput(f"setting agent_env names {name!r}, which is no environment variable name")
        return names

    @property
    def mcp_host_names(self) -> tuple[str, ...]:
        """The names of ``mcp_hosts`` (comma-separated); BadInput for one that is no ``HOST[:PORT]``."""
        names = tuple(w.strip().lower() for w in self.mcp_hosts.split(",") if w.strip())
        for name in names:
            if not re.fullmatch(r"(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(:[0-9]{1,5})?", name):
                raise BadInput(f"setting mcp_hosts names {name!r}, which is no HOST or HOST:PORT")
        return names

    @property
    def agent_port_numbers(self) -> tuple[int, ...]:
        """The TCP ports of ``agent_ports`` (comma-separated); BadInput for anything but 1-65535."""
        ports = []
        for word in (w.strip() for w in self.agent_ports.split(",") if w.strip()):
            if not word.isdigit() or not 0 < int(word) < 65536:
                raise BadInput(f"setting agent_ports: {word!r} is not a TCP port (1-65535)")
            ports.append(int(word))
        return tuple(ports)

    @property
    def prune_kind_names(self) -> frozenset[str]:
        """The directory names of ``prune_kinds`` (comma-separated; ``default`` stands for
        :data:`PRUNE_KINDS`, ``none`` for nothing); BadInput for one that is no plain directory name."""
        names: set[str] = set()
        for word in (w.strip() for w in self.prune_kinds.split(",") if w.strip()):
            if word in ("default", "none"):
                names |= set(PRUNE_KINDS) if word == "default" else set()
            elif not prune_kind_ok(word):
                raise BadInput(f"setting prune_kinds names {word!r}, which is no plain directory name")
            else:
                names.add(word)
        return frozenset(names)

    @property
    def context_windows(self) -> dict[str, int]:
        """``context_window`` parsed: a name (an agent, a repository slug pattern) → tokens, ``""`` for
        a bare ``N``; BadInput naming the part that is no ``N`` or ``NAME=N``."""
        windows: dict[str, int] = {}
        for part in (p.strip() for p in self.context_window.split(",") if p.strip()):
            name, _, number = part.rpartition("=")
            if not number.strip().isdigit() or int(number) <= 0 or ("=" in part and not name.strip()):
                raise BadInput(
                    f"setting context_window: {part!r} is not N or NAME=N (tokens, as codex=272000)"
                )
            windows[name.strip()] = int(number)
        return windows

    @property
    def model_gateway_upstreams(self) -> dict[str, str]:
        """``model_gateway_upstream`` parsed: an agent's name → its model API's base URL, ``""`` for a
        bare URL (every agent's); BadInput naming the part that is no http(s) URL or no ``AGENT=URL``."""
        found: dict[str, str] = {}
        for part in (p.strip() for p in self.model_gateway_upstream.split(",") if p.strip()):
            name, url = "", part
            if "=" in part and not re.match(r"https?://", part):
                name, _, url = (s.strip() for s in part.partition("="))
                if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
                    raise BadInput(
                        f"setting model_gateway_upstream: {name!r} is no agent's name (in {part!r})"
                    )
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018  (a malformed port raises)
            except ValueError:
                parts = urlsplit("")
            if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
                raise BadInput(
                    f"setting model_gateway_upstream: {url!r} is not an http(s) URL (URL or AGENT=URL, as "
                    "claude=https://llm.example.com/anthropic)"
                )
            if parts.username or parts.password:
                raise BadInput(
                    "setting model_gateway_upstream: a URL holds credentials (the gateway sends the key)"
                )
            if name in found:
                raise BadInput(f"setting model_gateway_upstream names {name or 'every agent'!r} twice")
            found[name] = url
        return found

    @functools.cached_property
    def model_price_list(self) -> tuple[ModelPrice, ...]:
        """``model_prices`` parsed once: one :class:`ModelPrice` per model or ``prefix*``; BadInput
        naming the part that is no ``MODEL=IN/OUT[/CACHE_READ[/CACHE_WRITE]]`` of finite numbers ≥ 0."""
        found: dict[str, ModelPrice] = {}
        for part in (p.strip() for p in self.model_prices.split(",") if p.strip()):
            name, sep, numbers = (s.strip() for s in part.partition("="))
            if not sep or not name or any(c.isspace() for c in name) or "*" in name[:-1]:
                raise BadInput(
                    f"setting model_prices: {part!r} names no model (MODEL=IN/OUT or prefix*=IN/OUT, "
                    "USD per million tokens, as claude-sonnet-4*=3/15/0.3/3.75)"
                )
            words = numbers.split("/")
            if not 2 <= len(words) <= 4:
                raise BadInput(
                    f"setting model_prices: {part!r} must give 2 to 4 prices (input/output, then cache "
                    "read and cache write), USD per million tokens"
                )
            prices = [_price(word, part) for word in words]
            if name in found:
                raise BadInput(f"setting model_prices prices {name!r} twice")
            found[name] = ModelPrice(name, *prices)
        return tuple(found.values())

    def gateway_upstream(self, agent: str) -> str | None:
        """The base URL ``model_gateway_upstream`` names for ``agent`` (its own, else every agent's);
        None: the agent's own."""
        found = self.model_gateway_upstreams
        return found.get(agent) or found.get("")

    @property
    def db_path(self) -> Path:
        return self.home / "baton.db"

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.db_path}"

    def with_(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModelPrice:
    """What the operator pays for one model (``model_prices``): USD per million tokens of input (not
    read from a cache), output, cache reads and cache writes (None: not given, the input's price)."""

    model: str  # an exact name, or a prefix ending in ``*``
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


MAX_PRICE = 1e6  # USD per million tokens: more is a typo


def _price(word: str, part: str) -> float:
    try:
        value = float(word.strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= MAX_PRICE) or not word.strip():
        raise BadInput(
            f"setting model_prices: {word.strip()!r} in {part!r} is not a price (a number from 0 to "
            f"{MAX_PRICE:g}, USD per million tokens)"
        )
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")  # log_level, in any case
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
# the settings that take one of a few words (a Literal type, or an enum of models.py): load_settings
# refuses any other, the docs list them
CHOICES: dict[str, tuple[str, ...]] = {
    "sync": tuple(m.value for m in SyncHow),
    "on_conflict": tuple(c.value for c in OnConflict),
    "on_instructions_change": tuple(o.value for o in OnInstructions),
    "environment": tuple(e.value for e in Environment),
    "container_engine": ("podman", "docker"),
    "log_level": LOG_LEVELS,
    "log_format": LOG_FORMATS,
    "access": tuple(a.value for a in Access),
    "confine": tuple(c.value for c in Confine),
    "reflink": get_args(AutoOff),
    "shared_caches": get_args(OnOff),
    "otel": get_args(OnOff),
    "cgroups": get_args(AutoOff),
    "mount_ns": get_args(AutoOff),
    "net_ns": get_args(AutoOff),
    "services_engine": get_args(ServicesEngine),
    "services_network": get_args(ServicesNetwork),
    "model_gateway": get_args(OnOff),
}


@dataclass(frozen=True)
class EnvSetting:
    """A setting only the environment gives (never ``config.toml``), read where it is used: a secret
    that must not sit in a file, or what a process needs before any settings are loaded."""

    name: str  # BATON_...
    after: str  # the field whose row it follows in the docs' table
    about: About


ENV_ONLY = (
    EnvSetting("BATON_WEBHOOK_SECRET", "public_url", About(
        "the forges' webhook secret: a delivery is taken only with a valid HMAC signature under it; unset, "
        "every delivery is refused (403) and only the reconcile finds events ([forge.md](forge.md))")),
    EnvSetting("BATON_FORWARDED_ALLOW_IPS", "public_url", About(
        "the addresses of the TLS proxies whose `X-Forwarded-Proto`/`-For` `baton serve` trusts, "
        "comma-separated (`*`: any); behind HTTPS the dashboard's cookie is then Secure (`baton serve "
        "--forwarded-allow-ips`)", default="`127.0.0.1,::1`")),
    EnvSetting("BATON_URL", "public_url", About(
        "`baton mcp`: the URL of the `baton serve` whose threads its tools start, follow and answer "
        "([mcp.md](mcp.md))")),
    EnvSetting("BATON_TOKEN", "public_url", About(
        "`baton mcp`: the API token it calls `baton serve` with (`baton tokens create`); its scope is "
        "what the MCP client may do: `read` lists and reads threads, `run` starts, answers and cancels "
        "turns ([mcp.md](mcp.md))")),
    EnvSetting("BATON_FORGE_CONFIG", "public_url", About(
        "a TOML file (relative to `$BATON_HOME`) holding the `[forge.*]` and `[repo.*]` tables instead of "
        "`config.toml` ([below](#forges-and-repositories))")),
    EnvSetting("BATON_GEMINI_MODEL", "opencode_bin", About(
        "the model Gemini runs (`-m`); else the CLI's own choice (`GEMINI_MODEL`, its `settings.json`), "
        "else its `pro` alias; `auto` lets the CLI route")),
    EnvSetting("BATON_CODEX_MODEL", "opencode_bin", About(
        "the model Codex runs (`-c model=`); else its `config.toml`'s `model`, else Codex's default, "
        "which under a provider of `OPENAI_BASE_URL` is offered no tools (not baton's `ask_human`): name "
        "the server's model")),
    EnvSetting("BATON_GIT_TOKEN", "git_user_email", About(
        "token for HTTPS git remotes (never passed to agents); a GitHub App forge's repositories take "
        "its installation tokens instead ([forge.md](forge.md#setting-up-github-as-an-app))")),
    EnvSetting("BATON_GIT_USERNAME", "git_user_email", About(
        "the user name sent with `BATON_GIT_TOKEN`", default="`x-access-token`")),
    EnvSetting("BATON_AGENTS_EXTRA", "git_user_email", About(
        "`name=module:factory,…`: agents of your own, registered at start "
        "([architecture.md](architecture.md#where-to-add-things))")),
)  # fmt: skip

Table = Literal["forge", "repo", "prune"]  # the tables of config.toml that other rooms own and type
FORGE_TABLES: tuple[Table, ...] = (
    "forge",
    "repo",
)  # [forge.<name>], [repo."owner/name"]: baton.forge.data.config
FORGE_CONFIG_ENV = "BATON_FORGE_CONFIG"  # another file holding those tables
_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name not in ("home", "extra")}


PRUNE_TABLE: Table = "prune"  # config.toml's [prune."<repo slug>"]: baton.housekeeping.prune
# the rebuildable kinds of ``prune_kinds = "default"``: ignored, untracked directories a build makes again
PRUNE_KINDS = (
    *("node_modules", "bower_components", ".next", ".nuxt", ".svelte-kit", ".angular", ".turbo"),
    *(".parcel-cache", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"),
    *(".tox", ".nox", "target", ".gradle", ".dart_tool", "build", "dist"),
)


def prune_kind_ok(name: str) -> bool:
    """A kind is one plain directory name: no separator, glob, ``.``, ``..`` or ``.git``."""
    return bool(re.fullmatch(r"[A-Za-z0-9._+-]{1,100}", name)) and name not in (".", "..", ".git")


_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


# A size's text, which the API's schema states as its pattern too: ASCII classes only, so that Python,
# a JSON Schema validator and pydantic's Rust regex read it alike (``\s`` and ``\d`` differ among them, and
# a case-blind ``K`` matches the Kelvin sign)
SIZE_PATTERN = r"^[ \t]*([0-9]+(\.[0-9]+)?)[ \t]*([KMGTkmgt]?)([iI]?[bB])?[ \t]*$"


def parse_size(text: str, name: str = "size") -> int:
    """``1073741824``, ``512M``, ``50G`` (binary units; ``KiB``/``GB`` spellings too) as bytes."""
    match = re.fullmatch(SIZE_PATTERN, str(text))
    if not match:
        raise BadInput(f"setting {name!r} must be a size such as 1073741824, 512M or 50G, not {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(3).upper()])


MIN_MEMORY, MAX_MEMORY = 16 * 2**20, 2**50  # below 16 MiB no agent CLI starts; above 1 PiB, a typo


def check_memory(size: int, name: str) -> None:
    """A run's memory limit: 0 (none), or 16 MiB to 1 PiB (what a cgroup takes and a CLI survives)."""
    if size and not MIN_MEMORY <= size <= MAX_MEMORY:
        raise BadInput(f"{name} must be 0 (no limit) or from 16M to 1024T, not {size} bytes")


def format_size(n: int | None, missing: str = "-") -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``, ``20.0 GiB`` (``missing`` for None)."""
    if n is None:
        return missing
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = _FIELDS[name].type
    listed = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if name in ("egress", "setup_egress") and listed:
        value = ",".join(value)  # config.toml's list of hosts and presets
    if kind == "int":
        if isinstance(value, bool) or not str(value).strip().isdigit():
            raise BadInput(f"setting {name!r} from {source} must be a whole number ≥ 0, not {value!r}")
        return int(value)
    try:
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not number >= 0:  # also refuses NaN
                raise ValueError
            return number
    except (TypeError, ValueError):
        raise BadInput(
            f"setting {name!r} from {source} must be a non-negative number, not {value!r}"
        ) from None
    if not isinstance(value, str):
        raise BadInput(f"setting {name!r} from {source} must be a string, not {value!r}")
    return value


def load_settings(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Resolve the settings; raises :class:`BadInput` naming a bad key or value."""
    env = os.environ if environ is None else environ
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    home_text = overrides.pop("home", None) or env.get("BATON_HOME") or platformdirs.user_data_dir("baton")
    home = Path(home_text).expanduser().absolute()
    values = _from_file(home / "config.toml")
    for name in _FIELDS:
        env_name = f"BATON_{name.upper()}"
        if env_name in env and env[env_name] != "":
            values[name] = _coerce(name, env[env_name], f"${env_name}")
    for name, value in overrides.items():
        if name not in _FIELDS:
            raise BadInput(f"unknown setting {name!r}")
        values[name] = _coerce(name, value, "the command line")
    settings = Settings(home=home, **values)
    # a malformed size, name or port fails here, named
    settings.min_free_bytes, settings.disk_quota_bytes, settings.key_disk_bytes  # noqa: B018
    settings.run_memory_bytes  # noqa: B018
    settings.agent_env_names, settings.agent_port_numbers  # noqa: B018
    settings.prune_kind_names, settings.context_windows, settings.model_gateway_upstreams  # noqa: B018
    settings.model_price_list  # noqa: B018
    allowlist.parse(settings.egress)
    if not allowlist.parse(settings.egress).open:  # a malformed proxy URL fails here, named
        allowlist.upstream_of(settings.egress_upstream, env)
    allowlist.parse(settings.setup_egress, "setting 'setup_egress'")
    for name, choices in CHOICES.items():
        value = getattr(settings, name)
        if not (name == "log_level" and value.upper() in choices):  # any case, as --loglevel takes it
            _check_choice(name, value, list(choices))
    check_on_limit(settings.on_limit, "setting 'on_limit'")
    _check_bounds(settings)
    return settings


def _check_bounds(settings: Settings) -> None:
    """BadInput for a number out of its setting's range (the types were checked as they were read)."""
    for name in CAPS:
        if not getattr(settings, name) <= MAX_CAP:  # also infinity (1e309)
            raise BadInput(f"setting {name!r} must be a finite number from 0 to {MAX_CAP:g}")
    if settings.context_threshold > 1:
        raise BadInput("setting 'context_threshold' is a share of the window: from 0 (off) to 1")
    if settings.quota_wait < 1 or settings.quota_max_wait < settings.quota_wait:
        raise BadInput("settings quota_wait (at least 1 s) and quota_max_wait (at least quota_wait) disagree")
    for name in STORE_LIMITS:
        if not STORE_LIMIT_MIN <= getattr(settings, name) <= STORE_LIMIT_MAX:
            raise BadInput(
                f"setting {name!r} must be from {STORE_LIMIT_MIN:g} to {STORE_LIMIT_MAX:g} seconds: a store "
                "wait without a bound lets one frozen process hold a key on every machine"
            )


# the spending caps (baton.caps): finite, and at most this (a larger one is a typo)
CAPS = tuple(f"{scope}max_{m}" for scope in ("", "repo_") for m in ("usd", "tokens", "minutes", "turns"))
MAX_CAP = 1e15

# the store's time limits (baton.store.limits): never 0, which PostgreSQL reads as "no limit"
STORE_LIMITS = ("store_lock_timeout", "store_idle_timeout", "store_statement_timeout", "store_keepalive")
STORE_LIMIT_MIN, STORE_LIMIT_MAX = 0.1, 86400.0


# settings that were, and are now read and ignored: a config.toml written when they existed keeps working
RETIRED = {"warm"}  # the warm server, retired on 2026-11-26 (bench/README.md, note 17)


def _from_file(config: Path) -> dict[str, Any]:
    """The settings of ``config.toml`` (none when there is no such file)."""
    file = read_config(config)
    values = {}
    for name, value in file.settings().items():
        if name in RETIRED:
            continue
        if name not in _FIELDS:
            raise BadInput(f"{config}: unknown setting {name!r} (known: {', '.join(sorted(_FIELDS))})")
        values[name] = _coerce(name, value, str(config))
    return values


@dataclass(frozen=True)
class ConfigFile:
    """A TOML config file as read once by :func:`read_config`: its top-level keys, split between the
    flat settings (:func:`load_settings` types them) and the tables other rooms own and type."""

    path: Path
    data: Mapping[str, Any] = field(default_factory=dict)  # this caller's own copy: it may keep it

    def settings(self) -> dict[str, Any]:
        """The flat keys: everything but the owned tables (a ``forge = 1`` is an unknown setting)."""
        owned = (*FORGE_TABLES, PRUNE_TABLE)
        return {k: v for k, v in self.data.items() if not (k in owned and isinstance(v, dict))}

    def table(self, name: Table) -> Any:
        """The value under ``name`` as the file has it (its owner checks that it is a table); {} when
        the file has none."""
        return self.data.get(name, {})


def read_config(path: Path) -> ConfigFile:
    """``path`` read and parsed (an empty :class:`ConfigFile` when it is not a file); BadInput naming
    the file when it is not valid TOML or cannot be read. A text already parsed in this process is not
    parsed again (:func:`_parsed`)."""
    if not path.is_file():
        return ConfigFile(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path} cannot be read: {exc}") from exc
    try:
        data = _parsed(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path} is not valid TOML: {exc}") from exc
    # a copy each: a caller's change to its tables can never reach another's, nor the cache
    return ConfigFile(path, copy.deepcopy(data))


@functools.lru_cache(maxsize=16)
def _parsed(text: str) -> dict[str, Any]:
    """One parse per distinct text per process: settings, the forge loop and pruning read the same
    file, often in one command, and a long-lived server or worker reloads it; keyed by the content (not
    a file's mtime, which a quick rewrite may leave unchanged), so an edit is never missed. A text that
    fails to parse raises each time (lru_cache keeps no exception)."""
    return tomllib.loads(text)


def check_on_limit(value: str, what: str) -> str | None:
    """``on_limit``: ``wait`` or ``fallback:<agent>`` (an agent's name; whether it exists is checked
    when a run names it); the fallback agent's name, None for ``wait``."""
    if value == "wait":
        return None
    name = value.removeprefix("fallback:")
    if name == value or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
        raise BadInput(f"{what} must be 'wait' or 'fallback:<agent>' (as fallback:codex), not {value!r}")
    return name


def _check_choice(name: str, value: str, choices: list[str]) -> None:
    if value not in choices:
        raise BadInput(f"setting {name!r} must be one of {', '.join(choices)}, not {value!r}")
