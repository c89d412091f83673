"""The bpf(2) calls a cgroup v2 device filter needs, through :mod:`.libc`.

cgroup v2 has no devices.allow/devices.deny files: device access is decided
by BPF_PROG_TYPE_CGROUP_DEVICE programs attached to the cgroup.  No stdlib
module or maintained PyPI package offers bpf(2), so the few commands used
here are made by hand; each failure is an OSError with errno and the name of
the command.  What the program says is decided by the caller (see
``runpy_exec.linux.cgroups.devices``); this module only loads, attaches,
lists and detaches.
"""

from __future__ import annotations

import errno
import os
import struct

from runpy_exec.linux import libc

PROG_TYPE_CGROUP_DEVICE = 15
CGROUP_DEVICE = 6  # attach type
F_ALLOW_MULTI = 2

_PROG_LOAD = 5
_PROG_ATTACH = 8
_PROG_DETACH = 9
_PROG_GET_FD_BY_ID = 13
_PROG_QUERY = 16

_SYSCALL_NUMBERS = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}
_ATTR_SIZE = 128  # larger than every attr used here; the kernel wants the rest zero


def _bpf(command: int, name: str, attr: libc.Array[libc.c_char]) -> int:
    try:
        number = _SYSCALL_NUMBERS[os.uname().machine]
    except KeyError:
        raise OSError(0, f"bpf {name}: unknown syscall number on {os.uname().machine}") from None
    result = libc.syscall(libc.c_long(number), libc.c_int(command), attr, libc.c_uint(len(attr)))
    if result < 0:
        err = libc.get_errno()
        raise OSError(err, f"bpf {name}: {os.strerror(err)}")
    return int(result)


def _attr(fmt: str, *values: int | bytes) -> libc.Array[libc.c_char]:
    packed = struct.pack(fmt, *values)
    return libc.string_buffer(packed, _ATTR_SIZE)


def load_device_program(instructions: bytes, name: str = "pyrunc_devices") -> int:
    """Load a cgroup device program (raw eBPF instructions); return its fd (close-on-exec).

    On EINVAL/EACCES the kernel verifier's log is put in the error, as that
    is the only account of what it refused.
    """
    license = libc.string_buffer(b"GPL\0")
    code = libc.string_buffer(instructions)
    log = libc.string_buffer(b"", 65536)
    for log_level in (0, 1):
        # Fields: prog_type, insn_cnt, insns, license, log_level, log_size,
        # log_buf, kern_version, prog_flags, prog_name.
        attr = _attr("=IIQQIIQII16s", PROG_TYPE_CGROUP_DEVICE, len(instructions) // 8,
                     libc.addressof(code), libc.addressof(license), log_level,
                     len(log) if log_level else 0, libc.addressof(log) if log_level else 0,
                     0, 0, name.encode()[:15])
        try:
            return _bpf(_PROG_LOAD, "BPF_PROG_LOAD", attr)
        except OSError as err:
            if log_level == 0 and err.errno in (errno.EINVAL, errno.EACCES):
                continue  # load again, this time with the verifier's log
            detail = log.value.decode(errors="replace").strip().splitlines()
            if detail:
                raise OSError(err.errno, f"{err.strerror}: {detail[-1]}") from None
            raise
    raise AssertionError("the second load either returns or raises")


def attach(cgroup_fd: int, program_fd: int, attach_type: int = CGROUP_DEVICE) -> None:
    """Attach beside the programs already there (BPF_F_ALLOW_MULTI): all must allow."""
    attr = _attr("=IIII", cgroup_fd, program_fd, attach_type, F_ALLOW_MULTI)
    _bpf(_PROG_ATTACH, "BPF_PROG_ATTACH", attr)


def detach(cgroup_fd: int, program_fd: int, attach_type: int = CGROUP_DEVICE) -> None:
    attr = _attr("=III", cgroup_fd, program_fd, attach_type)
    _bpf(_PROG_DETACH, "BPF_PROG_DETACH", attr)


def query(cgroup_fd: int, attach_type: int = CGROUP_DEVICE) -> list[int]:
    """The ids of the programs attached to this very cgroup (not its ancestors')."""
    capacity = 64
    while True:
        ids = (libc.c_uint32 * capacity)()
        # Fields: target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt.
        attr = _attr("=IIIIQI", cgroup_fd, attach_type, 0, 0, libc.addressof(ids), capacity)
        try:
            _bpf(_PROG_QUERY, "BPF_PROG_QUERY", attr)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            capacity *= 4
            continue
        count = struct.unpack_from("=I", attr, 24)[0]
        return list(ids[:count])


def program_fd(program_id: int) -> int:
    """An fd of an attached program, from its id (BPF_PROG_GET_FD_BY_ID)."""
    return _bpf(_PROG_GET_FD_BY_ID, "BPF_PROG_GET_FD_BY_ID", _attr("=I", program_id))
