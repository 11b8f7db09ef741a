"""The house: rooms in layers, every import (lazy ones included) pointing down or inside its own room,
and no circle between modules. docs/architecture.md draws the same picture."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

GROUND = {"errors", "models", "install", "files", "keys", "settings", "retry", "tracing", "allowlist"}
# lowest first; a room may import its own modules, the ground floor and any room of a lower layer
LAYERS: list[set[str]] = [
    {"agents", "store"},
    {"workspace", "caps"},
    {"sessions", "asking", "environment"},
    {"sync"},
    {"sandbox"},
    {"runner"},
    {"plans", "housekeeping"},
    {"fleet"},
    {"forge"},
    {"service", "testing"},
    {"cli"},
]
API = {"__init__", "sdk"}  # the public API re-exports from every room
# The sandbox starts agents for the runner alone; above it, only these modules may use it as well (to
# describe it, to end what a dead runner left in its control group).
SANDBOX_ENTRY = "baton.sandbox.enclosure"  # the one module of the sandbox the runner imports
SANDBOX_USERS = {
    "baton.housekeeping.doctor",  # baton doctor: how agents are walled in and contained here
    "baton.housekeeping.sweep",  # a dead runner's control group ended
    "baton.service.health",  # /readyz: whether agents can be walled in
}
# The sandbox needs only these rooms below it: never a session, a sync or a run.
SANDBOX_NEEDS = {"agents", "store", "workspace"}
# Sub-rooms: what each may import of its own room outside itself (it sits below the rest of it).
SUBROOMS = {"baton.workspace.cow": {"baton.workspace.gitcmd", "baton.workspace.gitlinks"}}


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "baton").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str:
    """The longest known module that ``name`` (a module or a name inside one) lives in."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {_owner(a.name) for a in node.names if a.name.split(".")[0] == "baton"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            if base.split(".")[0] != "baton":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else _owner(base))
    found.discard(module)
    return found


@functools.cache
def graph() -> dict[str, set[str]]:
    """Each module's imports of baton's modules: parsed once, when a test first asks (at collection
    every xdist worker would parse every module, for the one worker that runs these tests)."""
    return {module: _imports(module, path) for module, path in MODULES.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _layer(room: str) -> int:
    if room in GROUND:
        return -1
    if room in API:
        return len(LAYERS)
    return next(i for i, rooms in enumerate(LAYERS) if room in rooms)


def test_every_module_is_in_a_known_room() -> None:
    unknown = {_room(m) for m in MODULES} - GROUND - API - set().union(*LAYERS)
    assert not unknown, f"rooms missing from LAYERS (and docs/architecture.md): {sorted(unknown)}"


def test_the_ground_floor_is_small() -> None:
    flat = sorted(p.stem for p in (SRC / "baton").glob("*.py"))
    assert set(flat) == GROUND | API, flat


def test_no_import_runs_up_or_sideways() -> None:
    wrong = []
    for module, deps in graph().items():
        room = _room(module)
        for dep in deps:
            other = _room(dep)
            if other == room or (other in GROUND and room not in GROUND):
                continue
            if room in GROUND and other in GROUND:
                continue  # the ground floor's own order is checked by the cycle test
            if _layer(other) >= _layer(room):
                wrong.append(f"{module} -> {dep}")
    assert not wrong, "imports that run up a layer or across to a peer:\n" + "\n".join(sorted(wrong))


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph()[node]):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for module in sorted(graph()):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_circle_between_modules() -> None:
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_only_the_runner_starts_agents_through_the_sandbox() -> None:
    users = {
        m for m, deps in graph().items() if _room(m) != "sandbox" and any(_room(d) == "sandbox" for d in deps)
    }
    others = {m for m in users if _room(m) not in {"runner", *API}} - SANDBOX_USERS
    assert not others, f"modules other than the runner's that import baton.sandbox: {sorted(others)}"
    assert {m for m in users if _room(m) == "runner"}, "the runner no longer imports the sandbox"
    # the runner's one entry to the sandbox: what it needs beyond it, the entry re-exports
    entered = {d for m in users if _room(m) == "runner" for d in graph()[m] if _room(d) == "sandbox"}
    assert entered == {SANDBOX_ENTRY}, (
        f"the runner goes into the sandbox past {SANDBOX_ENTRY}: {sorted(entered)}"
    )
    stale = SANDBOX_USERS - users
    assert not stale, f"SANDBOX_USERS names modules that no longer import the sandbox: {sorted(stale)}"


