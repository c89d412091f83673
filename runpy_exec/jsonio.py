"""``json.loads`` and ``json.dumps`` for the hot paths, without importing ``json``.

The json package imports ``re`` (and through it enum, functools and
collections), ~7 ms on every state, kill, delete or exec, for work that takes
a fraction of a millisecond.  Its C accelerator ``_json`` does the parsing
and the string escaping without any of that; this module drives it directly.

The results are json's own: tests/test_jsonio.py holds both functions to
``json.loads``/``json.dumps`` on generated documents.  Any input the fast path
does not accept is handed to ``json`` itself, so errors (``JSONDecodeError``,
a ValueError) and their messages are json's too.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from json import JSONDecodeError as JSONDecodeError
    from typing import IO, Any

_WHITESPACE = " \t\n\r"


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
