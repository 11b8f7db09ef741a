"""Wheels a test makes itself, offline: a tiny package of its own (:func:`tiny_wheel`) and the
distributions installed here repacked as wheels with their dependencies (:func:`installed_wheels`), so
a repository's setup can ``pip install --no-index --find-links`` them into a fresh ``.venv``."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

WHEEL = "Wheel-Version: 1.0\nGenerator: baton-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(
    out: Path, name: str, version: str, files: dict[str, bytes], meta: str = "", entry_points: str = ""
) -> Path:
    """A pure-Python wheel of ``files`` (paths inside site-packages) with its dist-info (and its
    ``entry_points.txt``: pip makes the console scripts in the venv's ``bin/`` from it)."""
    norm = canonicalize_name(name).replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    if entry_points:
        files = {**files, f"{info}/entry_points.txt": entry_points.encode()}
    files = {
        **files,
        f"{info}/METADATA": (meta or f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").encode(),
        f"{info}/WHEEL": WHEEL.encode(),
    }
    record = [_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{norm}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for n, d in files.items():
            wheel.writestr(n, d)
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def tiny_wheel(out: Path, name: str = "tinypkg", version: str = "0.1") -> Path:
    """A package ``name`` whose ``answer()`` is 42."""
    return write_wheel(out, name, version, {f"{name}/__init__.py": b"def answer() -> int:\n    return 42\n"})


def installed_wheels(out: Path, *names: str) -> list[Path]:
    """The installed distributions ``names`` and what they require here, each repacked as a wheel."""
    seen: dict[str, Path] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        dist = metadata.distribution(name)
        seen[name] = _repack(out, dist)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _repack(out: Path, dist: metadata.Distribution) -> Path:
    files: dict[str, bytes] = {}
    for file in dist.files or []:
        rel = str(file)
        if rel.startswith("..") or "__pycache__" in rel or ".dist-info/" in rel:
            continue
        files[rel] = Path(str(dist.locate_file(file))).read_bytes()
    meta = dist.read_text("METADATA") or ""
    entry_points = dist.read_text("entry_points.txt") or ""
    return write_wheel(out, dist.metadata["Name"], dist.version, files, meta, entry_points)