def test_every_module_docstring_is_a_paragraph() -> None:
    """A module says what it is for in one paragraph (at most 10 lines, its "May import" lines aside);
    measured CLI behaviour lives in docs/agent-clis.md, the reasons for a function in its own docstring."""
    long = {}
    for module, path in MODULES.items():
        doc = ast.get_docstring(ast.parse(path.read_text()), clean=False) or ""
        lines = doc.split("May import")[0].strip("\n").count("\n") + 1
        if lines > 10:
            long[module] = lines
    assert not long, f"module docstrings over 10 lines: {long}"


def test_speed_code_lives_in_one_box_off_every_other_import_path() -> None:
    """The fast path (``sessions ls`` without Typer or SQLAlchemy) is one package, ``baton.cli.fast``,
    and only ``baton.cli``'s entry point imports it: no other module pays for it or depends on it."""
    box = "baton.cli.fast"
    users = {m for m, ds in graph().items() if not m.startswith(box) and any(d.startswith(box) for d in ds)}
    assert users == {"baton.cli"}, f"modules outside the fast path's box that import it: {sorted(users)}"


def test_the_sandbox_needs_no_run() -> None:
    below = {_room(d) for m, deps in graph().items() if _room(m) == "sandbox" for d in deps}
    extra = below - {"sandbox"} - GROUND - SANDBOX_NEEDS
    assert not extra, f"the sandbox imports rooms it should not need: {sorted(extra)}"


@pytest.mark.parametrize("sub", sorted(SUBROOMS))
def test_a_sub_room_sits_below_the_rest_of_its_room(sub: str) -> None:
    room = sub.split(".")[1]
    inside = {m for m in MODULES if m == sub or m.startswith(f"{sub}.")}
    assert inside, f"{sub} has no modules"
    used = {d for m in inside for d in graph()[m] if _room(d) == room and d not in inside}
    extra = used - SUBROOMS[sub]
    assert not extra, f"{sub} imports of {room} more than its git primitives: {sorted(extra)}"


@pytest.mark.parametrize("room", sorted(set().union(*LAYERS)))
def test_each_room_says_what_it_owns_and_may_import(room: str) -> None:
    doc = ast.get_docstring(ast.parse((SRC / "baton" / room / "__init__.py").read_text())) or ""
    assert "May import" in doc, f"baton/{room}/__init__.py does not say what it may import"


# The forge loop (every module of baton.forge outside a forge's package) reaches a forge's package only
# through its registry (docs/architecture.md, Adding a forge).
# a forge is a folder of forge/kinds/ (docs/architecture.md, Adding a forge): every package there is one
FORGES = tuple(
    sorted(
        m
        for m, path in MODULES.items()
        if m.count(".") == 3 and m.startswith("baton.forge.kinds.") and path.name == "__init__.py"
    )
)
FORGE_REGISTRY = "baton.forge.kinds.registry"


def _forge_of(module: str) -> str | None:
    return next((f for f in FORGES if module == f or module.startswith(f"{f}.")), None)


def test_the_forge_loop_reaches_a_forge_only_through_its_registry() -> None:
    assert {"baton.forge.kinds.github", "baton.forge.kinds.gitea", "baton.forge.kinds.gitlab"} <= set(FORGES)
    loop = {m for m in MODULES if m.startswith("baton.forge.") and _forge_of(m) is None} - {FORGE_REGISTRY}
    reaching = {m: sorted(d for d in graph()[m] if _forge_of(d)) for m in loop}
    reached = {m: ds for m, ds in reaching.items() if ds}
    assert not reached, f"the forge loop imports a forge's package: {reached}"
    crossing = {
        m: d for m in MODULES if _forge_of(m) for d in graph()[m] if _forge_of(d) not in (None, _forge_of(m))
    }
    assert not crossing, f"a forge's package imports another's: {crossing}"


# The forge room's wings, in the order of its flow and lowest first: a wing imports its own modules and
# the wings below it, never one above (docs/architecture.md, The forge room's wings).
FORGE_WINGS = ["data", "reading", "kinds", "turn", "writes", "background"]


def _wing(module: str) -> str:
    return module.split(".")[2] if module.count(".") >= 2 else ""


