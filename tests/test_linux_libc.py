"""linux/libc.py declares its C types and looks up functions as ctypes does.

exec uses these declarations instead of ``import ctypes`` (see the module's
docstring); a type with another size or conversion than ctypes' would pass a
wrong argument to the kernel, so each is held to its ctypes twin here.
"""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from runpy_exec.linux import libc

_TWINS = [
    (libc.c_char, ctypes.c_char), (libc.c_ushort, ctypes.c_ushort), (libc.c_int, ctypes.c_int),
    (libc.c_uint, ctypes.c_uint), (libc.c_long, ctypes.c_long), (libc.c_ulong, ctypes.c_ulong),
    (libc.c_void_p, ctypes.c_void_p), (libc.c_uint32, ctypes.c_uint32),
    (libc.c_uint64, ctypes.c_uint64), (libc.c_size_t, ctypes.c_size_t),
]


@pytest.mark.parametrize(("ours", "theirs"), _TWINS, ids=[t.__name__ for _, t in _TWINS])
def test_each_type_has_ctypes_size_and_code(ours: type, theirs: type) -> None:
    assert libc.sizeof(ours) == ctypes.sizeof(theirs)
    assert ours._type_ == theirs._type_ or (  # type: ignore[attr-defined]
        # c_uint64 is "Q" or "L" in ctypes depending on the machine; both are 8 bytes.
        libc.sizeof(ours) == 8 and {ours._type_, theirs._type_} <= {"L", "Q"})  # type: ignore[attr-defined]


def test_values_wrap_as_in_ctypes() -> None:
    assert libc.c_uint(-1).value == ctypes.c_uint(-1).value == 0xFFFFFFFF
    assert libc.c_int(2**31).value == ctypes.c_int(2**31).value == -(2**31)
    assert libc.c_ulong(2**64 - 1).value == 2**64 - 1


def test_a_function_returns_its_result_and_keeps_errno() -> None:
    syscall = libc.function("syscall", libc.c_long)
    assert syscall(libc.c_long(39)) == os.getpid()  # getpid, x86_64
    assert syscall(libc.c_long(308), libc.c_int(-1), libc.c_int(0)) == -1  # setns(-1)
    assert libc.get_errno() == errno.EBADF


def test_a_long_result_is_not_truncated_to_int() -> None:
    strtoul = libc.function("strtoul", libc.c_ulong)
    assert strtoul(b"18446744073709551615", None, 10) == 2**64 - 1


def test_a_missing_symbol_is_an_attribute_error_as_in_ctypes() -> None:
    with pytest.raises(AttributeError):
        libc.function("no_such_function_in_libc")


def test_string_buffer_copies_and_pads() -> None:
    buffer = libc.string_buffer(b"GPL\0", 8)
    assert buffer.raw == b"GPL" + b"\0" * 5
    assert libc.sizeof(buffer) == 8
    assert libc.string_buffer(b"abc").raw == b"abc"
    with pytest.raises(ValueError):
        libc.string_buffer(b"too long", 3)


def test_structures_lay_out_as_in_ctypes() -> None:
    class Ours(libc.Structure):
        _fields_ = [("len", libc.c_ushort), ("filter", libc.c_void_p)]

    class Theirs(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    assert libc.sizeof(Ours) == ctypes.sizeof(Theirs) == 16
    assert bytes(Ours(3, 0x1234)) == bytes(Theirs(3, 0x1234))


def test_the_gil_holding_variant_reaches_the_c_api() -> None:
    """clone3.py calls CPython's fork hooks this way, as ctypes.pythonapi would."""
    is_initialized = libc.function_holding_gil("Py_IsInitialized")
    assert is_initialized() == 1
