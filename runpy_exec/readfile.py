"""Read a user's or the runtime's own small file without trusting what the path names.

A config.json, a ``--process`` file or a state.json may be ``/dev/zero``, a
FIFO nobody writes, a directory or a file of gigabytes.  Reading such a path
whole would hang pyrunc or eat the host's memory, so every such read goes
through :func:`read_small_file`: regular files and pipes only, never more than
a limit.  Pipes stay allowed because runc reads ``-p /dev/stdin`` and
``-p <(...)`` too.
"""

from __future__ import annotations

import errno
import os
import stat

# Far above any real config.json (Docker's default seccomp profile is ~30 KB),
# far below what would hurt the host once parsed.
MAX_JSON_BYTES = 16 << 20


def read_small_file(path: str, limit: int = MAX_JSON_BYTES) -> bytes:
    """The file's bytes; an OSError (with strerror) for anything else.

    Opened non-blocking so that a FIFO without a writer cannot hang the open;
    a device, socket or directory is refused before a byte is read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        status = os.fstat(fd)
        mode = status.st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            if stat.S_ISDIR(mode):
                raise OSError(errno.EISDIR, "is a directory", path)
            raise OSError(errno.EINVAL, "not a regular file", path)
        os.set_blocking(fd, True)
        chunks = []
        size = 0
        # A regular file's size asks for just enough: a 1 MiB read allocates
        # (and maps, then unmaps) 1 MiB for a state.json of a few KiB.
        want = status.st_size + 1 if stat.S_ISREG(mode) and status.st_size else 1 << 20
        while chunk := os.read(fd, min(want, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB", path)
        return b"".join(chunks)
    finally:
        os.close(fd)
