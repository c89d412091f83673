"""fork(2) through clone3(2), so that the child is born in a given cgroup v2.

Why: a process that moves itself (or is moved) into a cgroup by writing
cgroup.procs makes the kernel take its cgroup_threadgroup_rwsem for writing,
which waits for an RCU grace period when the lock has been idle - 9 to 13 ms
on these machines, on every spaced exec.  A child created with
``CLONE_INTO_CGROUP`` starts in the cgroup and nothing is written at all.

clone3 without ``CLONE_VM`` duplicates the caller as fork(2) does; CPython's
own fork bookkeeping (import lock, at-fork hooks, the child's thread state)
is done around it with the same calls os.fork makes.  The raw syscall skips
glibc's fork wrapper, which also guards glibc's locks (malloc's arenas, stdio)
against other threads; so it is used only while the caller has a single
thread (pyrunc always has); otherwise the caller uses os.fork.

Nothing here decides which cgroup, or what to do when the kernel refuses it:
that is :mod:`runpy_exec.linux.cgroups.join`'s business.
"""

from __future__ import annotations

import errno
import os
import sys

from runpy_exec.linux import libc

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    # signal.py's IntEnum wrappers import enum (~3 ms on every exec); _signal
    # holds the same constants as plain ints.
    import _signal as signal

CLONE_PIDFD = 0x00001000
CLONE_INTO_CGROUP = 0x200000000

# clone3 is 435 in the syscall table every architecture shares since Linux 5.3.
_SYS_CLONE3 = 435

# Kernels without clone3 (ENOSYS, before 5.3) or without CLONE_INTO_CGROUP
# (before 5.7: the flag is EINVAL, the longer struct E2BIG), and seccomp
# profiles that hide clone3 behind ENOSYS so that libc falls back to clone.
UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.E2BIG})


class _CloneArgs(libc.Structure):
    """struct clone_args of <linux/sched.h>, up to ``cgroup`` (CLONE_ARGS_SIZE_VER2)."""

    _fields_ = [(name, libc.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup")]


# The syscall keeps the GIL, as os.fork holds it across fork(): the child must
# come back holding it, and no other Python thread may run in between.
_syscall = libc.function_holding_gil("syscall", libc.c_long)
_syscall.argtypes = [libc.c_long, libc.c_void_p, libc.c_size_t]
_before_fork = libc.function_holding_gil("PyOS_BeforeFork", None)
_after_fork_parent = libc.function_holding_gil("PyOS_AfterFork_Parent", None)
_after_fork_child = libc.function_holding_gil("PyOS_AfterFork_Child", None)
for _hook in (_before_fork, _after_fork_parent, _after_fork_child):
    _hook.argtypes = []


def single_threaded() -> bool:
    """Whether this process has one thread (field 20 of /proc/self/stat)."""
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    return stat[stat.rindex(b")") + 2:].split()[17] == b"1"


def fork_into_cgroup(cgroup_fd: int) -> tuple[int, int]:
    """Fork a child that starts in the cgroup v2 directory open as ``cgroup_fd``.

    Returns ``(0, -1)`` in the child and ``(pid, pidfd)`` in the parent, as
    os.fork returns 0 or the pid; the pidfd (close-on-exec, from
    ``CLONE_PIDFD``) is the parent's to close.  The child is what fork(2)
    makes: a copy of the caller that sends SIGCHLD when it exits.

    Call it only while :func:`single_threaded`.  The kernel checks the
    caller's own credentials against the cgroup, at the clone.  A refusal is
    ``OSError(errno, "clone3: ...")``: an errno in :data:`UNSUPPORTED` means
    this kernel (or a seccomp profile) has no clone3 or no
    ``CLONE_INTO_CGROUP``, and the caller forks the old way; EBUSY or
    EOPNOTSUPP that the cgroup takes no processes (it has controllers
    enabled for children, or is threaded); ENODEV that it was removed.
    """
    pidfd = libc.c_int(-1)
    args = _CloneArgs(flags=CLONE_PIDFD | CLONE_INTO_CGROUP, pidfd=libc.addressof(pidfd),
                      exit_signal=signal.SIGCHLD, cgroup=cgroup_fd)
    sys.audit("os.fork")
    _before_fork()
    pid = _syscall(_SYS_CLONE3, libc.byref(args), libc.sizeof(args))
    if pid == 0:
        _after_fork_child()
        return 0, -1
    err = libc.get_errno()
    _after_fork_parent()
    if pid < 0:
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return pid, pidfd.value
