"""/proc/self/mountinfo, read into records: what is mounted where, of which type.

rootfs reads it for the propagation and the mounts under a rootfs, cgroups
for where each hierarchy is mounted, features for which cgroup versions are.
One reader, so all three read it alike; a module of its own, so features can
ask without importing the cgroups package (~0.6 ms of each features call).
"""

from __future__ import annotations

from runpy_exec.records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# The unified (v2) hierarchy's key among the controllers below.
UNIFIED = ""

# The v1 hierarchies runc joins; any other (e.g. "misc", or a named hierarchy
# of another tool) is left alone.
V1_CONTROLLERS = (
    "cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "net_cls", "blkio",
    "perf_event", "net_prio", "hugetlb", "pids", "rdma", "name=systemd",
)  # fmt: skip


class MountInfo(NamedTuple):
    root: str  # the part of the source filesystem that is mounted
    mountpoint: str
    optional: tuple[str, ...]  # "shared:N", "master:N"...
    fstype: str
    super_options: tuple[str, ...]


def unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (\\040 for a space, and so on)."""
    if "\\" not in field:
        return field
    parts = field.split("\\")
    out = [parts[0]]
    for part in parts[1:]:
        code = part[:3]
        if len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)) + part[3:])
        else:
            out.append("\\" + part)
    return "".join(out)


def entries(lines: Iterable[str] | None = None) -> list[MountInfo]:
    """This mount namespace's mounts, in the kernel's order (parents first); or
    those of ``lines``, lines of /proc/self/mountinfo read earlier."""
    if lines is None:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return entries(f)
    found = []
    for line in lines:
        fields = line.split()
        sep = fields.index("-")
        found.append(MountInfo(
            root=unescape(fields[3]),
            mountpoint=unescape(fields[4]),
            optional=tuple(fields[6:sep]),
            fstype=fields[sep + 1],
            super_options=tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3
            else (),
        ))
    return found


def cgroup_hierarchies(lines: Iterable[str] | None = None) -> dict[str, tuple[str, str]]:
    """Controller -> (mount directory, root of the hierarchy that the mount shows).

    The v2 hierarchy is keyed UNIFIED, each v1 one by its controllers. The
    root is not "/" when only a subtree is mounted, as inside a container;
    paths from /proc/<pid>/cgroup are then relative to that root.  The first
    mount of a hierarchy wins.  ``lines`` as for :func:`entries`.
    """
    mounts: dict[str, tuple[str, str]] = {}
    for info in entries(lines):
        where = (info.mountpoint, info.root)
        if info.fstype == "cgroup2":
            mounts.setdefault(UNIFIED, where)
        elif info.fstype == "cgroup":
            for option in info.super_options:
                if option in V1_CONTROLLERS:
                    mounts.setdefault(option, where)
    return mounts
