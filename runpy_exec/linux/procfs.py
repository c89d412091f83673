"""Writing procfs files through a procfs the container cannot have tampered with.

CVE-2025-52881: a runtime that writes /proc/self/attr/*, /proc/sys/* or
/proc/self/oom_score_adj by path, after joining the container's mount
namespace, writes wherever the container's /proc leads: a bind mount or a
symlink planted over the file (through a mount shared with another
container, say) redirects the write to a host file such as
/proc/sys/kernel/core_pattern, or makes an LSM label write go nowhere.

So create's init opens a procfs of its own first (:func:`open_private`: a
fresh, detached instance that no path leads to, so nothing can be mounted
over its files), and every write goes through :func:`open_file`, which
resolves below that handle with openat2 refusing symlinks (other than the
"self" link itself) and mount crossings: a tampered file is an error,
never a redirected write.
"""

from __future__ import annotations

import os

from runpy_exec.linux import syscalls

_STRICT = syscalls.RESOLVE_NO_SYMLINKS | syscalls.RESOLVE_NO_XDEV | syscalls.RESOLVE_BENEATH


def open_private() -> int:
    """An fd to the root of a new procfs of the caller's pid namespace.

    Where the kernel has no fsopen (before 5.2) or refuses it, the caller's
    /proc, opened now: callers do this before the container's filesystem
    is in place, when /proc is still the one the runtime started with.
    """
    try:
        return syscalls.fsmount_new(
            "proc", syscalls.MOUNT_ATTR_NOSUID | syscalls.MOUNT_ATTR_NODEV
            | syscalls.MOUNT_ATTR_NOEXEC)
    except OSError:
        return os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def open_file(proc_root: int, path: str, flags: int) -> int:
    """Open ``path`` (relative to /proc, e.g. "self/attr/exec" or "sys/net/...") below
    ``proc_root``, with no symlink, ".." or other mount on the way.

    "self" is a symlink: it is resolved on its own (beneath the handle, same
    mount), the rest strictly from there.
    """
    first, _, rest = path.partition("/")
    if first in ("self", "thread-self"):
        base = syscalls.openat2(proc_root, first, os.O_PATH | os.O_DIRECTORY,
                                syscalls.RESOLVE_NO_XDEV | syscalls.RESOLVE_BENEATH)
        try:
            return syscalls.openat2(base, rest, flags, _STRICT)
        finally:
            os.close(base)
    return syscalls.openat2(proc_root, path, flags, _STRICT)


def write_file(proc_root: int, path: str, text: str) -> None:
    fd = open_file(proc_root, path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
