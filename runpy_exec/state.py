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
        creator_pid: int = 0, creator_start_time: int = 0,
        systemd_unit: str = "",
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
        # The `pyrunc create` that is making the container, until it has an init:
        # with it alive the container is "creating", once it is dead "stopped".
        self.creator_pid = creator_pid
        self.creator_start_time = creator_start_time
        self.systemd_unit = systemd_unit  # the scope of --systemd-cgroup, stopped on delete


class BrokenState(PyruncError):
    """The container's directory exists but its state.json is missing or unusable.

    The id is taken all the same: ``delete -f`` removes what is left, using
    ``cgroup_paths`` when they could still be read from the broken record.
    """

    def __init__(self, container_id: str, state_dir: str, reason: str,
                 cgroup_paths: dict[str, str] | None = None) -> None:
        super().__init__(f"container {container_id!r}: {reason}; "
                         f"'delete --force {container_id}' removes it")
        self.container_id = container_id
        self.state_dir = state_dir
        self.reason = reason
        self.cgroup_paths = cgroup_paths or {}


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
    """Write, fsync, rename: readers see old or new, never half.

    The data is written to an unnamed O_TMPFILE and named only once complete.
    A new file (a pid file, most often) is linked straight to ``path``, so a
    pyrunc killed at any moment leaves nothing else behind; a file being
    replaced gets its temp name just before the rename, the one moment a kill
    can leave that name (a filesystem without O_TMPFILE gets a named temp file
    from the start).
    """
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode)
        unnamed = True
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        unnamed = False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        if unnamed and _link_unnamed(fd, directory, path, tmp):
            os.close(fd)
            return
    except BaseException:
        os.close(fd)
        if not unnamed:
            _unlink_quietly(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except OSError:
        _unlink_quietly(tmp)
        raise


def write_cache_entry(path: str, data: bytes) -> None:
    """File a cache entry (create's seccomp programs, features' host part), its
    directory made root's alone if missing.  A cache that cannot be written
    (a read-only /var) only makes the next call compute it again."""
    try:  # noqa: SIM105 - contextlib is kept off this path
        os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        atomic_write(path, data)
    except OSError:
        pass


def _link_unnamed(fd: int, directory: str, path: str, tmp: str) -> bool:
    """Name the O_TMPFILE ``fd``: ``path`` itself when no file is there (True, done),
    else ``tmp``, for the caller to rename over ``path`` (False)."""
    # With a dir fd given, os.link calls linkat with AT_SYMLINK_FOLLOW, which
    # links the file /proc/self/fd/N stands for (plain link(2) would not).
    dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.link(f"/proc/self/fd/{fd}", os.path.basename(path), dst_dir_fd=dir_fd,
                    follow_symlinks=True)
            return True
        except FileExistsError:
            pass
        try:  # noqa: SIM105 - contextlib is kept off this path
            os.unlink(os.path.basename(tmp), dir_fd=dir_fd)  # a dead pyrunc's, our pid
        except FileNotFoundError:
            pass
        os.link(f"/proc/self/fd/{fd}", os.path.basename(tmp), dst_dir_fd=dir_fd,
                follow_symlinks=True)
        return False
    finally:
        os.close(dir_fd)


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
        "systemd_unit": container.systemd_unit,
        "config": container.config,
        "creator_pid": container.creator_pid,
        "creator_start_time": container.creator_start_time,
    }
    atomic_write(os.path.join(container.state_dir, STATE_FILE), json.dumps(record).encode())


def load(root: str, container_id: str) -> Container:
    """Read pyrunc's or runc's state.json for ``container_id`` under ``root``.

    A directory without a usable state.json raises :class:`BrokenState`, never
    "does not exist": the id is taken until ``delete --force`` frees it.
    """
    state_dir = container_dir(root, container_id)
    path = os.path.join(state_dir, STATE_FILE)
    try:
        raw = json.read_small_file(path)
    except FileNotFoundError:
        if not os.path.isdir(state_dir):
            raise PyruncError(f"container {container_id!r} does not exist") from None
        raise BrokenState(container_id, state_dir, "no state.json: a create is under way "
                          "or was killed before it recorded the container") from None
    except OSError as err:
        raise BrokenState(container_id, state_dir,
                          f"unreadable state.json: {err.strerror or err}") from None
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise BrokenState(container_id, state_dir,
                          f"state.json is not valid JSON: {str(err) or 'nested too deeply'}"
                          ) from None
    try:
        if isinstance(record, dict) and "init_process_pid" in record:
            container = _from_runc(state_dir, record)
        else:
            container = _from_pyrunc(state_dir, record)
    except _Malformed as err:
        raise BrokenState(container_id, state_dir, f"malformed state.json: {err}",
                          _cgroup_paths_of(record)) from None
    if container.id != container_id:
        raise BrokenState(container_id, state_dir,
                          f"malformed state.json: it is the state of {container.id!r}",
                          container.cgroup_paths)
    return container


