"""The session's waiter: holds the pty master, the output ring buffer and the socket.

It is forked by ``exec --session`` and is the process's parent, as a
detached exec's waiter is: signals sent to it reach the process, and it
exits with the process's status.  One poll loop serves the pty, the process's
pidfd, the listening socket and every client; a client that breaks the
protocol, stays silent before its HELLO, or cannot keep up is dropped alone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import socket
import struct
import time
from typing import NoReturn

from runpy_exec import exec_cmd, sessions
from runpy_exec.errors import PyruncError
from runpy_exec.linux import console
from runpy_exec.requests import ExecRequest, GlobalOptions
from runpy_exec.sessions import protocol

EXEC_ERROR = 255
RING_SIZE = 64 * 1024
HELLO_TIMEOUT = 5.0  # a client that says nothing for this long after connecting is dropped
MAX_QUEUED = 4 << 20  # output queued for one client; beyond it the client is too slow
MAX_TO_PTY = 64 * 1024  # keystrokes waiting for the pty; clients are not read meanwhile
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def run(opts: GlobalOptions, req: ExecRequest, listener: socket.socket, ready_w: int,
        idle: float | None, state_dir: str) -> NoReturn:
    """Start the process, tell the caller, then serve the session until the process ends."""
    status = EXEC_ERROR
    try:
        # A session outlives the terminal it was started from: no SIGHUP from it.
        os.setsid()
        try:
            launched = exec_cmd._launch(opts, req)
            exec_cmd._report_started(req, launched, os.getpid())
        except Exception as err:  # noqa: BLE001 - the caller reports it; we only pass it on
            message = str(err) if isinstance(err, PyruncError) else (
                f"pyrunc: internal error: {type(err).__name__}: {err}")
            os.write(ready_w, b"error:" + message.encode())
            os._exit(EXEC_ERROR)
        assert launched.master_fd is not None
        _translate_newlines(launched.master_fd)
        os.write(ready_w, b"ok")
        os.close(ready_w)
        os.set_inheritable(launched.master_fd, False)  # ours, not the caller's
        exec_cmd.let_go_of_the_callers_fds()
        session = Session(req, launched, listener, idle, state_dir)
        status = session.serve()
    finally:
        os._exit(status)


def _translate_newlines(master_fd: int) -> None:
    """Turn ONLCR back on: a session is read by people on terminals in raw mode,
    not relayed byte for byte to a terminal that adds its own carriage returns.
    Programs that want it off (editors) switch it off themselves, as anywhere."""
    import termios

    with contextlib.suppress(termios.error):
        attrs = termios.tcgetattr(master_fd)
        attrs[1] |= termios.OPOST | termios.ONLCR
        termios.tcsetattr(master_fd, termios.TCSANOW, attrs)


class Client:
    """One connection: its frames in, its queued frames out, and what it asked to be."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = protocol.FrameReader(protocol.FROM_CLIENT)
        self.mode: bytes | None = None  # the HELLO's mode, once received
        self.queued = bytearray()
        self.close_when_sent = False
        self.hello_deadline = time.monotonic() + HELLO_TIMEOUT

    def send(self, data: bytes) -> bool:
        """Queue ``data``; False when this client has fallen too far behind."""
        self.queued += data
        return len(self.queued) <= MAX_QUEUED


