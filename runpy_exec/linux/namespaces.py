"""Namespace names, joining another process's namespaces, and id maps.

Three vocabularies name the same namespaces: OCI's ``linux.namespaces[].type``,
the CLONE_NEW* flag for unshare/clone/setns, and the file name under
/proc/<pid>/ns.  :data:`NAMESPACES` is the one table between them.
"""

from __future__ import annotations

import os

from runpy_exec.errors import PyruncError
from runpy_exec.linux import syscalls
from runpy_exec.records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence


class Namespace(NamedTuple):
    oci_type: str
    clone_flag: int
    proc_name: str


# In join order.  The user namespace comes first because it decides what the
# caller may do: joining it grants the capabilities that joining the other
# namespaces it owns requires.  The rest follow runc's order (ipc, uts, net,
# pid, mount, cgroup, then time, which runc added last).  Mount is joined after
# the others because setns(CLONE_NEWNS) also moves the caller's root and cwd
# into the container; every fd is opened before any join, so no /proc path is
# resolved after that move.
NAMESPACES: tuple[Namespace, ...] = (
    Namespace("user", syscalls.CLONE_NEWUSER, "user"),
    Namespace("ipc", syscalls.CLONE_NEWIPC, "ipc"),
    Namespace("uts", syscalls.CLONE_NEWUTS, "uts"),
    Namespace("network", syscalls.CLONE_NEWNET, "net"),
    Namespace("pid", syscalls.CLONE_NEWPID, "pid"),
    Namespace("mount", syscalls.CLONE_NEWNS, "mnt"),
    Namespace("cgroup", syscalls.CLONE_NEWCGROUP, "cgroup"),
    Namespace("time", syscalls.CLONE_NEWTIME, "time"),
)

BY_TYPE: dict[str, Namespace] = {ns.oci_type: ns for ns in NAMESPACES}


def _lookup(oci_type: str) -> Namespace:
    try:
        return BY_TYPE[oci_type]
    except KeyError:
        raise PyruncError(f"unknown namespace type {oci_type!r}") from None


def clone_flag(oci_type: str) -> int:
    """The CLONE_NEW* flag for unshare(2), clone(2) and setns(2)."""
    return _lookup(oci_type).clone_flag


def ns_path(pid: int | str, oci_type: str) -> str:
    return f"/proc/{pid}/ns/{_lookup(oci_type).proc_name}"


def open_namespaces(pid: int | str, types: Iterable[str]) -> list[tuple[str, int]]:
    """Open the namespaces of ``pid`` named by ``types``, in join order.

    All are opened before any is joined, while /proc is still the host's.
    Holding the fds also pins the namespaces: if ``pid`` exits between open
    and join, the caller still joins what it looked at, not a reused pid's.
    The fds are O_CLOEXEC; the caller closes them once joined.
    """
    wanted = {_lookup(t).oci_type for t in types}
    opened: list[tuple[str, int]] = []
    for ns in NAMESPACES:
        if ns.oci_type not in wanted:
            continue
        path = ns_path(pid, ns.oci_type)
        try:
            opened.append((ns.oci_type, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        except OSError as err:
            for _, fd in opened:
                os.close(fd)
            raise PyruncError(f"open {path}: {err.strerror}") from err
    return opened


def same_namespace(pid: int | str, oci_type: str) -> bool:
    """Whether the caller already is in ``pid``'s namespace of this type.

    A caller must skip such a namespace: setns to one's own user namespace
    fails with EINVAL, since re-entering it would grant a full capability set.
    """
    mine = os.stat(ns_path("self", oci_type))
    theirs = os.stat(ns_path(pid, oci_type))
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def join(fds: Sequence[tuple[str, int]]) -> None:
    """setns into each namespace, in the order given (see :data:`NAMESPACES`).

    The flag passed with each fd makes the kernel check that the fd really is
    that kind of namespace.  Joining user, mount or time namespaces requires a
    single-threaded caller: do it after fork, before any thread is started.
    """
    for oci_type, fd in fds:
        try:
            syscalls.setns(fd, _lookup(oci_type).clone_flag)
        except OSError as err:
            reason = os.strerror(err.errno) if err.errno else str(err)
            raise PyruncError(f"join {oci_type} namespace: setns: {reason}") from err


# (id inside, id outside, count), or OCI's {"containerID", "hostID", "size"}.
if TYPE_CHECKING:
    IdMap = tuple[int, int, int] | Mapping[str, int]


def _map_text(maps: Sequence[IdMap]) -> str:
    lines = []
    for m in maps:
        inside, outside, count = (
            m if isinstance(m, tuple) else (m["containerID"], m["hostID"], m["size"])
        )
        lines.append(f"{inside} {outside} {count}\n")
    return "".join(lines)


def _write_map(pid: int, name: str, text: str) -> None:
    """Write a whole /proc file in one write(2): the kernel accepts a map only once, whole."""
    path = f"/proc/{pid}/{name}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise PyruncError(f"write {path}: {err.strerror}") from err


def write_id_maps(
    pid: int,
    uid_maps: Sequence[IdMap],
    gid_maps: Sequence[IdMap],
    deny_setgroups: bool = False,
) -> None:
    """Give ``pid``'s new user namespace its uid and gid maps.

    ``deny_setgroups`` writes "deny" to /proc/<pid>/setgroups first, which the
    kernel requires before an unprivileged writer may set a gid map: otherwise
    a user could drop supplementary groups that deny it access (CVE-2014-8989).
    """
    if deny_setgroups:
        _write_map(pid, "setgroups", "deny")
    if uid_maps:
        _write_map(pid, "uid_map", _map_text(uid_maps))
    if gid_maps:
        _write_map(pid, "gid_map", _map_text(gid_maps))