class _Malformed(Exception):
    """A state.json field of the wrong type; its text names the field."""


def _field(record: Any, name: str, kind: type, default: Any = None) -> Any:
    """``record[name]`` if it has type ``kind`` (bool never counts as int)."""
    if not isinstance(record, dict):
        raise _Malformed(f"want an object, not {type(record).__name__}")
    if name not in record or record[name] is None:
        if default is None:
            raise _Malformed(f"{name}: missing")
        return default
    value: Any = record[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Malformed(f"{name}: want {kind.__name__}, not {type(value).__name__}")
    if isinstance(value, int) and not 0 <= value < 1 << 63:
        raise _Malformed(f"{name}: {value} is out of range")
    return value


def _string_map(record: Any, name: str) -> dict[str, str]:
    value: dict[Any, Any] = _field(record, name, dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _Malformed(f"{name}: want an object of strings")
    return value


def _cgroup_paths_of(record: Any) -> dict[str, str]:
    """The cgroup paths of a record otherwise broken, if they are still readable."""
    try:
        return _string_map(record, "cgroup_paths")
    except _Malformed:
        return {}


def _from_pyrunc(state_dir: str, record: Any) -> Container:
    return Container(
        id=_field(record, "id", str),
        state_dir=state_dir,
        bundle=_field(record, "bundle", str),
        rootfs=_field(record, "rootfs", str),
        init_pid=_field(record, "init_pid", int),
        init_start_time=_field(record, "init_start_time", int),
        created=_field(record, "created", str),
        owner=_field(record, "owner", str, "root"),
        namespace_paths=_string_map(record, "namespace_paths"),
        cgroup_paths=_string_map(record, "cgroup_paths"),
        config=_field(record, "config", dict, {}),
        annotations=_string_map(record, "annotations"),
        creator_pid=_field(record, "creator_pid", int, 0),
        creator_start_time=_field(record, "creator_start_time", int, 0),
        systemd_unit=_field(record, "systemd_unit", str, ""),
    )


def _from_runc(state_dir: str, record: dict[str, Any]) -> Container:
    """runc keeps the bundle only as a label; config.json there holds the process defaults."""
    config = _field(record, "config", dict, {})
    labels_list = _field(config, "labels", list, [])
    labels = dict(label.split("=", 1) for label in labels_list
                  if isinstance(label, str) and "=" in label)
    bundle = labels.get("bundle", "")
    created_namespaces = {ns.get("type") for ns in _field(config, "namespaces", list, [])
                          if isinstance(ns, dict)}
    namespace_paths = {
        _RUNC_NAMESPACES[kind]: path
        for kind, path in _string_map(record, "namespace_paths").items()
        if kind in _RUNC_NAMESPACES and kind in created_namespaces
    }
    return Container(
        id=_field(record, "id", str),
        state_dir=state_dir,
        bundle=bundle,
        rootfs=_field(config, "rootfs", str, ""),
        init_pid=_field(record, "init_process_pid", int),
        init_start_time=_field(record, "init_process_start", int),
        created=_field(record, "created", str, ""),
        runtime="runc",
        namespace_paths=namespace_paths,
        cgroup_paths=_string_map(record, "cgroup_paths"),
        config=_read_bundle_config(bundle),
    )


def _read_bundle_config(bundle: str) -> dict[str, Any]:
    """runc validated this config.json when it created the container; its process is re-checked
    by the caller against the process schema before use."""
    path = os.path.join(bundle, "config.json")
    try:
        config = json.loads(json.read_small_file(path))
    except (OSError, ValueError, RecursionError) as err:
        raise PyruncError(f"{path}: {getattr(err, 'strerror', None) or err}") from None
    if not isinstance(config, dict):
        raise PyruncError(f"{path}: want a JSON object")
    return config


def status_of(container: Container) -> str:
    """Derived live, never stored: a stored status goes stale the moment init dies.

    The init is matched by pid and start time, so a recycled pid is not taken
    for the container; the exec fifo exists until ``start``; the freezer
    tells paused from running.  Before create has an init the container is
    "creating" while that create lives, and "stopped" once it was killed.
    """
    from runpy_exec.linux import proc

    if not container.init_pid:
        alive = container.creator_pid and proc.is_alive_with_start_time(
            container.creator_pid, container.creator_start_time)
        return "creating" if alive else "stopped"
    if not proc.is_alive_with_start_time(container.init_pid, container.init_start_time):
        return "stopped"
    if os.path.exists(os.path.join(container.state_dir, EXEC_FIFO)):
        return "created"
    # Only here: the cgroups package costs ~0.4 ms, and start (always of a
    # created container) and commands on stopped ones have no use for it.
    from runpy_exec.linux import cgroups

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
    """Every container directory, whole or broken (hidden names are not containers)."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isdir(os.path.join(root, n))
                  and not n.startswith("."))
