"""``json.loads`` and ``json.dumps`` for the hot paths, without importing ``json``.

The json package imports ``re`` (and through it enum, functools and
collections), ~7 ms on every state, kill, delete or exec, for work that takes
a fraction of a millisecond.  Its C accelerator ``_json`` does the parsing
and the string escaping without any of that; this module drives it directly.

The results are json's own: tests/test_jsonio.py holds both functions to
``json.loads``/``json.dumps`` on generated documents.  Any input the fast path
does not accept is handed to ``json`` itself, so errors (``JSONDecodeError``,
a ValueError) and their messages are json's too.

:func:`read_small_file` reads the files parsed here (state.json, config.json,
process.json) with a bound on their size; it lives here rather than in a
module of its own because every command reads one, and each module a command
imports costs it ~0.1-0.3 ms.
"""

from __future__ import annotations

import _json
import errno
import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from json import JSONDecodeError as JSONDecodeError
    from typing import IO, Any

_WHITESPACE = " \t\n\r"

# Far above any real config.json (Docker's default seccomp profile is ~30 KB),
# far below what would hurt the host once parsed.
MAX_JSON_BYTES = 16 << 20


def read_small_file(path: str, limit: int = MAX_JSON_BYTES) -> bytes:
    """The file's bytes; an OSError (with strerror) for anything else.

    A config.json, a ``--process`` file or a state.json may be ``/dev/zero``,
    a FIFO nobody writes, a directory or a file of gigabytes: reading such a
    path whole would hang pyrunc or eat the host's memory, so only regular
    files and pipes are read, never more than ``limit`` bytes.  Pipes stay
    allowed because runc reads ``-p /dev/stdin`` and ``-p <(...)`` too.
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


class _Decoder:
    """The attributes ``_json.make_scanner`` reads from a JSONDecoder, at their defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__


_scan = _json.make_scanner(_Decoder())  # type: ignore[arg-type]


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            return _json_module().loads(text)  # other encodings, and json's error
    if text.startswith("\ufeff"):
        return _json_module().loads(text)  # json's "Unexpected UTF-8 BOM" error
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        return _json_module().loads(text)  # raises json's error for it
    except SystemError:
        # An error past the first character: the scanner looks JSONDecodeError
        # up in json.decoder only if that is already imported, and without it
        # fails with "returned NULL without setting an exception".
        return _json_module().loads(text)
    if text[end:].strip(_WHITESPACE):
        return _json_module().loads(text)  # "Extra data"
    return value


def load(stream: IO[str] | IO[bytes]) -> Any:
    """``json.load(stream)``."""
    return loads(stream.read())


def dumps(value: Any, *, indent: str | None = None,
          separators: tuple[str, str] | None = None) -> str:
    """``json.dumps(value, indent=indent, separators=separators)`` for JSON-shaped data:
    str keys; str, int, float, bool, None, list, tuple and dict values."""
    if separators is None:
        separators = (",", ": ") if indent is not None else (", ", ": ")
    out: list[str] = []
    _encode(value, out, indent, separators[0], separators[1], 0)
    return "".join(out)


def _encode(value: Any, out: list[str], indent: str | None, item_sep: str, key_sep: str,
            level: int) -> None:
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        opening, separator, closing = _layout(indent, item_sep, level)
        out.append("{" + opening)
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"keys must be str, not {type(key).__name__}")
            if index:
                out.append(separator)
            out.append(_json.encode_basestring_ascii(key) + key_sep)
            _encode(item, out, indent, item_sep, key_sep, level + 1)
        out.append(closing + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        opening, separator, closing = _layout(indent, item_sep, level)
        out.append("[" + opening)
        for index, item in enumerate(value):
            if index:
                out.append(separator)
            _encode(item, out, indent, item_sep, key_sep, level + 1)
        out.append(closing + "]")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _layout(indent: str | None, item_sep: str, level: int) -> tuple[str, str, str]:
    """What follows the opening bracket, what separates items, what precedes the closing one."""
    if indent is None:
        return "", item_sep, ""
    inner = "\n" + indent * (level + 1)
    return inner, item_sep + inner, "\n" + indent * level


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == float("-inf"):
        return "-Infinity"
    return float.__repr__(value)


def _json_module() -> Any:
    import json

    return json


def __getattr__(name: str) -> Any:
    """``jsonio.JSONDecodeError`` is json's, imported only when an except clause asks."""
    if name == "JSONDecodeError":
        return _json_module().JSONDecodeError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
