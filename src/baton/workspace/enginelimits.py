"""rlimits for a container engine that cannot give a container its defaults. A rootful podman without
CAP_SYS_RESOURCE (a container host nested in another, as this project's test machine) asks for nofile
1048576, above its own hard limit: runc fails "error setting rlimit type 7", crun "setrlimit
`RLIMIT_NOFILE`", and no container starts unless ``CONTAINERS_CONF`` lowers them. baton then gives
its own soft limits as ``--ulimit`` flags (:func:`flags`), found once per engine and process: by a
start that failed so (:func:`refused`, then :func:`remember`), or by a probe (:func:`probe`: the
container created and initialised, which is where the runtime sets them, never started).
"""

from __future__ import annotations

import re
import resource
import subprocess
import uuid

REFUSED = re.compile(r"setting rlimit|setrlimit", re.IGNORECASE)
# Processes at most this many: podman holds its own at 32768 on such a host whatever baton's are, and
# Linux counts them per user across the host, not per container (podman's docs advise against it).
NPROC_CAP = 4096
PROBE_SECONDS = 60
_needed: set[str] = set()  # the engines (their programs) found to need them in this process
_probed: set[str] = set()


def refused(text: str) -> bool:
    """Whether an engine's error is a runtime refusing the container's rlimits."""
    return bool(REFUSED.search(text))


def remember(engine: str) -> None:
    _needed.add(engine)


def needed(engine: str) -> bool:
    return engine in _needed


def flags() -> list[str]:
    """``--ulimit`` flags of baton's own soft limits, which an engine it starts can always set."""
    nofile = _soft(resource.RLIMIT_NOFILE, 1024 * 1024)  # podman's own default, when baton has none
    nproc = _soft(resource.RLIMIT_NPROC, NPROC_CAP)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def _soft(which: int, cap: int) -> int:
    soft = resource.getrlimit(which)[0]
    return cap if soft == resource.RLIM_INFINITY else min(soft, cap)


def probe(engine: str, image: str, env: dict[str, str] | None = None) -> list[str]:
    """:func:`flags` when ``engine`` (podman: docker has no ``init``) cannot set its defaults for a
    container of ``image``, else none; asked once per engine and process (0.3 s measured)."""
    if engine in _needed or engine in _probed or not engine.endswith("podman"):
        return flags() if engine in _needed else []
    _probed.add(engine)
    name = f"baton-probe-{uuid.uuid4().hex[:12]}"
    try:
        created = _engine([engine, "create", "--pull=never", "--name", name, "--", image], env)
        if created.returncode == 0:
            initialised = _engine([engine, "init", name], env)
            if initialised.returncode != 0 and refused(initialised.stderr):
                _needed.add(engine)
    finally:
        _engine([engine, "rm", "--force", "--ignore", name], env)
    return flags() if engine in _needed else []


def _engine(argv: list[str], env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=PROBE_SECONDS, env=env, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(argv, 1, "", str(exc))
