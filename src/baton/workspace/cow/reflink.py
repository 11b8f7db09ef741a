"""Reflinks (copy-on-write file clones) and shared extents, asked of the file system itself.

- :func:`supported` — whether two directories are on one file system that clones files (XFS with
  ``reflink=1``, its default since xfsprogs 5.1; btrfs; bcachefs), found by cloning a probe file with
  the ``FICLONE`` ioctl, never assumed from the file system's name. ext4, tmpfs and overlayfs answer
  ``EOPNOTSUPP``/``EINVAL``/``EXDEV``. The answer is cached per pair of devices for the process.
- :func:`extents` — a file's extents from the ``FS_IOC_FIEMAP`` ioctl, with the
  ``FIEMAP_EXTENT_SHARED`` flag the file system sets on an extent that another file (a reflinked copy,
  a snapshot) also uses: what disk accounting needs to tell shared from exclusive bytes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

FICLONE = 0x40049409  # _IOW(0x94, 9, int)
FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap)
EXTENT_LAST = 0x1
EXTENT_UNKNOWN = 0x2  # where the data is, is not known yet (delayed allocation)
EXTENT_DELALLOC = 0x4
EXTENT_SHARED = 0x2000

_FIEMAP = struct.Struct("=QQIIII")  # start, length, flags, mapped extents, extent count, reserved
_EXTENT = struct.Struct("=QQQQQIIII")  # logical, physical, length, 2 reserved, flags, 3 reserved
_BATCH = 64  # extents asked per ioctl: a source file has one or a few
_NOT_SUPPORTED = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS, errno.EPERM}

_probed: dict[tuple[int, int], bool] = {}


def supported(source_dir: Path, target_dir: Path) -> bool:
    """Whether a file in ``source_dir`` can be reflinked into ``target_dir`` (both exist)."""
    devices = (os.stat(source_dir).st_dev, os.stat(target_dir).st_dev)
    if devices not in _probed:
        _probed[devices] = devices[0] == devices[1] and _probe(source_dir, target_dir)
    return _probed[devices]


def _probe(source_dir: Path, target_dir: Path) -> bool:
    with (
        tempfile.TemporaryFile(dir=source_dir, prefix=".reflink-probe-") as source,
        tempfile.TemporaryFile(dir=target_dir, prefix=".reflink-probe-") as target,
    ):
        source.write(b"\0" * 4096)  # a whole block: some file systems clone block ranges only
        source.flush()
        try:
            fcntl.ioctl(target.fileno(), FICLONE, source.fileno())
        except OSError as exc:
            if exc.errno in _NOT_SUPPORTED:
                return False
            raise
        return True


def extents(fd: int) -> Iterator[tuple[int, int, int]]:
    """The file's extents as (physical offset, length, flags); nothing for a file system without
    FIEMAP (tmpfs, overlayfs) or a file with no data on disk."""
    start = 0
    while True:
        request = bytearray(_FIEMAP.size + _BATCH * _EXTENT.size)
        _FIEMAP.pack_into(request, 0, start, 2**64 - 1 - start, 0, 0, _BATCH, 0)
        try:
            fcntl.ioctl(fd, FS_IOC_FIEMAP, request)
        except OSError as exc:
            if exc.errno in _NOT_SUPPORTED:
                return
            raise
        mapped = _FIEMAP.unpack_from(request)[3]
        if mapped == 0:
            return
        for i in range(mapped):
            logical, physical, length, _, _, flags, _, _, _ = _EXTENT.unpack_from(
                request, _FIEMAP.size + i * _EXTENT.size
            )
            yield physical, length, flags
            if flags & EXTENT_LAST:
                return
            start = logical + length
