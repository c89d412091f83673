"""What cgroup v1 and v2 share: mounts, paths, creation, joining, freezing, removal.

A container's cgroups are a dict from controller to absolute directory, as
runc keeps them in ``cgroup_paths``: one key per mounted v1 hierarchy
("cpu", "memory", ..., "name=systemd") and "" for the unified (v2) hierarchy.
On a hybrid host the unified hierarchy usually has no controllers; runc still
creates the container's cgroup there, and so do we, for membership only.
Resource files are written in v2 form only when "" is the sole hierarchy.

Every write of a value is a single write(2): the kernel parses each write to
a cgroup file as one whole value.
"""

from __future__ import annotations

import errno
import os
import posixpath
import time

from runpy_exec.errors import PyruncError

# Where the hierarchies are mounted is read in linux.mountinfo; the cgroup
# modules take these names from here.
from runpy_exec.linux.mountinfo import UNIFIED as UNIFIED
from runpy_exec.linux.mountinfo import V1_CONTROLLERS as V1_CONTROLLERS
from runpy_exec.linux.mountinfo import cgroup_hierarchies

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


def label(controller: str) -> str:
    return controller or "unified"


def own_cgroup_paths(pid: int | str = "self") -> dict[str, str]:
    """The cgroup of ``pid`` in each hierarchy, from /proc/<pid>/cgroup.

    The paths are relative to each hierarchy's root (as the process's cgroup
    namespace shows them).  A line may name several controllers mounted
    together ("cpu,cpuacct"); each gets the path.  The v2 line is keyed "".
    """
    paths: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if not controllers:
                paths[UNIFIED] = path
            for controller in controllers.split(","):
                if controller:
                    paths[controller] = path
    return paths


def mountpoints() -> dict[str, str]:
    """Controller -> the directory where its hierarchy is mounted."""
    return {controller: mnt for controller, (mnt, _) in cgroup_hierarchies().items()}


def _checked(path: str) -> str:
    """A cgroupsPath without "." or ".." parts or doubled slashes, or a one-line error.

    runc cleans ".." away; pyrunc refuses it, as it refuses every input that
    does not mean what it says: a path that climbs cannot name the cgroup
    it seems to.
    """
    parts = path.split("/")
    if any(part in (".", "..") for part in parts):
        raise PyruncError(f"linux.cgroupsPath {path!r}: '.' and '..' are not allowed in it")
    return posixpath.normpath(path) if path else path


def resolve_paths(cgroups_path: str | None, container_id: str) -> dict[str, str]:
    """The container's cgroup directory in each hierarchy (runc's cgroupfs rule).

    An absolute cgroupsPath is taken from each hierarchy's mount root.  A
    relative one, or the container id when cgroupsPath is empty, is taken
    from this process's own cgroup in that hierarchy: with no cgroupsPath,
    runc 1.1.5 puts a container "abc" started from cgroup /x/y in /x/y/abc.
    """
    inner = _checked(cgroups_path or container_id)
    own = {} if inner.startswith("/") else own_cgroup_paths()
    paths: dict[str, str] = {}
    for controller, (mnt, root) in cgroup_hierarchies().items():
        if inner.startswith("/"):
            paths[controller] = posixpath.join(mnt, inner.lstrip("/"))
            continue
        base = own.get(controller)
        if base is None:
            continue
        if root != "/" and (base == root or base.startswith(root + "/")):
            base = base[len(root) :]
        paths[controller] = posixpath.normpath(posixpath.join(mnt, base.lstrip("/"), inner))
    return paths


def is_unified(paths: Mapping[str, str]) -> bool:
    """Whether resources take v2 form: no v1 controller is mounted beside the unified one.

    A named v1 hierarchy (name=systemd, kept on some v2 hosts for old
    software) holds no controller, so it does not count.
    """
    return UNIFIED in paths and all(c == UNIFIED or c.startswith("name=") for c in paths)


class CgroupError(PyruncError):
    """A failed cgroupfs operation; ``errno`` lets a caller tell EBUSY from EINVAL."""

    def __init__(self, message: str, err: int) -> None:
        super().__init__(message)
        self.errno = err


def fail(controller: str, action: str, path: str, err: OSError) -> CgroupError:
    return CgroupError(
        f"cgroup {label(controller)}: {action} {path}: {err.strerror}", err.errno or 0
    )


def write(controller: str, directory: str, name: str, value: str) -> None:
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise fail(controller, f"write {value!r} to", path, err) from err


