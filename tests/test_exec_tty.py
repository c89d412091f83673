"""``exec -t`` relaying a pty: pyrunc runs on a terminal the test owns, as a user's shell would.

The test holds the master of that outer terminal: it types, reads what
reaches the screen, resizes, and checks the terminal's modes during and
after the exec.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest

from tests.conftest import Runtime, pyrunc_binary

pytestmark = pytest.mark.root




class OnTerminal:
    """pyrunc started with a fresh pty as its stdin, stdout and stderr."""

    def __init__(self, rt: Runtime, argv: list[str], rows: int = 24, cols: int = 80) -> None:
        self.master, replica = os.openpty()
        set_size(self.master, rows, cols)
        self.original = termios.tcgetattr(self.master)
        self.proc = subprocess.Popen([pyrunc_binary(), "--root", str(rt.root), *argv],
                                     stdin=replica, stdout=replica, stderr=replica,
                                     start_new_session=True)
        os.close(replica)
        self.seen = b""

    def read_until(self, wanted: bytes, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while wanted not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read_some(left):
                raise AssertionError(f"{wanted!r} not seen; got {self.seen!r}")
        return self.seen

    def finish(self, timeout: float = 10.0) -> int:
        """Read to the end (EIO once pyrunc and the process are gone); the exit status."""
        deadline = time.monotonic() + timeout
        while self._read_some(max(0.0, deadline - time.monotonic())):
            pass
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    def _read_some(self, timeout: float) -> bool:
        if not select.select([self.master], [], [], timeout)[0]:
            return False
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return False
        self.seen += data
        return bool(data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@pytest.fixture
def terminal() -> Iterator[list[OnTerminal]]:
    made: list[OnTerminal] = []
    yield made
    for term in made:
        term.close()


def start(terminal: list[OnTerminal], rt: Runtime, ctr: str, script: str,
          rows: int = 24, cols: int = 80) -> OnTerminal:
    term = OnTerminal(rt, ["exec", "-t", ctr, "sh", "-c", script], rows, cols)
    terminal.append(term)
    return term


def test_process_gets_a_pty_of_our_size(terminal: list[OnTerminal], rt: Runtime,
                                        ctr: str) -> None:
    term = start(terminal, rt, ctr, "stty size; for fd in 0 1 2; do readlink /proc/self/fd/$fd;"
                 " done; exit 7", rows=33, cols=111)
    assert term.finish() == 7
    lines = term.seen.decode().split("\n")
    assert lines[0] == "33 111"
    assert lines[1].startswith("/dev/pts/") and lines[1] == lines[2] == lines[3]


def test_output_is_copied_byte_for_byte(terminal: list[OnTerminal], rt: Runtime,
                                        ctr: str) -> None:
    # The container's pty leaves \n alone (ONLCR off, as runc sets it) and our
    # raw terminal adds nothing either.
    term = start(terminal, rt, ctr, "printf 'a\\nb\\n'")
    assert term.finish() == 0
    assert term.seen == b"a\nb\n"


def test_our_terminal_is_raw_while_relaying_and_restored_after(
        terminal: list[OnTerminal], rt: Runtime, ctr: str) -> None:
    term = start(terminal, rt, ctr, "echo ready; sleep 0.5")
    term.read_until(b"ready")
    during = termios.tcgetattr(term.master)
    assert during[3] & (termios.ICANON | termios.ECHO | termios.ISIG) == 0
    assert term.finish() == 0
    assert termios.tcgetattr(term.master) == term.original


def test_input_reaches_the_process(terminal: list[OnTerminal], rt: Runtime, ctr: str) -> None:
    term = start(terminal, rt, ctr, "echo ready; read line; echo got:$line")
    term.read_until(b"ready")
    os.write(term.master, b"hello\r")  # Enter sends CR; the container's pty makes it NL
    term.read_until(b"got:hello")
    assert term.finish() == 0


def test_ctrl_c_is_the_container_terminal_s_to_interpret(
        terminal: list[OnTerminal], rt: Runtime, ctr: str) -> None:
    term = start(terminal, rt, ctr, "echo ready; exec sleep 30")
    term.read_until(b"ready")
    os.write(term.master, b"\x03")
    assert term.finish() == 128 + signal.SIGINT


def test_resize_follows_sigwinch(terminal: list[OnTerminal], rt: Runtime, ctr: str) -> None:
    term = start(terminal, rt, ctr, "trap 'stty size' WINCH; echo ready; "
                 "while :; do sleep 0.05; done")
    term.read_until(b"ready")
    set_size(term.master, 30, 100)
    term.proc.send_signal(signal.SIGWINCH)
    term.read_until(b"30 100")
    term.proc.send_signal(signal.SIGTERM)
    assert term.finish() == 128 + signal.SIGTERM
