"""C calls into libc and the kernel, made with ``_ctypes`` rather than ``ctypes``.

``_ctypes`` is the C extension that does ctypes' real work (loading symbols,
converting arguments, saving errno).  ``ctypes``' Python half defines some
forty types and helpers and imports ``struct`` and ``types`` on top: ~1.8 ms
at every start, on every exec probe, for the dozen calls pyrunc makes.  So
the few C types pyrunc uses are declared here, each as ``ctypes`` declares
it (a ``_SimpleCData`` with the same type code), and libc's functions are
looked up in the running program as ``ctypes.CDLL(None, use_errno=True)``
looks them up.  tests/test_linux_libc.py holds every name here to its
``ctypes`` twin.

Only the declarations live here; what each call means, and its error, is
the caller's (:mod:`.syscalls`, :mod:`.clone3`, :mod:`.rootfs`, :mod:`.bpf`).
"""

from __future__ import annotations

import _ctypes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ctypes import Array as Array
    from ctypes import Structure as Structure
    from ctypes import c_char as c_char
    from ctypes import c_int as c_int
    from ctypes import c_long as c_long
    from ctypes import c_uint as c_uint
    from ctypes import c_uint32 as c_uint32
    from ctypes import c_uint64 as c_uint64
    from ctypes import c_ulong as c_ulong
    from ctypes import c_ushort as c_ushort
    from ctypes import c_void_p as c_void_p
    from typing import Any
else:
    Array = _ctypes.Array
    Structure = _ctypes.Structure

    class c_char(_ctypes._SimpleCData):  # noqa: N801 - the ctypes names, on purpose
        _type_ = "c"

    class c_ushort(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "H"

    class c_int(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "i"

    class c_uint(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "I"

    class c_long(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "l"

    class c_ulong(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "L"

    class c_void_p(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "P"

    c_uint32 = c_uint
    c_uint64 = c_ulong  # Linux on 64-bit machines, as ctypes has it there

c_size_t = c_ulong

byref = _ctypes.byref
addressof = _ctypes.addressof
sizeof = _ctypes.sizeof
get_errno = _ctypes.get_errno


class _RunningProgram:
    """What a function pointer is looked up in: the program and every library it
    loaded (dlopen(NULL)), which includes libc and, in CPython, the C API."""

    _handle = _ctypes.dlopen(None, 0)  # type: ignore[arg-type]  # NULL, as CDLL(None) passes


class _CFunction(_ctypes.CFuncPtr):
    """A C function that releases the GIL and saves errno for :func:`get_errno`."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _PythonAPIFunction(_ctypes.CFuncPtr):
    """A C function called with the GIL held (ctypes' PyDLL), errno saved too."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO | _ctypes.FUNCFLAG_PYTHONAPI
    _restype_ = c_int


def function(name: str, restype: Any = c_int) -> Any:
    """libc's (or the interpreter's) ``name``; returns ``restype``, C int by default."""
    found = _CFunction((name, _RunningProgram))  # type: ignore[arg-type]  # has _handle
    found.restype = restype
    return found


def function_holding_gil(name: str, restype: Any = c_int) -> Any:
    """``name`` called without releasing the GIL: for fork-like calls and the C API."""
    found = _PythonAPIFunction((name, _RunningProgram))  # type: ignore[arg-type]
    found.restype = restype
    return found


def string_buffer(data: bytes, size: int | None = None) -> Array[c_char]:
    """A writable C copy of ``data``, ``size`` bytes long (zero-padded)."""
    buffer: Array[c_char] = (c_char * (len(data) if size is None else size))()
    buffer.raw = data
    return buffer
