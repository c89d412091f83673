"""The clients of a session's waiter: ``attach``, ``sessions``, ``kill-session``, delete's hook."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import time
from typing import Any

from runpy_exec import sessions
from runpy_exec import state as store
from runpy_exec.errors import PyruncError
from runpy_exec.sessions import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runpy_exec.requests import GlobalOptions

ATTACH_ERROR = 255  # attach exits with the process's status; its own failures must differ
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
ANSWER_TIMEOUT = 5.0


def connect(root: str, container_id: str, name: str) -> socket.socket:
    """A connection to the session's waiter, or a one-line error saying what is missing."""
    sessions.check_name(name)
    container = store.load(root, container_id)
    return _connect(container.state_dir, name, container_id)


def _connect(state_dir: str, name: str, container_id: str) -> socket.socket:
    sock = sessions.new_socket()
    try:
        with sessions.socket_path(state_dir, name) as path:
            sock.connect(path)
    except (OSError, PyruncError):
        sock.close()
        raise PyruncError(f"session {name!r} not found in container {container_id!r}") from None
    return sock


def _frames(sock: socket.socket, reader: protocol.FrameReader,
            timeout: float | None) -> list[tuple[bytes, bytes]] | None:
    """The frames completed by the next read from the waiter; None when it closed."""
    if timeout is not None and not select.select([sock], [], [], timeout)[0]:
        raise PyruncError("the session's waiter did not answer")
    data = sock.recv(1 << 20)
    if not data:
        return None
    return reader.feed(data)


def _ask(sock: socket.socket, hello: bytes) -> dict[str, Any]:
    """Send a HELLO and read the waiter's INFO answer."""
    sock.sendall(protocol.frame(protocol.HELLO, hello))
    reader = protocol.FrameReader(protocol.FROM_WAITER)
    while (frames := _frames(sock, reader, ANSWER_TIMEOUT)) is not None:
        for kind, payload in frames:
            if kind == protocol.INFO:
                answer: dict[str, Any] = json.loads(payload)
                return answer
    raise PyruncError("the session ended before it answered")


# --- sessions -------------------------------------------------------------------------


def list_sessions(root: str, container_id: str) -> list[dict[str, Any]]:
    container = store.load(root, container_id)
    found = []
    for name in sessions.session_names(container.state_dir):
        try:
            with _connect(container.state_dir, name, container_id) as sock:
                found.append(_ask(sock, protocol.QUERY))
        except PyruncError:
            continue  # it ended while we looked, or its waiter was killed
    return found


def print_sessions(root: str, container_id: str, fmt: str) -> None:
    found = list_sessions(root, container_id)
    if fmt == "json":
        print(json.dumps(found, separators=(",", ":")))
        return
    rows = [["NAME", "PID", "COMMAND", "STARTED", "CLIENTS", "IDLE SINCE"]]
    rows += [[s["name"], str(s["pid"]), " ".join(s["command"]), s["started"],
              str(s["clients"]), s["idle_since"] or "-"] for s in found]
    widths = [max(len(row[i]) for row in rows) + 3 for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + row[-1])


# --- kill-session ---------------------------------------------------------------------


def kill_session(root: str, container_id: str, name: str, signum: int) -> None:
    """Signal the session's process; for SIGKILL, return once the session has ended."""
    if signum == 0 or signum > 64:
        raise PyruncError(f"kill-session: signal {signum} cannot be sent to a session")
    with connect(root, container_id, name) as sock:
        answer = _ask(sock, protocol.KILL + bytes([signum]))
        if "error" in answer:
            raise PyruncError(f"kill-session {name}: {answer['error']}")
        if signum == signal.SIGKILL:
            _wait_for_exit(sock, 10.0)


def _wait_for_exit(sock: socket.socket, timeout: float) -> int | None:
    reader = protocol.FrameReader(protocol.FROM_WAITER)
    deadline = time.monotonic() + timeout
    with contextlib.suppress(OSError, PyruncError):
        while (frames := _frames(sock, reader, max(0.0, deadline - time.monotonic()))) is not None:
            for kind, payload in frames:
                if kind == protocol.EXIT:
                    status: int = struct.unpack(">I", payload)[0]
                    return status
    return None


def end_all(state_dir: str) -> None:
    """``delete``'s hook: kill every session of the container and wait for each to end."""
    for name in sessions.session_names(state_dir):
        try:
            with _connect(state_dir, name, os.path.basename(state_dir)) as sock:
                sock.sendall(protocol.frame(protocol.HELLO, protocol.KILL + bytes([9])))
                _wait_for_exit(sock, 10.0)
        except (OSError, PyruncError):
            continue


# --- attach ---------------------------------------------------------------------------


