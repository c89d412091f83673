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
import os

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

    def _c_type(name: str, code: str) -> type:
        """A C scalar type as ctypes declares it: ``_SimpleCData`` and a struct code."""
        return type(name, (_ctypes._SimpleCData,), {"_type_": code, "__module__": __name__})

    c_char = _c_type("c_char", "c")
    c_ushort = _c_type("c_ushort", "H")
    c_int = _c_type("c_int", "i")
    c_uint = _c_type("c_uint", "I")
    c_long = _c_type("c_long", "l")
    c_ulong = _c_type("c_ulong", "L")
    c_void_p = _c_type("c_void_p", "P")
    c_uint32 = c_uint
    c_uint64 = _c_type("c_uint64", "Q")

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


def library_function(soname: str, name: str, restype: Any = c_int) -> Any:
    """``name`` from the shared library ``soname``, loaded as ``ctypes.CDLL(soname)``
    loads it; OSError when the library is not there."""
    library = type("_Library", (), {"_handle": _ctypes.dlopen(soname, os.RTLD_NOW)})
    found = _CFunction((name, library))  # type: ignore[arg-type]  # has _handle
    found.restype = restype
    return found


def function_holding_gil(name: str, restype: Any = c_int) -> Any:
    """``name`` called without releasing the GIL: for fork-like calls and the C API."""
    found = _PythonAPIFunction((name, _RunningProgram))  # type: ignore[arg-type]
    found.restype = restype
    return found


# syscall(2), the one libc function every syscall wrapper shares: looked up once.
syscall = function("syscall", c_long)


def string_buffer(data: bytes, size: int | None = None) -> Array[c_char]:
    """A writable C copy of ``data``, ``size`` bytes long (zero-padded)."""
    buffer: Array[c_char] = (c_char * (len(data) if size is None else size))()
    buffer.raw = data
    return buffer
