"""Pseudo-terminals: hand a pty master to a console socket, or relay it ourselves.

With ``--console-socket`` the runtime only passes the master on and is gone;
without it, pyrunc copies between its own terminal and the master until the
process exits.  socket, termios and tty are imported only where used: this
module is loaded for every terminal exec, and socket alone costs ~8 ms.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import termios

from runpy_exec.errors import PyruncError, os_reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from types import TracebackType

# What runc sends as the message body: the name of the master's device.
PTMX_NAME = "/dev/ptmx"

_CHUNK = 32 * 1024


def send_fd(sock: socket.socket, master_fd: int) -> None:
    """Send the master over an already connected console socket, in one message.

    The message is the name "/dev/ptmx" with exactly one SCM_RIGHTS fd, as
    runc sends it; receivers such as containerd's and podman's expect that
    shape.  Nothing is read back.
    """
    import socket as socket_module

    try:
        socket_module.send_fds(sock, [PTMX_NAME.encode()], [master_fd])
    except OSError as err:
        raise PyruncError(f"console socket: send pty master: {os_reason(err)}") from err


def connect(socket_path: str) -> socket.socket:
    """A connection to the caller's console socket, or a one-line error naming it.

    The connect does not block: a listener whose backlog is full (nobody is
    accepting) would otherwise hold pyrunc in connect() for good; like runc,
    fail at once with EAGAIN instead.
    """
    import socket as socket_module

    sock = socket_module.socket(
        socket_module.AF_UNIX,
        socket_module.SOCK_STREAM | socket_module.SOCK_CLOEXEC | socket_module.SOCK_NONBLOCK,
    )
    try:
        sock.connect(socket_path)
    except BlockingIOError as err:
        sock.close()
        raise PyruncError(f"console socket {socket_path}: {os_reason(err)} "
                          "(its listen backlog is full: nobody accepts)") from None
    except OSError as err:
        sock.close()
        raise PyruncError(f"console socket {socket_path}: {os_reason(err)}") from None
    sock.setblocking(True)
    return sock


def send_pty_master(socket_path: str, master_fd: int) -> None:
    """Connect to ``socket_path``, send the master, close: the peer is not waited for."""
    with connect(socket_path) as sock:
        send_fd(sock, master_fd)


def pty_channel() -> tuple[socket.socket, socket.socket]:
    """Where a child that opens the pty inside the container sends its parent the master.

    Made here so that whoever hands a child this channel has loaded this
    module before the fork: the child calls :func:`open_pty_for_parent`
    from inside the container's mount namespace, where no import may happen.
    """
    import socket as socket_module

    return socket_module.socketpair(
        socket_module.AF_UNIX, socket_module.SOCK_STREAM | socket_module.SOCK_CLOEXEC)


def open_pty_for_parent(channel: socket.socket, size: tuple[int, int] | None) -> int:
    """Open a pty, send the master to the parent over ``channel``, return the replica.

    ONLCR is cleared, as runc does: callers relay the output byte for byte
    to their own terminal, which adds its own carriage returns.
    """
    import socket as socket_module  # loaded by whoever made the channel

    master, replica = os.openpty()
    attrs = termios.tcgetattr(replica)
    attrs[1] &= ~termios.ONLCR
    termios.tcsetattr(replica, termios.TCSANOW, attrs)
    if size and all(size):
        set_winsize(replica, *size)
    socket_module.send_fds(channel, [PTMX_NAME.encode()], [master])
    channel.close()
    os.close(master)
    return replica


def receive_fd(channel: socket.socket) -> int | None:
    """The one fd a child sends over ``channel`` (its pty master), or None if it
    died first: the caller then reads the child's error instead."""
    import socket as socket_module

    try:
        _, fds, _, _ = socket_module.recv_fds(channel, 64, 1)
    except OSError:
        return None
    return fds[0] if fds else None


def recv_pty_master(listener: socket.socket) -> tuple[int, str]:
    """Accept one connection on ``listener`` and take the (fd, name) sent on it."""
    import socket as socket_module

    conn, _ = listener.accept()
    with conn:
        data, fds, _, _ = socket_module.recv_fds(conn, 4096, 1)
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise PyruncError(f"console socket: expected one fd, got {len(fds)}")
    return fds[0], data.decode(errors="replace")



def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_winsize(fd: int) -> tuple[int, int]:
    """(rows, columns) of the terminal ``fd``."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return rows, cols


def copy_winsize(from_fd: int, to_fd: int) -> None:
    """Give ``to_fd`` the size of ``from_fd``; what a SIGWINCH handler calls.

    A terminal that cannot say its size (not a tty any more) leaves ``to_fd``
    as it is: a resize is never worth failing over.
    """
    try:
        set_winsize(to_fd, *get_winsize(from_fd))
    except OSError:
        return


class RawMode:
    """Put the caller's own terminal in raw mode for the duration of a relay.

    Raw mode passes every key, ^C included, to the container's terminal,
    whose own line discipline then acts on it.  The previous mode is restored
    on exit, even after an error.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list[int | list[bytes | int]] | None = None

    def __enter__(self) -> RawMode:
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


