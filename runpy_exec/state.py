"""Container state on disk: ids, locks, atomic writes, pyrunc's and runc's state.

One directory per container under ``--root``.  pyrunc writes ``state.json``
there; runc writes its own ``state.json`` under ``/run/runc``.  Both are read
into one :class:`Container` so ``exec`` works on either runtime's containers.
"""

from __future__ import annotations

import errno
import fcntl
import os

from runpy_exec import jsonio as json  # json without its import of re
from runpy_exec.errors import PyruncError

# typing and contextlib (with collections and functools) cost more than a
# state command's whole work: neither is imported at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
MAX_ID_LENGTH = 1024
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")

# runc's namespace_paths keys, mapped to the OCI names pyrunc uses everywhere.
_RUNC_NAMESPACES = {
    "NEWUSER": "user",
    "NEWIPC": "ipc",
    "NEWUTS": "uts",
    "NEWNET": "network",
    "NEWPID": "pid",
    "NEWNS": "mount",
    "NEWCGROUP": "cgroup",
    "NEWTIME": "time",
}


class Container:
    """What any command needs to know about one container, whoever created it.

    A plain class (not a dataclass): this module is on exec's hot path.
    """

    def __init__(
        self, *, id: str, state_dir: str, bundle: str, rootfs: str, init_pid: int,
        init_start_time: int, created: str, owner: str = "root", runtime: str = "pyrunc",
        namespace_paths: dict[str, str] | None = None, cgroup_paths: dict[str, str] | None = None,
        config: dict[str, Any] | None = None, annotations: dict[str, str] | None = None,
    ) -> None:
        self.id = id
        self.state_dir = state_dir
        self.bundle = bundle
        self.rootfs = rootfs
        self.init_pid = init_pid
        self.init_start_time = init_start_time
        self.created = created
        self.owner = owner
        self.runtime = runtime
        self.namespace_paths = namespace_paths or {}  # OCI type -> /proc/<pid>/ns/<x>
        self.cgroup_paths = cgroup_paths or {}  # controller -> host dir
        self.config = config or {}  # the container's config.json
        self.annotations = annotations or {}


def validate_id(container_id: str) -> None:
    """Refuse ids that could name a path outside ``--root`` (runc's rule)."""
    if (
        not container_id
        or container_id in (".", "..")
        or len(container_id) > MAX_ID_LENGTH
        or not set(container_id) <= _ID_CHARS
    ):
        raise PyruncError(f"invalid container id {container_id!r}: must be 1-{MAX_ID_LENGTH} "
                          "characters of letters, digits, '_', '+', '-' and '.', not '.' or '..'")


def container_dir(root: str, container_id: str) -> str:
    validate_id(container_id)
    return os.path.join(root, container_id)


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write through a temp file, fsync, rename: readers see old or new, never half."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except OSError:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: str) -> None:
    try:  # noqa: SIM105 - contextlib is kept off this path
        os.unlink(path)
    except OSError:
        pass


def write_pid_file(path: str, pid: int) -> None:
    """The number only, no newline, complete before anyone can read it (engines poll it)."""
    try:
        atomic_write(os.path.abspath(path), str(pid).encode(), 0o644)
    except OSError as err:
        raise PyruncError(f"pid file {path}: {err.strerror or err}") from None