def read(controller: str, directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as err:
        raise fail(controller, "read", path, err) from err


def _hierarchy_root(path: str) -> str:
    """The mount directory above ``path`` (the first ancestor that is a mount point)."""
    root = path
    while not _is_mount_root(root) and root != "/":
        root = os.path.dirname(root)
    return root


def _levels(path: str) -> list[str]:
    """Every directory from just below the hierarchy's mount down to ``path``."""
    root = _hierarchy_root(path)
    parts = os.path.relpath(path, root).split("/") if path != root else []
    return [os.path.join(root, *parts[: i + 1]) for i in range(len(parts))]


def _mkdir(controller: str, path: str) -> None:
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    except OSError as err:
        raise fail(controller, "mkdir", path, err) from err


def _create_cpuset(path: str) -> None:
    """Create a v1 cpuset cgroup whose cpus and mems are set all the way down.

    A new v1 cpuset cgroup starts with empty cpus and mems, and no task can
    join it (ENOSPC) until both are set, so each level gets its parent's.
    """
    for level in _levels(path):
        _mkdir("cpuset", level)
        parent = os.path.dirname(level)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read("cpuset", level, name):
                write("cpuset", level, name, read("cpuset", parent, name))


def _create_unified(path: str, domain_controllers: bool) -> None:
    """Create a v2 cgroup, enabling in each ancestor every controller it has.

    A v2 controller is usable in a cgroup only if its parent lists it in
    cgroup.subtree_control.  An ancestor may refuse some (e.g. it holds
    processes itself); those are skipped here, and a resource that needs one
    fails later, naming its file.  On a hybrid host there is nothing to enable.

    An ancestor that holds processes and enables a threaded controller (cpu,
    cpuset, pids) becomes a thread root, and a new child of it is "domain
    invalid": no process can join it.  As runc does, such a child is made
    "threaded" when the container sets no memory, cpu, io or hugetlb limit
    (those need a domain), and refused otherwise.
    """
    for level in _levels(path):
        parent = os.path.dirname(level)
        available = read(UNIFIED, parent, "cgroup.controllers").split()
        enabled = set(read(UNIFIED, parent, "cgroup.subtree_control").split())
        missing = [c for c in available if c not in enabled]
        if missing:
            try:
                write(UNIFIED, parent, "cgroup.subtree_control", " ".join("+" + c for c in missing))
            except CgroupError:
                for c in missing:
                    try:
                        write(UNIFIED, parent, "cgroup.subtree_control", "+" + c)
                    except CgroupError:
                        continue
        _mkdir(UNIFIED, level)
        kind = read(UNIFIED, level, "cgroup.type")
        if kind == "domain invalid" and not domain_controllers:
            write(UNIFIED, level, "cgroup.type", "threaded")
        elif kind in ("domain invalid", "threaded", "domain threaded") and domain_controllers:
            why = ("an invalid state (its parent holds processes)" if kind == "domain invalid"
                   else f"{kind} mode")
            raise PyruncError(f"linux.cgroupsPath: cannot put a container with memory, cpu, io "
                              f"or hugetlb limits in cgroup {level}: it is in {why}")


def check_unused(paths: Mapping[str, str]) -> None:
    """Refuse a container's cgroup that already holds processes (another container's).

    Sharing it would mix the two containers' limits, and killing or freezing
    one would hit the other.
    """
    for controller, path in paths.items():
        if controller in (UNIFIED, "devices", "freezer", "pids", "memory") and _procs_in_tree(path):
            raise PyruncError(f"linux.cgroupsPath: cgroup {path} already holds processes "
                              "(of another container?)")


def create(paths: Mapping[str, str], domain_controllers: bool = True) -> None:
    """Create each cgroup directory, with its missing parents.

    ``domain_controllers``: the container sets limits that need a v2 domain
    cgroup (see _create_unified).
    """
    for controller, path in paths.items():
        if controller == "cpuset":
            _create_cpuset(path)
        elif controller == UNIFIED:
            _create_unified(path, domain_controllers)
        else:
            for level in _levels(path):
                _mkdir(controller, level)


def join(paths: Mapping[str, str], pid: int) -> None:
    """Move ``pid`` (a host pid) and all its threads into every cgroup."""
    for controller, path in paths.items():
        write(controller, path, "cgroup.procs", str(pid))


def sub_paths(paths: Mapping[str, str], controllers: Sequence[str], subpath: str) -> dict[str, str]:
    """The container's cgroups with ``subpath`` below them (``exec --cgroup``).

    With no controllers every hierarchy gets the sub-cgroup; otherwise only
    the named ones do and the rest stay at the container's own cgroups.
    ``subpath`` is relative and already checked for ".." by the caller.
    """
    unknown = [c for c in controllers if c not in paths]
    if unknown:
        raise PyruncError(f"cgroup controller {unknown[0]!r} is not among the container's cgroups")
    selected = set(controllers) if controllers else set(paths)
    return {
        controller: posixpath.join(path, subpath) if controller in selected else path
        for controller, path in paths.items()
    }


def _procs_in_tree(top: str) -> list[int]:
    found: list[int] = []
    for directory, _, _ in os.walk(top):
        try:
            with open(os.path.join(directory, "cgroup.procs"), encoding="utf-8") as f:
                found.extend(int(line) for line in f if line.strip())
        except OSError as err:
            if err.errno == errno.EOPNOTSUPP:
                found.extend(_processes_of_threaded(directory))
            # ENODEV: removed while we read it, as systemd removes an emptied scope.
            elif err.errno not in (errno.ENOENT, errno.ENODEV):
                raise
            continue
    return found


def _processes_of_threaded(directory: str) -> set[int]:
    """The processes of a threaded v2 cgroup, whose cgroup.procs cannot be read.

    Its cgroup.threads lists thread ids; each thread's Tgid is its process.
    """
    processes: set[int] = set()
    try:
        with open(os.path.join(directory, "cgroup.threads"), encoding="utf-8") as f:
            threads = [line.strip() for line in f if line.strip()]
    except OSError as err:
        if err.errno not in (errno.ENOENT, errno.ENODEV):
            raise
        return processes
    for tid in threads:
        try:
            with open(f"/proc/{tid}/status", encoding="utf-8", errors="replace") as f:
                processes.update(int(line.split()[1]) for line in f if line.startswith("Tgid:"))
        except OSError:
            continue  # the thread has exited
    return processes


def _any_tree(paths: Mapping[str, str]) -> str:
    """A hierarchy that every process of the container is in, somewhere below its cgroup."""
    for controller in ("devices", "freezer", "pids", "memory", UNIFIED):
        if controller in paths:
            return paths[controller]
    if not paths:
        raise PyruncError("the container has no cgroups")
    return next(iter(paths.values()))


def pids(paths: Mapping[str, str]) -> list[int]:
    """Every process in the container's cgroup and its sub-cgroups (host pids).

    A cgroup that no longer exists holds no process: the list is empty.
    """
    return sorted(set(_procs_in_tree(_any_tree(paths))))


def destroy(paths: Mapping[str, str], timeout: float = 2.0) -> None:
    """Remove the container's cgroups and any sub-cgroups, leaving none behind.

    A cgroup can be removed only once no task is in it, and killed tasks leave
    only as they finish exiting, so removal is retried until ``timeout``.  A
    hierarchy's mount root is never removed.  Killing is the caller's job.
    """
    deadline = time.monotonic() + timeout
    first_error: CgroupError | None = None
    for controller, path in paths.items():
        if _is_mount_root(path):
            continue
        delay = 0.005
        while True:
            try:
                _rmdir_tree(path)
                break
            except OSError as err:
                if err.errno != errno.EBUSY or time.monotonic() >= deadline:
                    # Remove what can be removed in the other hierarchies first.
                    first_error = first_error or fail(
                        controller, "rmdir", err.filename or path, err
                    )
                    break
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
    if first_error is not None:
        raise first_error


def _is_mount_root(path: str) -> bool:
    """Whether ``path`` is where a hierarchy is mounted: on another device than the
    directory that holds it, or that directory itself ("/").

    os.path.ismount does the same after resolving every component of the
    parent's path: ~9 lstat calls a hierarchy, at every create and delete.
    """
    try:
        here = os.stat(path)
        parent = os.stat(posixpath.dirname(path))
    except OSError:  # as os.path.ismount: what cannot be looked at is not a mount
        return False
    return here.st_dev != parent.st_dev or here.st_ino == parent.st_ino


def _rmdir_tree(top: str) -> None:
    """rmdir ``top`` and every cgroup below it, deepest first; a missing one is fine.

    A container's cgroup rarely has sub-cgroups, so it is removed at once when
    it can be; only a refusal (EBUSY: children, or tasks still exiting) walks it.
    """
    try:
        os.rmdir(top)
        return
    except FileNotFoundError:
        return
    except OSError as err:
        if err.errno != errno.EBUSY:
            raise
    for directory, _, _ in os.walk(top, topdown=False):
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            continue


def _freezer(paths: Mapping[str, str]) -> tuple[str, str]:
    """The v1 freezer if mounted, else v2's cgroup.freeze, which every non-root v2 cgroup has."""
    if "freezer" in paths:
        return "freezer", paths["freezer"]
    if UNIFIED in paths:
        return UNIFIED, paths[UNIFIED]
    raise PyruncError("cgroup freezer: no freezer controller for this container")


def freezer_state(paths: Mapping[str, str]) -> str:
    """FROZEN, FREEZING or THAWED: v1's freezer.state words, for v2 as well."""
    controller, path = _freezer(paths)
    if controller == "freezer":
        return read(controller, path, "freezer.state")
    if read(controller, path, "cgroup.freeze") == "0":
        return "THAWED"
    events = read(controller, path, "cgroup.events").splitlines()
    return "FROZEN" if "frozen 1" in events else "FREEZING"


def freeze(paths: Mapping[str, str], timeout: float = 5.0) -> None:
    """Freeze every process of the container, and wait until all are frozen.

    If the freeze does not complete in ``timeout``, the cgroup is thawed
    again and the error is raised, so the container is never left half frozen.
    """
    controller, path = _freezer(paths)
    if controller == "freezer":
        _freeze_v1(path, timeout)
    else:
        _freeze_v2(path, timeout)


def _freeze_v1(path: str, timeout: float) -> None:
    """v1's freezer has no notification: poll freezer.state.

    A v1 freeze can stall in FREEZING when a task cannot be frozen right then
    (e.g. a vfork parent); thawing for a moment and retrying lets it move on.
    """
    deadline = time.monotonic() + timeout
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        if attempt % 50 == 0:
            write("freezer", path, "freezer.state", "THAWED")
        write("freezer", path, "freezer.state", "FROZEN")
        if read("freezer", path, "freezer.state") == "FROZEN":
            return
        time.sleep(0.001 if attempt < 100 else 0.01)
    write("freezer", path, "freezer.state", "THAWED")
    raise PyruncError(f"cgroup freezer: {path} did not freeze within {timeout}s")


def _freeze_v2(path: str, timeout: float) -> None:
    """Write cgroup.freeze, then wait for "frozen 1" in cgroup.events.

    The kernel wakes poll() on cgroup.events with POLLPRI whenever the file
    changes, so the wait needs no sleeping loop.
    """
    import select

    events = os.path.join(path, "cgroup.events")
    write(UNIFIED, path, "cgroup.freeze", "1")
    try:
        fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise fail(UNIFIED, "open", events, err) from err
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI)
        deadline = time.monotonic() + timeout
        while "frozen 1" not in os.pread(fd, 4096, 0).decode().splitlines():
            left = deadline - time.monotonic()
            if left <= 0:
                write(UNIFIED, path, "cgroup.freeze", "0")
                raise PyruncError(f"cgroup: {path} did not freeze within {timeout}s")
            poller.poll(left * 1000)
    except OSError as err:
        raise fail(UNIFIED, "read", events, err) from err
    finally:
        os.close(fd)


