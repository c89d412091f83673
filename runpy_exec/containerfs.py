"""Read a small file from inside a container without trusting the container.

The container owns its root filesystem: its /etc/passwd may be a symlink to
a host path, a FIFO that never yields, a device, or gigabytes long.  Only
this module touches that filesystem on the way to a :class:`ProcessPlan`,
so the rules that keep the host safe live in one place.
"""

from __future__ import annotations

import errno
import os
import stat

from runpy_exec.linux.syscalls import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2
from runpy_exec.resolve import ResolveError

DEFAULT_LIMIT = 1 << 20
# openat2 with RESOLVE_IN_ROOT answers EAGAIN when a rename raced the lookup.
_ATTEMPTS = 8
_MISSING = (errno.ENOENT, errno.ENOTDIR)


def _error(root_path: str, path: str, reason: str) -> ResolveError:
    """Worded as exec's error; create re-raises ``detail`` as its own (see ResolveError)."""
    return ResolveError(f"reading {path} in {root_path}: {reason}")


def _open_path(root_fd: int, path: str) -> int:
    """An O_PATH fd for ``path``, resolved as if ``root_fd`` were "/".

    O_PATH opens nothing: a FIFO cannot block us and a device driver never
    sees an open, whatever the container put there.
    """
    attempt = 1
    while True:
        try:
            return openat2(root_fd, path, os.O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        except BlockingIOError:
            if attempt == _ATTEMPTS:
                raise
            attempt += 1


def _read_regular(path_fd: int, limit: int) -> bytes | None:
    """The file's bytes, or None when it exceeds ``limit``.

    Reopening through /proc/self/fd reopens exactly the inode already
    checked (no second lookup in the container, so no race with a swap).
    """
    fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        chunks = []
        size = 0
        while chunk := os.read(fd, min(65536, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return None
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_container_file(root_path: str, path: str, limit: int = DEFAULT_LIMIT) -> str | None:
    """The text of ``path`` inside the container whose root is ``root_path``.

    ``root_path`` is normally ``/proc/<init pid>/root``.  Symlinks and ``..``
    resolve inside that root, never onto the host.  A missing file is None
    (callers fall back as runc does without /etc/passwd); anything other
    than a regular file of at most ``limit`` bytes is an error rather than a
    silent None, because ignoring a tampered /etc/group would quietly drop
    groups.  Bytes that are not UTF-8 survive as surrogate escapes, the way
    ``os.fsdecode`` would have them.
    """
    try:
        root_fd = os.open(root_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise _error(root_path, path, f"cannot open the container's root: {err.strerror}") from None
    try:
        try:
            path_fd = _open_path(root_fd, path)
        except OSError as err:
            if err.errno in _MISSING:
                return None
            raise _error(root_path, path, os.strerror(err.errno or 0)) from None
        try:
            mode = os.fstat(path_fd).st_mode
            if not stat.S_ISREG(mode):
                raise _error(root_path, path, "not a regular file")
            data = _read_regular(path_fd, limit)
        except OSError as err:
            raise _error(root_path, path, err.strerror or str(err)) from None
        finally:
            os.close(path_fd)
    finally:
        os.close(root_fd)
    if data is None:
        raise _error(root_path, path, f"larger than {limit} bytes")
    return data.decode("utf-8", "surrogateescape")
