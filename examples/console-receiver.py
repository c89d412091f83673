#!/usr/bin/env python3
"""Receive a container's pty master from ``--console-socket`` and use it.

    console-receiver.py [--mode relay|print] [--keep] SOCKET_PATH

Listens on SOCKET_PATH (an AF_UNIX stream socket it creates, and removes on
exit), accepts one runtime connection, and takes the one fd sent with
SCM_RIGHTS (the message body names it, "/dev/ptmx").  Then:

  relay  (default) copy our stdin to the master and the master to our stdout,
         as ``pyrunc exec -t`` would; our stdin goes raw when it is a terminal;
  print  only copy what the process writes to our stdout; input is not read.

Either way it stops once the process side of the pty is closed (the master
reads EIO) and exits 0.  "listening on SOCKET_PATH" goes to stderr once
connections are accepted, so a script can wait for that line before starting
the runtime.  With --keep it accepts further connections, one after the other.

Usage with pyrunc:

    examples/console-receiver.py /tmp/console.sock &
    pyrunc exec -t -d --console-socket /tmp/console.sock CONTAINER sh

Standard library only: it runs anywhere Python 3.9+ does.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import select
import socket
import sys
import termios
import tty
from collections.abc import Iterator

CHUNK = 32 * 1024


def receive_master(listener: socket.socket) -> tuple[int, str]:
    """Accept one connection; the fd and the name the runtime sent with it."""
    conn, _ = listener.accept()
    with conn:
        message, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise SystemExit(f"console-receiver: expected one fd, got {len(fds)}")
    return fds[0], message.decode(errors="replace")


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_master(master: int) -> bytes:
    """b"" once the process side is gone: Linux reports that as EIO, not EOF."""
    try:
        return os.read(master, CHUNK)
    except OSError as err:
        if err.errno == errno.EIO:
            return b""
        raise


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Keys go to the container's terminal uninterpreted; ours is restored after."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def copy(master: int, stdin: int | None, stdout: int) -> None:
    """Copy until the master hangs up; ``stdin`` None means output only."""
    readers = [master] if stdin is None else [master, stdin]
    while True:
        ready, _, _ = select.select(readers, [], [])
        if master in ready:
            data = read_master(master)
            if not data:
                return
            write_all(stdout, data)
        if stdin is not None and stdin in ready:
            data = os.read(stdin, CHUNK)
            if data:
                write_all(master, data)
            else:
                readers.remove(stdin)  # our input ended; the process's may not have


def serve(path: str, mode: str, keep: bool) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    try:
        listener.listen(1)
        print(f"listening on {path}", file=sys.stderr, flush=True)
        while True:
            master, name = receive_master(listener)
            if name != "/dev/ptmx":
                print(f"console-receiver: unexpected message {name!r}", file=sys.stderr)
            try:
                if mode == "relay":
                    with raw_terminal(0):
                        copy(master, 0, 1)
                else:
                    copy(master, None, 1)
            finally:
                os.close(master)
            if not keep:
                return
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def main() -> int:
    parser = argparse.ArgumentParser(description="receive a pty master from --console-socket")
    parser.add_argument("socket_path")
    parser.add_argument("--mode", choices=("relay", "print"), default="relay",
                        help="relay: stdin and stdout both ways; print: output only")
    parser.add_argument("--keep", action="store_true",
                        help="serve one connection after another instead of only one")
    args = parser.parse_args()
    try:
        serve(args.socket_path, args.mode, args.keep)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
