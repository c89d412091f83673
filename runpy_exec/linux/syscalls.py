"""The few syscalls Python 3.11 and python-prctl do not offer, through :mod:`.libc`.

Each wrapper raises ``OSError(errno, "<call>: <strerror>")`` so a failure
names the call that failed.  Nothing here decides anything.
"""

from __future__ import annotations

import errno
import os

from runpy_exec.linux import libc

_unshare = libc.function("unshare")
_mount = libc.function("mount")
_umount2 = libc.function("umount2")
_prctl = libc.function("prctl")

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 0x2

CLOSE_RANGE_CLOEXEC = 1 << 2

_SYS_SETNS = 308
_SYS_PIVOT_ROOT = 155
_SYS_CLOSE_RANGE = 436
_SYS_CAPGET = 125
_SYS_CAPSET = 126

PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def _check(result: int, call: str) -> int:
    if result == -1:
        err = libc.get_errno()
        raise OSError(err, f"{call}: {os.strerror(err)}")
    return result


def setns(fd: int, nstype: int = 0) -> None:
    _check(libc.syscall(_SYS_SETNS, libc.c_int(fd), libc.c_int(nstype)), "setns")


def unshare(flags: int) -> None:
    _check(_unshare(libc.c_int(flags)), "unshare")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    def enc(value: str | None) -> bytes | None:
        return None if value is None else os.fsencode(value)

    result = _mount(
        enc(source), enc(target), enc(fstype), libc.c_ulong(flags), enc(data)
    )
    _check(result, f"mount {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_umount2(os.fsencode(target), libc.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    result = libc.syscall(_SYS_PIVOT_ROOT, os.fsencode(new_root), os.fsencode(put_old))
    _check(result, "pivot_root")


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    result = libc.syscall(
        _SYS_CLOSE_RANGE, libc.c_uint(first), libc.c_uint(last), libc.c_uint(flags)
    )
    _check(result, "close_range")


def ambient_raise(cap: int) -> None:
    result = _prctl(
        libc.c_int(PR_CAP_AMBIENT), libc.c_ulong(PR_CAP_AMBIENT_RAISE),
        libc.c_ulong(cap), libc.c_ulong(0), libc.c_ulong(0),
    )
    _check(result, f"prctl(PR_CAP_AMBIENT_RAISE, {cap})")


def ambient_clear_all() -> None:
    result = _prctl(
        libc.c_int(PR_CAP_AMBIENT), libc.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL),
        libc.c_ulong(0), libc.c_ulong(0), libc.c_ulong(0),
    )
    _check(result, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")


# seccomp(2)'s number differs by machine (it predates the generic table).
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "s390x": 348,
                "riscv64": 277}.get(os.uname().machine)
_SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4
BPF_INSTRUCTION_SIZE = 8  # struct sock_filter


class _SockFprog(libc.Structure):
    _fields_ = [("len", libc.c_ushort), ("filter", libc.c_void_p)]


class BpfProgram:
    """A classic BPF program, laid out before fork for :func:`seccomp_set_mode_filter`.

    The child then passes a pointer to memory that already exists: nothing
    to build or import between fork and execve.
    """

    def __init__(self, code: bytes) -> None:
        if not code or len(code) % BPF_INSTRUCTION_SIZE:
            raise ValueError(f"a BPF program is whole 8-byte instructions, not {len(code)} bytes")
        self._code = libc.string_buffer(code)
        self.fprog = _SockFprog(len(code) // BPF_INSTRUCTION_SIZE, libc.addressof(self._code))

    @property
    def code(self) -> bytes:
        return self._code.raw


def seccomp_set_mode_filter(program: BpfProgram, flags: int) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): what libseccomp's load does."""
    _check(_seccomp_set_mode_filter(flags, libc.byref(program.fprog)),
           "seccomp(SECCOMP_SET_MODE_FILTER)")


def seccomp_filter_flag_known(flags: int) -> bool:
    """Whether the kernel knows the filter ``flags``: seccomp(SECCOMP_SET_MODE_FILTER)
    with no program fails EFAULT for flags it knows and EINVAL for others, and
    installs nothing."""
    try:
        result = _seccomp_set_mode_filter(flags, libc.c_void_p(None))
    except OSError:
        return False
    return result == -1 and libc.get_errno() == errno.EFAULT


def _seccomp_set_mode_filter(flags: int, program: object) -> int:
    if _SYS_SECCOMP is None:
        raise OSError(errno.ENOSYS, f"seccomp: its number on {os.uname().machine} is not known")
    result: int = libc.syscall(_SYS_SECCOMP, libc.c_uint(_SECCOMP_SET_MODE_FILTER),
                               libc.c_uint(flags), program)
    return result


_SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class _OpenHow(libc.Structure):
    _fields_ = [("flags", libc.c_uint64), ("mode", libc.c_uint64), ("resolve", libc.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """Open ``path`` below ``dirfd`` with openat2's ``resolve`` restrictions.

    With RESOLVE_IN_ROOT, absolute symlinks and ``..`` stay inside ``dirfd``:
    a container's /etc/passwd -> /host/file symlink cannot reach the host.
    """
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = libc.syscall(
        _SYS_OPENAT2, libc.c_int(dirfd), os.fsencode(path), libc.byref(how),
        libc.c_size_t(libc.sizeof(how)),
    )
    return _check(fd, f"openat2 {path}")


_SYS_IOPRIO_SET = 251
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13


def ioprio_set(ioprio_class: int, priority: int) -> None:
    value = (ioprio_class << _IOPRIO_CLASS_SHIFT) | priority
    result = libc.syscall(
        _SYS_IOPRIO_SET, libc.c_int(_IOPRIO_WHO_PROCESS), libc.c_int(0), libc.c_int(value)
    )
    _check(result, "ioprio_set")


# The new mount API (Linux 5.2): mounts made from fds, with no path to redirect.
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
OPEN_TREE_CLONE = 1
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
_FSOPEN_CLOEXEC = 1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 1
MOUNT_ATTR_NOSUID = 0x02
MOUNT_ATTR_NODEV = 0x04
MOUNT_ATTR_NOEXEC = 0x08


def open_tree(dirfd: int, path: str, flags: int) -> int:
    fd = libc.syscall(_SYS_OPEN_TREE, libc.c_int(dirfd), os.fsencode(path),
                      libc.c_uint(flags | os.O_CLOEXEC))
    return _check(fd, "open_tree")


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int) -> None:
    result = libc.syscall(_SYS_MOVE_MOUNT, libc.c_int(from_fd), os.fsencode(from_path),
                          libc.c_int(to_fd), os.fsencode(to_path), libc.c_uint(flags))
    _check(result, "move_mount")


def fsmount_new(fs_type: str, attr_flags: int) -> int:
    """A new, detached instance of ``fs_type`` (fsopen, create, fsmount): an fd to its
    root that no path leads to."""
    context = _check(libc.syscall(_SYS_FSOPEN, os.fsencode(fs_type),
                                  libc.c_uint(_FSOPEN_CLOEXEC)), f"fsopen {fs_type}")
    try:
        _check(libc.syscall(_SYS_FSCONFIG, libc.c_int(context),
                            libc.c_uint(_FSCONFIG_CMD_CREATE), None, None, libc.c_int(0)),
               f"fsconfig {fs_type}")
        return _check(libc.syscall(_SYS_FSMOUNT, libc.c_int(context),
                                   libc.c_uint(_FSMOUNT_CLOEXEC), libc.c_uint(attr_flags)),
                      f"fsmount {fs_type}")
    finally:
        os.close(context)
