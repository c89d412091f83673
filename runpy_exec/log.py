"""Diagnostics in the shape runc's callers parse.

containerd's shim and podman hand the runtime ``--log FILE --log-format json``
and, when a command fails, read that file back expecting logrus records (one
JSON object per line, or ``key=value`` text).  Without ``--log`` the caller
reads stderr instead, so a failure there is the bare message on one line.

Only ``os``, ``sys`` and ``time`` are used (all loaded by the interpreter
before any of our code): this module sits on the exec hot path, and the
``logging`` package would cost more than everything else exec imports.
"""

from __future__ import annotations

import os
import sys
import time

from runpy_exec.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runpy_exec.requests import GlobalOptions

_fd: int | None = None
_json = False
_debug = False

# logrus writes a value bare only when every character is in this set.
_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")
_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def configure(opts: GlobalOptions) -> None:
    """Open ``--log`` now rather than at the first record, as runc does.

    A caller that reads the file after a failure must find it even when the
    failure left no record, and an unwritable path is better reported before
    the command has changed anything.
    """
    global _fd, _json, _debug
    reset()
    _json = opts.log_format == "json"
    _debug = opts.debug
    if opts.log:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        try:
            _fd = os.open(opts.log, flags, 0o644)
        except OSError as err:
            raise PyruncError(f"cannot open log file {opts.log}: {err.strerror}") from None


def reset() -> None:
    """Forget the configuration, so tests and repeated ``main()`` calls start clean."""
    global _fd, _json, _debug
    if _fd is not None:
        os.close(_fd)
    _fd, _json, _debug = None, False, False


def file_fd() -> int | None:
    """The --log file's fd, which exec must not mistake for one its caller passed."""
    return _fd


def debug_enabled() -> bool:
    return _debug


def error(msg: str) -> None:
    """Report a failure: always one plain line on stderr, plus a record in ``--log``.

    runc does the same when it logs to a file; we also keep stderr plain
    without ``--log`` because people and probes read that line directly.
    """
    _write_stderr(" ".join(msg.splitlines()) + "\n")
    if _fd is not None:
        _emit("error", msg)


def warning(msg: str) -> None:
    _emit("warning", msg)


def debug(msg: str) -> None:
    if _debug:
        _emit("debug", msg)


def format_record(level: str, msg: str, when: float, *, json_format: bool) -> str:
    """One logrus-compatible line, timestamped in local time like Go's RFC 3339."""
    stamp = _rfc3339(when)
    if json_format:
        # Keys in logrus's order (sorted), so line-oriented readers see no change.
        return f'{{"level":{_json_str(level)},"msg":{_json_str(msg)},"time":"{stamp}"}}\n'
    return f"time={_text_value(stamp)} level={level} msg={_text_value(msg)}\n"


def _emit(level: str, msg: str) -> None:
    line = format_record(level, msg, time.time(), json_format=_json)
    if _fd is None:
        _write_stderr(line)
        return
    data = line.encode("utf-8", "backslashreplace")
    try:
        # One write per record: O_APPEND keeps concurrent writers' lines whole.
        os.write(_fd, data)
    except OSError:
        _write_stderr(line)


def _write_stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        # stderr closed or a broken pipe: there is nowhere left to report to.
        pass


def _rfc3339(when: float) -> str:
    local = time.localtime(when)
    offset = local.tm_gmtoff or 0
    base = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    if offset == 0:
        return base + "Z"
    sign = "+" if offset > 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{base}{sign}{hours:02d}:{minutes:02d}"


def _text_value(value: str) -> str:
    if all(ch in _BARE for ch in value):
        return value
    return '"' + "".join(_go_escape(ch) for ch in value) + '"'


def _go_escape(ch: str) -> str:
    """Escape like Go's %q, which logrus applies to every quoted value."""
    known = _ESCAPES.get(ch)
    if known is not None:
        return known
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _json_str(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