class Relay:
    """Copies the caller's stdin to a pty master and the master to its stdout.

    The master is made non-blocking (it is ours alone); input for it waits in
    a buffer, and stdin is not read while the buffer is full, so a process
    that stops reading cannot deadlock the relay while it is still writing.
    stdout is left blocking: it is usually the caller's terminal, shared with
    other processes, whose mode we must not change.
    """

    def __init__(self, master_fd: int, stdin_fd: int | None = 0, stdout_fd: int = 1) -> None:
        self.master_fd = master_fd
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self._to_master = b""
        self._master_flags = fcntl.fcntl(master_fd, fcntl.F_GETFL)
        fcntl.fcntl(master_fd, fcntl.F_SETFL, self._master_flags | os.O_NONBLOCK)
        self.hung_up = False

    def run_until(self, exit_fd: int | None, timeout: float | None) -> bool:
        """Relay until done (True) or until ``timeout`` seconds pass (False).

        Done means every replica fd is closed (the master reads EIO), or
        ``exit_fd`` (e.g. the process's pidfd) became readable and the master
        has been drained of what the process wrote before it exited.
        """
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.hung_up:
            poller = select.poll()
            master_events = select.POLLIN | (select.POLLOUT if self._to_master else 0)
            poller.register(self.master_fd, master_events)
            if self.stdin_fd is not None and len(self._to_master) < _CHUNK:
                poller.register(self.stdin_fd, select.POLLIN)
            if exit_fd is not None:
                poller.register(exit_fd, select.POLLIN)
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = dict(poller.poll(None if wait is None else int(wait * 1000)))
            if not ready:
                return False
            if ready.get(self.master_fd, 0) & (select.POLLIN | select.POLLHUP | select.POLLERR):
                self._from_master()
            if self._to_master and ready.get(self.master_fd, 0) & select.POLLOUT:
                self._write_master()
            if self.stdin_fd is not None and self.stdin_fd in ready:
                self._from_stdin(self.stdin_fd)
            if exit_fd is not None and exit_fd in ready:
                self.drain()
                return True
        return True

    def drain(self) -> None:
        """Copy out what is left in the master after the process exited.

        Output written just before exit may still be on its way through the
        line discipline, so an empty master is polled once more, briefly.
        """
        poller = select.poll()
        poller.register(self.master_fd, select.POLLIN)
        while not self.hung_up:
            if not poller.poll(5):
                return
            self._from_master()

    def resize_from(self, tty_fd: int) -> None:
        copy_winsize(tty_fd, self.master_fd)

    def close(self) -> None:
        """Restore the master's flags; the master itself stays the caller's to close."""
        try:
            fcntl.fcntl(self.master_fd, fcntl.F_SETFL, self._master_flags)
        except OSError as err:
            if err.errno != errno.EBADF:
                raise

    def _from_master(self) -> None:
        try:
            data = os.read(self.master_fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError as err:
            if err.errno != errno.EIO:
                raise
            data = b""  # EIO: the last replica fd is closed
        if not data:
            self.hung_up = True
            return
        _write_all(self.stdout_fd, data)

    def _from_stdin(self, stdin_fd: int) -> None:
        data = os.read(stdin_fd, _CHUNK)
        if not data:
            # EOF on our stdin: a terminal has no EOF to pass on, so stop reading.
            self.stdin_fd = None
            return
        self._to_master += data
        self._write_master()

    def _write_master(self) -> None:
        try:
            written = os.write(self.master_fd, self._to_master)
        except BlockingIOError:
            return
        except OSError as err:
            if err.errno != errno.EIO:
                raise
            self._to_master = b""  # nobody left to read it
            return
        self._to_master = self._to_master[written:]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def copy_loop(
    master_fd: int,
    stdin_fd: int | None,
    stdout_fd: int,
    child_exited: Callable[[], bool],
    exit_fd: int | None = None,
    poll_interval: float = 0.05,
) -> None:
    """Relay between stdin/stdout and the master until the child is gone and all is copied.

    ``child_exited`` is asked between polls; ``exit_fd``, if given, wakes the
    loop as soon as the child exits instead of at the next poll interval.
    Resizes are the caller's: its SIGWINCH handler calls :func:`copy_winsize`.
    """
    relay = Relay(master_fd, stdin_fd, stdout_fd)
    try:
        while not relay.run_until(exit_fd, poll_interval):
            if child_exited():
                relay.drain()
                return
    finally:
        relay.close()