class locked:  # lower case: used as `with locked(dir):`, as the function it was
    """Hold the container's lock: concurrent commands never interleave state changes."""

    def __init__(self, state_dir: str) -> None:
        self._state_dir = state_dir
        self._fd = -1

    def __enter__(self) -> None:
        try:
            fd = os.open(self._state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            name = os.path.basename(self._state_dir)
            raise PyruncError(f"container {name!r} does not exist") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __exit__(self, *_exc: object) -> None:
        os.close(self._fd)
        self._fd = -1


def make_container_dir(root: str, container_id: str) -> str:
    """Create the container's directory; mkdir's atomicity makes two creates of one id race-free."""
    path = container_dir(root, container_id)
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
    except FileExistsError:
        raise PyruncError(f"root {root}: not a directory") from None
    except OSError as err:
        raise PyruncError(f"root {root}: {err.strerror}") from None
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        raise PyruncError(f"container with id {container_id!r} already exists") from None
    except OSError as err:
        raise PyruncError(f"root {root}: {err.strerror}") from None
    return path


def save(container: Container) -> None:
    record = {
        "pyrunc": 1,
        "id": container.id,
        "init_pid": container.init_pid,
        "init_start_time": container.init_start_time,
        "bundle": container.bundle,
        "rootfs": container.rootfs,
        "created": container.created,
        "owner": container.owner,
        "annotations": container.annotations,
        "namespace_paths": container.namespace_paths,
        "cgroup_paths": container.cgroup_paths,
        "config": container.config,
    }
    atomic_write(os.path.join(container.state_dir, STATE_FILE), json.dumps(record).encode())


def load(root: str, container_id: str) -> Container:
    """Read pyrunc's or runc's state.json for ``container_id`` under ``root``."""
    state_dir = container_dir(root, container_id)
    try:
        with open(os.path.join(state_dir, STATE_FILE), "rb") as f:
            record = json.loads(f.read())
    except FileNotFoundError:
        raise PyruncError(f"container {container_id!r} does not exist") from None
    except (OSError, ValueError) as err:
        raise PyruncError(f"container {container_id!r}: unreadable state: {err}") from None
    if "init_process_pid" in record:
        return _from_runc(state_dir, record)
    return Container(
        id=record["id"],
        state_dir=state_dir,
        bundle=record["bundle"],
        rootfs=record["rootfs"],
        init_pid=record["init_pid"],
        init_start_time=record["init_start_time"],
        created=record["created"],
        owner=record.get("owner", "root"),
        namespace_paths=record.get("namespace_paths", {}),
        cgroup_paths=record.get("cgroup_paths", {}),
        config=record.get("config", {}),
        annotations=record.get("annotations", {}),
    )


def _from_runc(state_dir: str, record: dict[str, Any]) -> Container:
    """runc keeps the bundle only as a label; config.json there holds the process defaults."""
    config = record.get("config", {})
    labels = dict(label.split("=", 1) for label in config.get("labels") or [] if "=" in label)
    bundle = labels.get("bundle", "")
    created_namespaces = {ns.get("type") for ns in config.get("namespaces") or []}
    namespace_paths = {
        _RUNC_NAMESPACES[kind]: path
        for kind, path in (record.get("namespace_paths") or {}).items()
        if kind in _RUNC_NAMESPACES and kind in created_namespaces
    }
    return Container(
        id=record["id"],
        state_dir=state_dir,
        bundle=bundle,
        rootfs=config.get("rootfs", ""),
        init_pid=record["init_process_pid"],
        init_start_time=record["init_process_start"],
        created=record.get("created", ""),
        runtime="runc",
        namespace_paths=namespace_paths,
        cgroup_paths=record.get("cgroup_paths") or {},
        config=_read_bundle_config(bundle),
    )


def _read_bundle_config(bundle: str) -> dict[str, Any]:
    """runc validated this config.json when it created the container; its process is re-checked
    by the caller against the process schema before use."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            config: dict[str, Any] = json.loads(f.read())
    except (OSError, ValueError) as err:
        raise PyruncError(f"{path}: {getattr(err, 'strerror', None) or err}") from None
    return config


def status_of(container: Container) -> str:
    """Derived live, never stored: a stored status goes stale the moment init dies.

    The init is matched by pid and start time, so a recycled pid is not taken
    for the container; the exec fifo exists until ``start``; the freezer
    tells paused from running.
    """
    from runpy_exec.linux import cgroups, proc

    if not proc.is_alive_with_start_time(container.init_pid, container.init_start_time):
        return "stopped"
    if os.path.exists(os.path.join(container.state_dir, EXEC_FIFO)):
        return "created"
    try:
        if container.cgroup_paths and cgroups.freezer_state(container.cgroup_paths) == "FROZEN":
            return "paused"
    except cgroups.CgroupError as err:
        # A container may move its init elsewhere and remove its own cgroup
        # (runc#5089); runc then reads it as not frozen, and exec still works.
        if err.errno != errno.ENOENT:
            raise
    return "running"


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n, STATE_FILE)))
