"""jsonio must give exactly what json gives: values read, text written, errors raised."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runpy_exec import jsonio

_SCALARS = (st.none() | st.booleans() | st.integers() | st.text()
            | st.floats(allow_nan=False) | st.sampled_from([float("inf"), float("-inf")]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_VALUES, st.sampled_from([None, "  ", "\t"]))
def test_dumps_writes_what_json_writes(value: Any, indent: str | None) -> None:
    assert jsonio.dumps(value, indent=indent) == json.dumps(value, indent=indent)
    compact = (",", ":")
    assert jsonio.dumps(value, separators=compact) == json.dumps(value, separators=compact)


@settings(max_examples=300, deadline=None)
@given(_VALUES, st.sampled_from(["", " ", "\n\t ", "\r\n"]))
def test_loads_reads_what_json_reads(value: Any, space: str) -> None:
    text = space + json.dumps(value) + space
    assert repr(jsonio.loads(text)) == repr(json.loads(text))
    assert repr(jsonio.loads(text.encode())) == repr(json.loads(text.encode()))


@pytest.mark.parametrize("text", ["", " ", "{", "[1,]", "{} x", "nul", "\ufeff{}", "1 2",
                                  '{"a": NaN', '"\\x"', b"\xc3"])
def test_bad_documents_fail_as_in_json(text: str | bytes) -> None:
    with pytest.raises(ValueError) as ours:
        jsonio.loads(text)
    with pytest.raises(ValueError) as theirs:
        json.loads(text)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


def test_other_encodings_are_read_as_json_reads_them() -> None:
    utf16 = '{"a": [1]}'.encode("utf-16")
    assert jsonio.loads(utf16) == json.loads(utf16) == {"a": [1]}


def test_json_decode_error_is_json_s() -> None:
    assert jsonio.JSONDecodeError is json.JSONDecodeError


def test_what_json_cannot_write_is_refused() -> None:
    with pytest.raises(TypeError):
        jsonio.dumps({1: "x"})
    with pytest.raises(TypeError):
        jsonio.dumps(object())


def test_bad_documents_fail_as_in_json_before_json_is_imported() -> None:
    """On its hot paths json is not imported at all: the scanner must still fail as json does."""
    import subprocess
    import sys

    documents = ["{", "[1,]", '{"a": NaN', '"\\x"', '{"a" 1}', "[1 2]"]
    code = f"""
import sys
from runpy_exec import jsonio
assert "json" not in sys.modules and "json.decoder" not in sys.modules
for text in {documents!r}:
    try:
        jsonio.loads(text)
    except ValueError as err:
        print(type(err).__name__, err)
    else:
        print("accepted", text)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    expected = []
    for text in documents:
        with pytest.raises(ValueError) as theirs:
            json.loads(text)
        expected.append(f"{type(theirs.value).__name__} {theirs.value}")
    assert done.stdout.splitlines() == expected
