"""Real ptys: the master passed over a unix socket, and relayed to and from a process."""

from __future__ import annotations

import os
import socket
import termios
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runpy_exec.errors import PyruncError
from runpy_exec.linux import console


@pytest.fixture
def pty() -> Iterator[tuple[int, int]]:
    master, replica = os.openpty()
    yield master, replica
    for fd in (master, replica):
        try:
            os.close(fd)
        except OSError:
            continue


def run_on_replica(replica: int, body: Callable[[], None]) -> int:
    """Fork a child whose stdio is the replica, as a container's process's would be."""
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.setsid()
            for target in (0, 1, 2):
                os.dup2(replica, target)
            body()
        except BaseException:
            status = 1
        os._exit(status)
    return pid


def exited(pid: int) -> Callable[[], bool]:
    status: list[int] = []

    def check() -> bool:
        if not status:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                status.append(wait_status)
        return bool(status)

    return check


def test_master_goes_over_the_console_socket(tmp_path: Path, pty: tuple[int, int]) -> None:
    master, replica = pty
    path = str(tmp_path / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        console.send_pty_master(path, master)
        received, name = console.recv_pty_master(listener)
    try:
        assert name == "/dev/ptmx"
        assert os.path.samestat(os.fstat(received), os.fstat(master))
        os.write(replica, b"hello\n")
        assert os.read(received, 100) == b"hello\r\n"
    finally:
        os.close(received)


def test_one_message_with_exactly_one_fd(pty: tuple[int, int]) -> None:
    master, _ = pty
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        console.send_fd(ours, master)
        ours.close()
        data, fds, _, _ = socket.recv_fds(theirs, 4096, 4)
        assert data == b"/dev/ptmx" and len(fds) == 1
        assert theirs.recv(1) == b""  # nothing else follows
        os.close(fds[0])


def test_console_socket_errors(tmp_path: Path, pty: tuple[int, int]) -> None:
    master, _ = pty
    missing = str(tmp_path / "missing.sock")
    with pytest.raises(PyruncError, match=f"console socket {missing}: no such file or directory"):
        console.send_pty_master(missing, master)
    bound_only = str(tmp_path / "bound.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(bound_only)  # bound but not listening: the kernel refuses connections
        with pytest.raises(PyruncError, match=f"console socket {bound_only}: connection refused"):
            console.send_pty_master(bound_only, master)


def test_window_size(pty: tuple[int, int]) -> None:
    master, replica = pty
    console.set_winsize(replica, 40, 132)
    assert console.get_winsize(master) == (40, 132)
    other_master, other_replica = os.openpty()
    try:
        console.copy_winsize(master, other_master)
        assert console.get_winsize(other_replica) == (40, 132)
    finally:
        os.close(other_master)
        os.close(other_replica)
    console.copy_winsize(os.open("/dev/null", os.O_RDONLY), master)  # not a tty: no change
    assert console.get_winsize(master) == (40, 132)


def test_raw_mode_is_restored(pty: tuple[int, int]) -> None:
    _, replica = pty
    before = termios.tcgetattr(replica)
    with console.RawMode(replica):
        assert not termios.tcgetattr(replica)[3] & termios.ICANON
        assert not termios.tcgetattr(replica)[3] & termios.ECHO
    assert termios.tcgetattr(replica) == before


def test_copy_loop_ends_when_the_replica_closes(tmp_path: Path, pty: tuple[int, int]) -> None:
    master, replica = pty

    def answer() -> None:
        line = os.read(0, 100)
        os.write(1, b"got:" + line)

    pid = run_on_replica(replica, answer)
    os.close(replica)  # only the child holds it now: EIO on the master ends the loop
    stdin = tmp_path / "in"
    stdin.write_bytes(b"ping\n")
    with open(stdin, "rb") as fin, open(tmp_path / "out", "wb") as fout:
        console.copy_loop(master, fin.fileno(), fout.fileno(), lambda: False)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"got:ping\r\n" in (tmp_path / "out").read_bytes()


def test_copy_loop_ends_when_the_child_exits(tmp_path: Path, pty: tuple[int, int]) -> None:
    master, replica = pty

    def last_words() -> None:
        os.write(1, b"last words\n")

    pid = run_on_replica(replica, last_words)
    # The replica stays open here, as when a grandchild keeps it: only the
    # child's exit can end the relay, and its last output must still arrive.
    with open(tmp_path / "out", "wb") as fout:
        console.copy_loop(master, None, fout.fileno(), exited(pid))
    assert (tmp_path / "out").read_bytes() == b"last words\r\n"


def test_relay_with_pidfd_moves_a_lot_both_ways(tmp_path: Path, pty: tuple[int, int]) -> None:
    master, replica = pty
    size = 300_000
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    def echo() -> None:
        left = size
        while left:
            chunk = os.read(0, 65536)
            os.write(1, chunk)
            left -= len(chunk)

    pid = run_on_replica(replica, echo)
    tty.setraw(replica)  # raw before any input arrives: no echo, no line editing
    pidfd = os.pidfd_open(pid)
    (tmp_path / "in").write_bytes(payload)
    with open(tmp_path / "in", "rb") as fin, open(tmp_path / "out", "wb") as fout:
        relay = console.Relay(master, fin.fileno(), fout.fileno())
        try:
            assert relay.run_until(pidfd, 30)
        finally:
            relay.close()
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (tmp_path / "out").read_bytes() == payload
    assert os.get_blocking(master)  # the relay gave the master its flags back
