"""Reattachable exec sessions: a process under a pty that outlives its clients.

``exec --session NAME`` starts the process detached, as ``-d -t`` would, but
the waiter keeps the pty master, a ring buffer of recent output, and a unix
socket (``sess.NAME`` in the container's state directory) that ``attach``,
``sessions`` and ``kill-session`` talk to in the framed protocol of
:mod:`runpy_exec.sessions.protocol`.  Nothing here is imported by an
ordinary exec.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from runpy_exec import state
from runpy_exec.errors import PyruncError

SOCKET_PREFIX = "sess."
# A unix socket path holds 108 bytes; the socket is reached through
# /proc/self/fd/N/ (any --root length works), which leaves room for this.
MAX_NAME_LENGTH = 64


def check_name(name: str) -> str:
    """Session names follow the container-id rules, at most MAX_NAME_LENGTH long."""
    try:
        state.validate_id(name)
    except PyruncError:
        raise PyruncError(f"invalid session name {name!r}: must be letters, digits, '_', '+', "
                          "'-' and '.', not '.' or '..'") from None
    if len(name) > MAX_NAME_LENGTH:
        raise PyruncError(f"invalid session name {name[:16]!r}...: longer than "
                          f"{MAX_NAME_LENGTH} characters")
    return name


def parse_size(value: str) -> tuple[int, int]:
    """``ROWSxCOLS`` (e.g. ``40x120``) as (rows, cols), each 1-65535."""
    rows, sep, cols = value.lower().partition("x")
    if (sep and rows.isascii() and rows.isdigit() and cols.isascii() and cols.isdigit()
            and 0 < int(rows) < 65536 and 0 < int(cols) < 65536):
        return int(rows), int(cols)
    raise PyruncError(f"invalid size {value!r}: want ROWSxCOLS, e.g. 40x120")


def session_names(state_dir: str) -> list[str]:
    try:
        names = os.listdir(state_dir)
    except FileNotFoundError:
        return []
    return sorted(n[len(SOCKET_PREFIX):] for n in names if n.startswith(SOCKET_PREFIX))


@contextlib.contextmanager
def socket_path(state_dir: str, name: str) -> Iterator[str]:
    """A path to the session's socket short enough for sockaddr_un, whatever --root is."""
    try:
        dir_fd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise PyruncError(f"state directory {state_dir}: {err.strerror}") from None
    try:
        yield f"/proc/self/fd/{dir_fd}/{SOCKET_PREFIX}{name}"
    finally:
        os.close(dir_fd)


def new_socket() -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