def kill_all(paths: Mapping[str, str]) -> bool:
    """SIGKILL every process of the container through cgroup.kill, if the kernel has it.

    cgroup.kill (Linux 5.14) kills the whole subtree at once, so a process
    forking meanwhile cannot escape as it could from a signal-each-pid loop;
    it also kills frozen tasks.  False when only v1 or an older kernel is
    there, or the cgroup is threaded (the kernel refuses cgroup.kill there):
    the caller then signals each process.
    """
    path = paths.get(UNIFIED)
    if not is_unified(paths) or not os.path.exists(os.path.join(path or "", "cgroup.kill")):
        return False
    try:
        write(UNIFIED, paths[UNIFIED], "cgroup.kill", "1")
    except CgroupError as err:
        if err.errno == errno.EOPNOTSUPP:
            return False
        raise
    return True


def thaw(paths: Mapping[str, str]) -> None:
    controller, path = _freezer(paths)
    if controller == "freezer":
        write(controller, path, "freezer.state", "THAWED")
    else:
        write(controller, path, "cgroup.freeze", "0")


class Target:
    """Where resource writes go: the container's dir per controller, with clear errors."""

    def __init__(self, paths: Mapping[str, str]) -> None:
        self.paths = paths

    def dir(self, controller: str) -> str:
        try:
            return self.paths[controller]
        except KeyError:
            raise PyruncError(
                f"cgroup {label(controller)}: controller is not mounted, "
                "so the limit asked for cannot be set"
            ) from None

    def write(self, controller: str, name: str, value: object) -> None:
        write(controller, self.dir(controller), name, str(value))

    def read(self, controller: str, name: str) -> str:
        return read(controller, self.dir(controller), name)

    def has(self, controller: str, name: str) -> bool:
        return os.path.exists(os.path.join(self.dir(controller), name))


def limit_text(value: int) -> str:
    """A v2 limit: -1 (unlimited in OCI) is "max"."""
    return "max" if value == -1 else str(value)


def device_numbers(entry: Mapping[str, Any]) -> str:
    return f"{entry['major']}:{entry['minor']}"


THROTTLES = (
    ("throttleReadBpsDevice", "read_bps"),
    ("throttleWriteBpsDevice", "write_bps"),
    ("throttleReadIOPSDevice", "read_iops"),
    ("throttleWriteIOPSDevice", "write_iops"),
)


def rdma_line(device: str, limits: Mapping[str, Any]) -> str:
    parts = [device]
    if limits.get("hcaHandles") is not None:
        parts.append(f"hca_handle={limits['hcaHandles']}")
    if limits.get("hcaObjects") is not None:
        parts.append(f"hca_object={limits['hcaObjects']}")
    return " ".join(parts)