def test_every_forge_module_is_in_a_wing_that_says_what_it_may_import() -> None:
    forge = {m for m in MODULES if m.startswith("baton.forge.")}
    astray = sorted(m for m in forge if _wing(m) not in FORGE_WINGS)
    assert not astray, f"forge modules outside the wings {FORGE_WINGS}: {astray}"
    for wing in FORGE_WINGS:
        doc = ast.get_docstring(ast.parse(MODULES[f"baton.forge.{wing}"].read_text())) or ""
        assert "May import" in doc, f"baton/forge/{wing}/__init__.py does not say what it may import"


def test_no_forge_wing_imports_a_wing_above_it() -> None:
    up = sorted(
        f"{m} -> {d}"
        for m, deps in graph().items()
        if m.startswith("baton.forge.")
        for d in deps
        if d.startswith("baton.forge.") and FORGE_WINGS.index(_wing(d)) > FORGE_WINGS.index(_wing(m))
    )
    assert not up, "forge imports that run up a wing:\n" + "\n".join(up)


# -- a room owns its data -------------------------------------------------------------------------------
# Rooms that keep their own records (records.py) and their own tables and store role (tables.py), and
# the package that holds them.
DATA_ROOMS = {"forge": "baton.forge.data", "plans": "baton.plans", "service": "baton.service"}


def _place(module: str) -> str:
    """A module's room, or its own name on the ground floor (each ground module a place of its own)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _users(module: str, names: set[str]) -> dict[str, set[str]]:
    """Per name defined in ``module``: the places (rooms, ground modules) other than the public API
    whose modules import it from there, lazy imports included."""
    found: dict[str, set[str]] = {name: set() for name in names}
    for other, path in MODULES.items():
        if other == module or _room(other) in API:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == module:
                for alias in node.names:
                    if alias.name in found:
                        found[alias.name].add(_place(other))
    return found


def _classes(module: str, protocols: bool | None = None) -> set[str]:
    """The classes ``module`` defines (``protocols``: only the Protocols, or only the others)."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            is_protocol = any(getattr(b, "id", "") == "Protocol" for b in node.bases)
            if protocols is None or protocols == is_protocol:
                found.add(node.name)
    return found


def test_every_type_left_in_models_is_shared_by_two_rooms() -> None:
    """A type that one room uses (it and the rooms above it, which reach it through that room) is that
    room's: in its ``records.py``, not on the ground floor."""
    alone = {name: places for name, places in _users("baton.models", _classes("baton.models")).items()}
    wrong = {name: sorted(places) for name, places in alone.items() if len(places) < 2}
    assert not wrong, f"types in models.py used by fewer than two rooms (move them to the room): {wrong}"


@pytest.mark.parametrize("room", sorted(DATA_ROOMS))
def test_a_room_that_owns_data_keeps_it_in_records_and_tables(room: str) -> None:
    data = DATA_ROOMS[room]
    for part in ("records", "tables"):
        assert f"{data}.{part}" in MODULES, f"{data.replace('.', '/')}/{part}.py is missing"
    records = _classes(f"{data}.records")
    moved = records & _classes("baton.models")
    assert not moved, f"{room}'s records are stated twice (models.py too): {sorted(moved)}"
    # the store below knows nothing of the room's data
    below = {m for m, deps in graph().items() if _room(m) == "store" for d in deps if _room(d) == room}
    assert not below, f"store modules import {room}: {sorted(below)}"


def test_every_store_role_is_used_by_its_owner_and_the_rooms_above_it() -> None:
    """The shared roles (store/base.py) and each data room's (its tables.py): every role is used, and
    only by its owner's room and rooms above it; a data room's role (or the function that gives it
    over a store) is used by the room itself."""
    wrong = []
    owners = {"baton.store.base": "store", **{f"{data}.tables": r for r, data in DATA_ROOMS.items()}}
    for module, owner in owners.items():
        roles = _classes(module, protocols=True)
        if owner != "store":  # the function that gives a room's role over the store: <role>_store()
            tree = ast.parse(MODULES[module].read_text())
            roles |= {
                n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.endswith("_store")
            }
        users = _users(module, roles)
        for role, places in users.items():
            rooms = {p for p in places if p in set().union(*LAYERS)}
            if not places and (owner == "store" or role.endswith("_store")):  # (a room's Protocol: via it)
                wrong.append(f"{module}.{role}: used by nobody")
            below = sorted(p for p in rooms if _layer(p) < _layer(owner))
            if below:
                wrong.append(f"{module}.{role}: used below its owner {owner}: {below}")
            if owner != "store" and role.endswith("_store") and owner not in places:
                wrong.append(f"{module}.{role}: not used by its own room {owner}")
    assert not wrong, "\n".join(wrong)