def parse_detach_keys(value: str) -> bytes:
    """docker's syntax: comma-separated keys, each a character or ``ctrl-<key>``."""
    keys = bytearray()
    for part in value.split(","):
        if len(part) == 1 and part.isascii():
            keys.append(ord(part))
        elif part.lower().startswith("ctrl-") and len(part) == 6:
            key = part[5].lower()
            if "a" <= key <= "z":
                keys.append(ord(key) - ord("a") + 1)
            elif key in "@[\\]^_":
                keys.append(ord(key) - ord("@") if key != "@" else 0)
            else:
                raise PyruncError(f"invalid detach keys {value!r}: {part!r} is not a key")
        else:
            raise PyruncError(f"invalid detach keys {value!r}: want e.g. ctrl-p,ctrl-q")
    if not keys:
        raise PyruncError(f"invalid detach keys {value!r}")
    return bytes(keys)


class DetachScanner:
    """Finds the detach sequence in typed input, across reads, as docker does.

    Bytes that could begin the sequence are held back until the next key
    shows whether it is the sequence (detach, nothing sent) or not (sent).
    """

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to send on, detach?)"""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                self.held = candidate
                continue
            out += self.held
            self.held = b""
            if self.keys.startswith(bytes([byte])):
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False


class _Stopped(Exception):
    """SIGTERM or SIGHUP reached attach: leave the session, put the terminal back."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, _frame: object) -> None:
    raise _Stopped(signum)


def attach_command(opts: GlobalOptions, container_id: str, name: str, detach_keys: str,
                   no_replay: bool) -> int:
    """The ``attach`` command: its own failures exit ATTACH_ERROR, not a status the process has."""
    try:
        return attach(opts.root, container_id, name, detach_keys, not no_replay)
    except PyruncError as err:
        raise PyruncError(str(err), ATTACH_ERROR) from None


def attach(root: str, container_id: str, name: str, detach_keys: str, replay: bool) -> int:
    """Relay our terminal to the session until detach (0) or the process's end (its status).

    SIGTERM and SIGHUP end attach alone (128+N), with the terminal restored;
    the session keeps running.
    """
    scanner = DetachScanner(parse_detach_keys(detach_keys))
    sock = connect(root, container_id, name)
    from runpy_exec.linux import console

    interactive = os.isatty(0)
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    previous_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    previous_winch = signal.signal(signal.SIGWINCH, lambda _s, _f: None)
    previous_term = signal.signal(signal.SIGTERM, _stop)
    previous_hup = signal.signal(signal.SIGHUP, _stop)
    try:
        # Raw before the hello: once the waiter counts us, every key typed is relayed as is.
        with console.RawMode(0) if interactive else contextlib.nullcontext():
            hello = protocol.ATTACH + (b"\1" if replay else b"\0")
            sock.sendall(protocol.frame(protocol.HELLO, hello))
            if interactive:
                _send_size(sock)
            status = _relay(sock, scanner, wake_r, interactive)
    except _Stopped as stopped:
        status = 128 + stopped.signum
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGHUP, previous_hup)
        signal.signal(signal.SIGWINCH, previous_winch)
        signal.set_wakeup_fd(previous_wakeup)
        os.close(wake_r)
        os.close(wake_w)
        sock.close()
    if status is None:
        return 0
    return status


def _send_size(sock: socket.socket) -> None:
    from runpy_exec.linux import console

    try:
        rows, cols = console.get_winsize(0)
    except OSError:
        return
    if rows and cols:
        sock.sendall(protocol.winsize(rows, cols))


def _relay(sock: socket.socket, scanner: DetachScanner, wake_r: int,
           interactive: bool) -> int | None:
    """None on detach, else the process's status."""
    reader = protocol.FrameReader(protocol.FROM_WAITER)
    stdin_open = True
    while True:
        watched = [sock.fileno(), wake_r] + ([0] if stdin_open else [])
        try:
            ready = select.select(watched, [], [])[0]
        except InterruptedError:
            continue
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
            if interactive:
                _send_size(sock)
        if sock.fileno() in ready:
            try:
                frames = _frames(sock, reader, None)
            except OSError:
                frames = []
            if frames is None:
                raise PyruncError("the session's waiter went away without a status",
                                  ATTACH_ERROR)
            for kind, payload in frames:
                if kind == protocol.OUTPUT:
                    _write_all(1, payload)
                elif kind == protocol.EXIT:
                    status: int = struct.unpack(">I", payload)[0]
                    return status
        if stdin_open and 0 in ready:
            data = os.read(0, protocol.MAX_INPUT)
            if not data:
                stdin_open = False
                continue
            keys, detach = scanner.feed(data)
            if keys:
                sock.sendall(protocol.frame(protocol.INPUT, keys))
            if detach:
                return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