class Session:
    def __init__(self, req: ExecRequest, launched: exec_cmd.Launched, listener: socket.socket,
                 idle: float | None, state_dir: str) -> None:
        assert launched.master_fd is not None and req.session is not None
        self.name = req.session
        self.args = list(req.args)
        self.launched = launched
        self.master = launched.master_fd
        os.set_blocking(self.master, False)
        self.listener = listener
        listener.setblocking(False)
        self.idle = idle
        self.state_dir = state_dir
        self.started = time.time()
        self.idle_since = time.monotonic()
        self.idle_since_wall = self.started
        self.ring = bytearray()
        self.to_pty = bytearray()
        self.pty_open = True
        self.clients: dict[int, Client] = {}
        self.uid = os.getuid()

    # --- the loop ---------------------------------------------------------------

    def serve(self) -> int:
        pidfd = self.launched.pidfd
        wake = self.launched.forwarder.wake_fd
        while True:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.register(wake, select.POLLIN)
            poller.register(self.listener.fileno(), select.POLLIN)
            if self.pty_open:
                poller.register(self.master, select.POLLIN | (select.POLLOUT if self.to_pty else 0))
            for fd, client in self.clients.items():
                events = select.POLLOUT if client.queued else 0
                if len(self.to_pty) < MAX_TO_PTY and not client.close_when_sent:
                    events |= select.POLLIN
                poller.register(fd, events)
            ready = dict(poller.poll(self._timeout_ms()))
            if wake in ready:
                self.launched.forwarder.drain()
            if self.pty_open and ready.get(self.master, 0):
                self._pty_events(ready[self.master])
            if self.listener.fileno() in ready:
                self._accept()
            for fd, events in ready.items():
                if (ready_client := self.clients.get(fd)) is not None:
                    self._client_events(ready_client, events)
            self._deadlines()
            if pidfd in ready:
                return self._finish()

    def _timeout_ms(self) -> int:
        deadlines = [c.hello_deadline for c in self.clients.values() if c.mode is None]
        if self.idle is not None and not self._attached():
            deadlines.append(self.idle_since + self.idle)
        if not deadlines:
            return -1
        return max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)

    def _deadlines(self) -> None:
        now = time.monotonic()
        for client in list(self.clients.values()):
            if client.mode is None and now >= client.hello_deadline:
                self._drop(client)
        if self.idle is not None and not self._attached() and now >= self.idle_since + self.idle:
            # Nobody came back in time: the session ends as the process ends.
            exec_cmd._kill(self.launched.pidfd)
            self.idle = None

    # --- the pty ----------------------------------------------------------------

    def _pty_events(self, events: int) -> None:
        if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
            self._read_pty()
        if self.pty_open and self.to_pty and events & select.POLLOUT:
            try:
                written = os.write(self.master, self.to_pty)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno != errno.EIO:
                    raise
                written = len(self.to_pty)
            del self.to_pty[:written]

    def _read_pty(self) -> bool:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return False
        except OSError as err:
            if err.errno != errno.EIO:
                raise
            data = b""  # EIO: the process closed every replica fd
        if not data:
            self.pty_open = False
            return False
        self.ring += data
        if len(self.ring) > RING_SIZE:
            del self.ring[:len(self.ring) - RING_SIZE]
        out = protocol.frame(protocol.OUTPUT, data)
        for client in list(self.clients.values()):
            if client.mode == protocol.ATTACH and not client.send(out):
                self._drop(client)
        return True

    def _drain_pty(self) -> None:
        """What the process wrote just before exiting may still be in the line discipline."""
        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        while self.pty_open and poller.poll(5):
            if not self._read_pty():
                return

    # --- clients ----------------------------------------------------------------

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        # Only the waiter's own user may talk to it (the socket is 0600 as well).
        _, uid, _ = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                 _CRED.size))
        if uid != self.uid:
            sock.close()
            return
        sock.setblocking(False)
        self.clients[sock.fileno()] = Client(sock)

    def _client_events(self, client: Client, events: int) -> None:
        if events & select.POLLOUT and client.queued:
            try:
                sent = client.sock.send(client.queued, socket.MSG_NOSIGNAL)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._drop(client)
                return
            del client.queued[:sent]
            if client.close_when_sent and not client.queued:
                self._drop(client)
                return
        if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
            try:
                data = client.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._drop(client)
                return
            try:
                for kind, payload in client.reader.feed(data):
                    self._handle(client, kind, payload)
            except protocol.ProtocolError:
                self._drop(client)

    def _handle(self, client: Client, kind: bytes, payload: bytes) -> None:
        if client.mode is None:
            if kind != protocol.HELLO or not payload:
                raise protocol.ProtocolError("expected a hello")
            self._hello(client, payload[:1], payload[1:])
        elif client.mode == protocol.ATTACH and kind == protocol.INPUT:
            self.to_pty += payload
        elif client.mode == protocol.ATTACH and kind == protocol.WINSIZE:
            rows, cols = protocol.parse_winsize(payload)
            if rows and cols and self.pty_open:
                # The last client to resize wins; the kernel tells the process (SIGWINCH).
                with contextlib.suppress(OSError):
                    console.set_winsize(self.master, rows, cols)
        else:
            raise protocol.ProtocolError(f"frame {kind!r} not allowed here")

    def _hello(self, client: Client, mode: bytes, rest: bytes) -> None:
        if mode == protocol.ATTACH and rest in (b"\0", b"\1"):
            client.mode = mode
            if rest == b"\1" and self.ring:
                client.send(protocol.frame(protocol.OUTPUT, bytes(self.ring)))
        elif mode == protocol.QUERY and not rest:
            client.mode = mode
            client.send(protocol.frame(protocol.INFO, json.dumps(self.info()).encode()))
            client.close_when_sent = True
        elif mode == protocol.KILL and len(rest) == 1 and 0 < rest[0] < 65:
            client.mode = mode
            try:
                signal.pidfd_send_signal(self.launched.pidfd, rest[0])
                answer: dict[str, object] = {"signal": rest[0]}
            except OSError as err:
                answer = {"error": os.strerror(err.errno or 0)}
            client.send(protocol.frame(protocol.INFO, json.dumps(answer).encode()))
        else:
            raise protocol.ProtocolError("bad hello")

    def _drop(self, client: Client) -> None:
        was_attached = client.mode == protocol.ATTACH
        self.clients.pop(client.sock.fileno(), None)
        client.sock.close()
        if was_attached and not self._attached():
            self.idle_since = time.monotonic()
            self.idle_since_wall = time.time()

    def _attached(self) -> int:
        return sum(1 for c in self.clients.values() if c.mode == protocol.ATTACH)

    def info(self) -> dict[str, object]:
        attached = self._attached()
        return {
            "name": self.name,
            "pid": self.launched.pid,
            "waiter_pid": os.getpid(),
            "command": self.args,
            "started": _iso(self.started),
            "clients": attached,
            "idle_since": None if attached else _iso(self.idle_since_wall),
            "idle_timeout": self.idle,
        }

    # --- the end ----------------------------------------------------------------

    def _finish(self) -> int:
        """Reap the process, remove the socket, give every client the status."""
        if self.pty_open:
            self._drain_pty()
        _, wait_status = os.waitpid(self.launched.pid, 0)
        status = (os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status)
                  else 128 + os.WTERMSIG(wait_status))
        with contextlib.suppress(OSError), sessions.socket_path(self.state_dir, self.name) as path:
            os.unlink(path)
        self.listener.close()
        last = protocol.frame(protocol.EXIT, struct.pack(">I", status))
        deadline = time.monotonic() + 2.0
        for client in list(self.clients.values()):
            if client.mode in (protocol.ATTACH, protocol.KILL):
                client.send(last)
            client.sock.setblocking(True)
            client.sock.settimeout(max(0.05, deadline - time.monotonic()))
            with contextlib.suppress(OSError):
                client.sock.sendall(client.queued, socket.MSG_NOSIGNAL)
            client.sock.close()
        self.clients.clear()
        os.close(self.master)
        return status


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))
