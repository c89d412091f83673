"""--pidfd-socket: hand the caller a pidfd of the container's process.

runc 1.2+ connects to the caller's AF_UNIX stream socket and sends one
message: the init type as its data ("standard" for a container's init,
"setns" for an exec'd process) and the pidfd as the single SCM_RIGHTS fd.
With a pidfd the caller (containerd's shim, for one) can wait for and
signal the process without racing pid reuse.
"""

from __future__ import annotations

import os
import socket

from runpy_exec.errors import PyruncError, os_reason

INIT = "standard"
EXEC = "setns"


def connect(path: str) -> socket.socket:
    """Connected before anything starts, so a dead socket leaves no process behind."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise PyruncError(f"pidfd socket {path}: {os_reason(err)}") from None
    return sock


def send(sock: socket.socket, kind: str, pid: int) -> None:
    """Open a pidfd of ``pid`` and send it, then close our copy."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as err:
        raise PyruncError(f"pidfd socket: pidfd_open {pid}: {os_reason(err)}") from None
    try:
        socket.send_fds(sock, [kind.encode()], [pidfd])
    except OSError as err:
        raise PyruncError(f"pidfd socket: send pidfd: {os_reason(err)}") from None
    finally:
        os.close(pidfd)
