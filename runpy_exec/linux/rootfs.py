"""Turning a bundle's rootfs into the container's /, as runc's init does.

The container's init calls :func:`prepare_rootfs` once, already in its new
namespaces.  The order of the steps is runc's, because each one relies on the
previous: mounts before device nodes (/dev is a tmpfs), the jail before the
console and sysctls (they use the container's own /dev and /proc), the
read-only root before masking (masks go on top of it).

Every mount inside the rootfs is made onto ``/proc/self/fd/N``, N being an
O_PATH descriptor from ``openat2(rootfd, dest, RESOLVE_IN_ROOT)``: a symlink
in the image, or one swapped in while we work, can redirect a mount only to
somewhere else inside the rootfs, never onto the host.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from runpy_exec.errors import PyruncError, describe
from runpy_exec.linux import libc, mountinfo, procfs
from runpy_exec.linux import syscalls as sc
from runpy_exec.linux.mountopts import Mount, MountOptions, mount_from_spec, root_propagation
from runpy_exec.records import NamedTuple

# create imports this module on every call: typing, collections, contextlib,
# dataclasses, re and socket (~25 ms together) stay out of it; shutil and
# tempfile, which only a "tmpcopyup" mount needs, are loaded for one by
# create_cmd before its children fork (they may not import).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

RESOLVE_NO_SYMLINKS = 0x04
_IN_ROOT = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
_NO_SYMLINKS = _IN_ROOT | RESOLVE_NO_SYMLINKS
_OPEN_ATTEMPTS = 8
_DEFAULT_MOUNT_FLAGS = sc.MS_NOEXEC | sc.MS_NOSUID | sc.MS_NODEV
_LOCKED_FLAGS = (
    sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME
)
_STATVFS_AS_MS = _LOCKED_FLAGS | sc.MS_SYNCHRONOUS | sc.MS_MANDLOCK | sc.MS_NOSYMFOLLOW
_ST_RELATIME = 0x1000
_PROC_SUPER_MAGIC = 0x9FA0
_SYS_MOUNT_SETATTR = 442
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000

# Files below /proc that lxcfs emulates; anything else mounted inside /proc
# could hide the kernel's own view from the masks that follow.
_PROC_MOUNTS_ALLOWED = frozenset(
    {
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/net/dev",
        "/proc/sys/kernel/ns_last_pid",
    }
)

# Sysctls that belong to the IPC namespace, whatever their prefix says.
_IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)

_statfs = libc.function("statfs")


class Device(NamedTuple):
    """A node to create under the rootfs: config.json's ``linux.devices[]`` shape."""

    path: str
    kind: str  # "c", "b" or "p"
    major: int
    minor: int
    mode: int = 0o666
    uid: int = 0
    gid: int = 0


# The nodes every container gets, as runc gives them.
DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3),
    Device("/dev/random", "c", 1, 8),
    Device("/dev/full", "c", 1, 7),
    Device("/dev/tty", "c", 5, 0),
    Device("/dev/zero", "c", 1, 5),
    Device("/dev/urandom", "c", 1, 9),
)


class _Context(NamedTuple):
    rootfs: str
    rootfd: int
    namespaces: frozenset[str]
    cgroup_paths: Mapping[str, str]


def prepare_rootfs(
    spec: Mapping[str, Any],
    bundle: str,
    no_pivot: bool,
    cgroup_paths: Mapping[str, str] | None = None,
    *,
    before_pivot: Callable[[], None] | None = None,
    after_pivot: Callable[[], None] | None = None,
    proc_root: int | None = None,
) -> None:
    """Build the container's filesystem view and jail the calling process in it.

    ``cgroup_paths`` maps a cgroup v1 controller (or "" for the v2 unified
    hierarchy) to the container's host directory; without it, the caller's
    own /proc/self/cgroup says.  ``before_pivot`` runs once the mounts are
    made but the host is still visible (runc's prestart and createRuntime
    hooks); ``after_pivot`` runs inside the jail before anything is made
    read-only (runc sets up the console there).  ``proc_root`` is the
    procfs handle sysctls are written through (see
    :mod:`runpy_exec.linux.procfs`); without it, the jail's /proc.
    """
    validate_rootfs_spec(spec, bundle, no_pivot)
    linux: Mapping[str, Any] = spec.get("linux") or {}
    rootfs = rootfs_path(spec, bundle)
    mounts = [mount_from_spec(entry, bundle) for entry in spec.get("mounts") or []]
    try:
        _prepare_root(rootfs, root_propagation(linux.get("rootfsPropagation")))
    except OSError as exc:
        raise PyruncError(f"error preparing rootfs: {describe(exc)}") from exc

    # Opened only after the bind above: an fd to the directory underneath
    # would place every mount below the bind, where nothing can see it.
    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ctx = _Context(rootfs, rootfd, namespace_types(spec), cgroup_paths or {})
        for mount in mounts:
            try:
                _mount_entry(ctx, mount)
            except (OSError, PyruncError) as exc:
                raise PyruncError(
                    f'error mounting "{mount.source}" to rootfs at "{mount.destination}": '
                    f"{describe(exc)}"
                ) from exc
        setup_dev = not any(m.device == "bind" and _clean(m.destination) == "/dev" for m in mounts)
        if setup_dev:
            _setup_dev(ctx, devices_from_spec(spec))
    finally:
        os.close(rootfd)

    if before_pivot is not None:
        before_pivot()
    try:
        os.chdir(rootfs)
        if no_pivot:
            _move_root(rootfs)
        else:
            _pivot_root(rootfs)
    except OSError as exc:
        raise PyruncError(f"error jailing process inside rootfs: {describe(exc)}") from exc
    if setup_dev:
        _reopen_dev_null()
    cwd = (spec.get("process") or {}).get("cwd")
    if cwd:
        # Inside the jail now, so an unclean "../../x" cannot leave it.
        os.makedirs(cwd, 0o755, exist_ok=True)
    if after_pivot is not None:
        after_pivot()
    _finalize(spec, mounts, proc_root)


def mount_console(replica_fd: int) -> None:
    """Bind the pty replica open on ``replica_fd`` onto /dev/console, inside the jail.

    Programs that open /dev/console must reach the container's terminal,
    not whatever the host's console is.

    CVE-2025-52565: both ends by fd, not by path.  The pty is bound from the
    fd we opened, not from its /dev/pts name; /dev/console is created or
    opened without following symlinks, and must be a plain file or a
    character device: a symlink planted there (to /proc/sys/kernel/core_pattern,
    say) would have the bind land on its target.
    """
    if not stat.S_ISCHR(os.fstat(replica_fd).st_mode):
        raise PyruncError("console: the pty replica is not a character device")
    old = os.umask(0)
    try:
        created = os.open("/dev/console", os.O_CREAT | os.O_RDONLY | os.O_NOFOLLOW
                          | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PyruncError("console: /dev/console is a symlink: refusing to mount the "
                              "terminal through it") from None
        raise
    finally:
        os.umask(old)
    os.close(created)
    target = os.open("/dev/console", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        mode = os.fstat(target).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
            raise PyruncError("console: /dev/console is neither a file nor a device")
        bind_from_fd(replica_fd, target)
    finally:
        os.close(target)


def rootfs_path(spec: Mapping[str, Any], bundle: str) -> str:
    """``root.path`` as an absolute host path (a relative one is the bundle's)."""
    path = str((spec.get("root") or {}).get("path") or "")
    if not path:
        raise PyruncError("root.path is empty")
    return os.path.normpath(os.path.join(os.path.realpath(bundle), path))


def namespace_types(spec: Mapping[str, Any]) -> frozenset[str]:
    linux: Mapping[str, Any] = spec.get("linux") or {}
    return frozenset(str(ns.get("type")) for ns in linux.get("namespaces") or [])


def devices_from_spec(spec: Mapping[str, Any]) -> list[Device]:
    """The default nodes, then ``linux.devices``; a listed path overrides a default."""
    linux: Mapping[str, Any] = spec.get("linux") or {}
    entries: Sequence[Mapping[str, Any]] = linux.get("devices") or []
    listed = {entry.get("path") for entry in entries}
    devices = [dev for dev in DEFAULT_DEVICES if dev.path not in listed]
    kinds = {"c": "c", "u": "c", "b": "b", "p": "p"}
    for entry in entries:
        kind = str(entry.get("type", ""))
        if kind not in kinds:
            raise PyruncError(f"invalid device type {kind!r} for device {entry.get('path')}")
        mode = entry.get("fileMode")
        devices.append(
            Device(
                path=str(entry.get("path", "")),
                kind=kinds[kind],
                major=int(entry.get("major", 0)),
                minor=int(entry.get("minor", 0)),
                mode=0o666 if mode is None else stat.S_IMODE(int(mode)),
                uid=int(entry.get("uid") or 0),
                gid=int(entry.get("gid") or 0),
            )
        )
    return devices


def validate_rootfs_spec(spec: Mapping[str, Any], bundle: str, no_pivot: bool = False) -> None:
    """Refuse, with runc's messages, what would fail or be unsafe half-way through.

    Callable before forking, so a bad config is reported before any
    namespace or cgroup exists.
    """
    namespaces = namespace_types(spec)
    linux: Mapping[str, Any] = spec.get("linux") or {}
    if "mount" not in namespaces:
        # runc would remount the host's / and bind over the host's paths.
        raise PyruncError("unable to set up the rootfs without a private MNT namespace")
    rootfs = rootfs_path(spec, bundle)
    if not os.path.exists(rootfs):
        raise PyruncError(f"invalid rootfs: stat {rootfs}: no such file or directory")
    if os.path.realpath(rootfs) != rootfs:
        raise PyruncError("invalid rootfs: not an absolute path, or a symlink")
    propagation = root_propagation(linux.get("rootfsPropagation"))
    if no_pivot and propagation & sc.MS_PRIVATE:
        raise PyruncError("rootfsPropagation of [r]private is not safe without pivot_root")
    for field in ("hostname", "domainname"):
        if spec.get(field) and "uts" not in namespaces:
            raise PyruncError(f"unable to set {field} without a private UTS namespace")
    for key in linux.get("sysctl") or {}:
        _validate_sysctl(_sysctl_dotted(key), namespaces, linux)


def _validate_sysctl(key: str, namespaces: frozenset[str], linux: Mapping[str, Any]) -> None:
    """Allow only sysctls of a namespace the container has its own copy of.

    Anything else would be written to the host's kernel from inside the
    container's setup.
    """
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        if "ipc" not in namespaces:
            raise PyruncError(f'sysctl "{key}" is not allowed in the hosts ipc namespace')
        return
    if key.startswith("net."):
        if _uses_host_netns(namespaces, linux):
            raise PyruncError(f'sysctl "{key}" not allowed in host network namespace')
        return
    if "uts" in namespaces:
        if key == "kernel.domainname":
            return
        if key == "kernel.hostname":
            raise PyruncError(
                f'sysctl "{key}" is not allowed as it conflicts with the OCI "hostname" field'
            )
    raise PyruncError(f'sysctl "{key}" is not in a separate kernel namespace')


def _uses_host_netns(namespaces: frozenset[str], linux: Mapping[str, Any]) -> bool:
    if "network" not in namespaces:
        return True
    path = next(
        (ns.get("path") for ns in linux.get("namespaces") or [] if ns.get("type") == "network"),
        None,
    )
    if not path:
        return False
    try:
        joined, ours = os.stat(path), os.stat("/proc/self/ns/net")
    except OSError as exc:
        raise PyruncError(f"invalid netns path: {describe(exc)}") from exc
    return (joined.st_dev, joined.st_ino) == (ours.st_dev, ours.st_ino)


def _sysctl_dotted(key: str) -> str:
    """A slash-separated key (net/ipv4/conf/eth0.100/x) in dotted form, dots swapped.

    The first separator tells the form: "net.ipv4.conf.eth0/100.x" is already
    dotted, its slash standing for a dot in the interface name.
    """
    first = next((c for c in key if c in "./"), ".")
    return key if first == "." else key.translate(str.maketrans("./", "/."))



def _clean(path: str) -> str:
    return os.path.normpath(os.path.join("/", path))




# --- before the jail -------------------------------------------------------


def _prepare_root(rootfs: str, propagation: int) -> None:
    """Cut / off from the host's propagation, then make the rootfs a mount point.

    rslave by default: the container still sees host mounts appear, and
    nothing it does propagates back.  pivot_root(2) also needs the rootfs
    to be a mount whose parent is not shared.
    """
    sc.mount(None, "/", None, propagation or (sc.MS_SLAVE | sc.MS_REC))
    parents = [m for m in mountinfo.entries() if _is_within(rootfs, m.mountpoint)]
    if parents:
        parent = max(parents, key=lambda m: len(m.mountpoint))
        if any(opt.startswith("shared:") for opt in parent.optional):
            sc.mount(None, parent.mountpoint, None, sc.MS_PRIVATE)
    sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)


def _is_within(path: str, directory: str) -> bool:
    return directory == "/" or path == directory or path.startswith(directory.rstrip("/") + "/")


def _secure_join(rootfs: str, unsafe: str) -> str:
    """``unsafe`` with its symlinks resolved as if rootfs were /; "/a/b" form.

    Missing components are kept as they are, so the result can be created.
    The result is only a plan: every use reopens it with RESOLVE_IN_ROOT.
    """
    pending = [p for p in unsafe.split("/") if p]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        host = os.path.join(rootfs, *resolved, part)
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > 255:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), unsafe)
        target = os.readlink(host)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p] + pending
    return "/" + "/".join(resolved)


def _open(ctx: _Context, dest: str, flags: int = os.O_PATH, resolve: int = _IN_ROOT) -> int:
    """openat2 below the rootfs, retried when the kernel saw a rename race the lookup.

    RESOLVE_IN_ROOT answers EAGAIN rather than risk resolving ".." past the
    root while something is being renamed; a second look is then safe.
    """
    for _ in range(_OPEN_ATTEMPTS - 1):
        try:
            return sc.openat2(ctx.rootfd, dest.lstrip("/") or ".", flags, resolve)
        except BlockingIOError:
            continue
    return sc.openat2(ctx.rootfd, dest.lstrip("/") or ".", flags, resolve)


class _Target:
    """``dest`` inside the rootfs as a /proc/self/fd path to mount onto, for a ``with``.

    CVE-2021-30465 (and CVE-2019-19921 before it): a mount destination is
    resolved at the moment of the mount, within the rootfs; a symlink raced
    into the path cannot make the mount land on the host.
    """

    def __init__(self, ctx: _Context, dest: str, resolve: int = _IN_ROOT) -> None:
        self._fd = _open(ctx, dest, os.O_PATH, resolve)

    def __enter__(self) -> str:
        return f"/proc/self/fd/{self._fd}"

    def __exit__(self, *exc_info: object) -> None:
        os.close(self._fd)


def _mount(
    source: str | None, target: str, shown: str, fstype: str | None, flags: int, data: str = ""
) -> None:
    """mount(2), with an error that names the container path, not the fd."""
    try:
        sc.mount(source, target, fstype, flags, data or None)
    except OSError as exc:
        what = f"{source}:{shown}" if source else shown
        detail = f", data: {data}" if data else ""
        raise OSError(
            exc.errno,
            f"mount {what} (via {target}), flags: {flags:#x}{detail}: "
            f"{os.strerror(exc.errno or 0)}",
        ) from exc


def _mkdir_all(ctx: _Context, dest: str, resolve: int = _IN_ROOT) -> None:
    """mkdir -p inside the rootfs, each level created in a parent opened in it."""
    parts = [p for p in dest.split("/") if p]
    for depth in range(1, len(parts) + 1):
        try:
            os.close(_open(ctx, "/".join(parts[:depth]), os.O_PATH | os.O_DIRECTORY, resolve))
            continue
        except FileNotFoundError:
            pass
        parent = _open(ctx, "/".join(parts[: depth - 1]), os.O_PATH | os.O_DIRECTORY, resolve)
        try:
            os.mkdir(parts[depth - 1], 0o755, dir_fd=parent)
        except FileExistsError:
            pass  # made meanwhile, or a dangling symlink: the next open tells
        finally:
            os.close(parent)
    os.close(_open(ctx, dest, os.O_PATH | os.O_DIRECTORY, resolve))


def _create_file(ctx: _Context, dest: str, mode: int = 0o755) -> None:
    """Make an empty file at dest, for a file to be bind-mounted onto, unless one exists."""
    try:
        os.close(_open(ctx, dest))
        return
    except FileNotFoundError:
        pass
    _mkdir_all(ctx, os.path.dirname(dest))
    parent = _open(ctx, os.path.dirname(dest), os.O_PATH | os.O_DIRECTORY)
    try:
        flags = os.O_CREAT | os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        os.close(os.open(os.path.basename(dest), flags, mode, dir_fd=parent))
    finally:
        os.close(parent)


def _fs_type(path: str) -> int:
    """statfs(2)'s f_type, which os.statvfs does not give."""
    buf = libc.string_buffer(b"", 256)
    if _statfs(os.fsencode(path), buf) != 0:
        err = libc.get_errno()
        raise OSError(err, f"statfs: {os.strerror(err)}", path)
    return libc.c_long.from_buffer(buf).value


def _check_proc_mount(ctx: _Context, dest: str, source: str) -> None:
    """Allow nothing inside /proc but lxcfs's files, and only procfs onto /proc.

    CVE-2019-16884: a mount over /proc (or under it) can hide what the
    masks and LSM profiles rely on.
    """
    if not _is_within(dest, "/proc"):
        return
    if dest == "/proc":
        if not source or _fs_type(source) == _PROC_SUPER_MAGIC:
            return
        raise PyruncError(f'"{ctx.rootfs}{dest}" cannot be mounted because it is not of type proc')
    if dest in _PROC_MOUNTS_ALLOWED:
        return
    raise PyruncError(f'"{ctx.rootfs}{dest}" cannot be mounted because it is inside /proc')


def _mount_entry(ctx: _Context, m: Mount) -> None:
    if m.device in ("proc", "sysfs"):
        _mount_proc_like(ctx, m)
        return
    dest = _secure_join(ctx.rootfs, m.destination)
    if m.device == "mqueue":
        _mkdir_all(ctx, dest)
        _mount_propagate(ctx, m, dest)
    elif m.device == "tmpfs":
        _mount_tmpfs(ctx, m, dest)
    elif m.device == "bind":
        _mount_bind(ctx, m, dest)
    elif m.device == "cgroup":
        if _cgroup2_unified():
            _mount_cgroup2(ctx, m, dest)
        else:
            _mount_cgroup1(ctx, m)
        return
    else:
        _check_proc_mount(ctx, dest, m.source)
        _mkdir_all(ctx, dest)
        _mount_propagate(ctx, m, dest)
    _set_rec_attr(ctx, m, dest)


def _mount_propagate(ctx: _Context, m: Mount, dest: str, resolve: int = _IN_ROOT) -> None:
    """Mount, then apply propagation flags, which mount(2) takes only on their own.

    tmpfs and /dev stay writable for now: files are made in them first, and
    finalisation remounts them read-only if asked.
    """
    flags = m.flags
    if m.device == "tmpfs" or _clean(m.destination) == "/dev":
        flags &= ~sc.MS_RDONLY
    fstype = None if m.device == "bind" else m.device
    with _Target(ctx, dest, resolve) as target:
        _mount(m.source, target, dest, fstype, flags, m.options.data)
    if m.options.propagation:
        # Reopened: the old fd names the directory now covered by the mount.
        with _Target(ctx, dest, resolve) as target:
            for flag in m.options.propagation:
                _mount(None, target, dest, None, flag)


def _mount_proc_like(ctx: _Context, m: Mount) -> None:
    """procfs and sysfs go exactly on a plain directory, never through a symlink.

    CVE-2019-19921, and its return as CVE-2023-27561 / CVE-2023-28642: an
    image whose /proc is a symlink (into a shared volume, say) would put the
    real procfs where the masks and the AppArmor profile do not look for it.
    """
    dest = _clean(m.destination)
    refusal = PyruncError(f'filesystem "{m.device}" must be mounted on ordinary directory')
    try:
        fd = _open(ctx, dest, os.O_PATH | os.O_NOFOLLOW, _NO_SYMLINKS)
    except FileNotFoundError:
        _mkdir_all(ctx, dest, _NO_SYMLINKS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise refusal from exc
        raise
    else:
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise refusal
        finally:
            os.close(fd)
    try:
        _mount_propagate(ctx, m, dest, _NO_SYMLINKS)
    except OSError as exc:
        if not (
            m.device == "sysfs" and exc.errno == errno.EPERM and "network" not in ctx.namespaces
        ):
            raise
        # A user namespace without its own netns may not mount sysfs; the
        # host's /sys, bound with the same flags, is the closest thing.
        options = m.options._replace(flags=m.flags | sc.MS_BIND | sc.MS_REC)
        _mount_bind(ctx, Mount(m.destination, "/sys", "bind", options), dest)


def _mount_tmpfs(ctx: _Context, m: Mount, dest: str) -> None:
    """A tmpfs keeps the mode of the directory it covers, as runc's do."""
    mode: int | None = None
    try:
        fd = _open(ctx, dest)
    except FileNotFoundError:
        _mkdir_all(ctx, dest)
    else:
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
    if m.options.copy_up:
        _tmpfs_copy_up(ctx, m, dest)
    else:
        _mount_propagate(ctx, m, dest)
    if mode is not None:
        with _Target(ctx, dest) as target:
            os.chmod(target, mode)


def _tmpfs_copy_up(ctx: _Context, m: Mount, dest: str) -> None:
    """A tmpfs that starts with a copy of what it covers (the "tmpcopyup" option).

    The tmpfs is filled in a private scratch mount on the host and then
    moved into place, so the container never sees it half-filled.
    """
    import shutil  # loaded before the fork, by create_cmd
    import tempfile

    scratch = tempfile.mkdtemp(prefix="pyrunc-copyup.")
    try:
        sc.mount(scratch, scratch, None, sc.MS_BIND)
        try:
            # MS_MOVE refuses a mount whose parent is shared.
            sc.mount(None, scratch, None, sc.MS_PRIVATE)
            staging = tempfile.mkdtemp(dir=scratch)
            flags = m.flags & ~sc.MS_RDONLY
            _mount(m.source, staging, dest, "tmpfs", flags, m.options.data)
            with _Target(ctx, dest) as target:
                _copy_tree(target, staging)
                _mount(staging, target, dest, None, sc.MS_MOVE)
        finally:
            sc.umount2(scratch, sc.MNT_DETACH)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if m.options.propagation:
        with _Target(ctx, dest) as target:
            for flag in m.options.propagation:
                _mount(None, target, dest, None, flag)


def _copy_tree(src: str, dst: str) -> None:
    """Copy keeping owners, modes and times; symlinks are copied, never followed."""
    import shutil  # loaded before the fork, by create_cmd

    for entry in os.scandir(src):
        st = entry.stat(follow_symlinks=False)
        to = os.path.join(dst, entry.name)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(entry.path), to)
        elif stat.S_ISDIR(st.st_mode):
            os.mkdir(to)
            _copy_tree(entry.path, to)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(entry.path, to, follow_symlinks=False)
        else:
            os.mknod(to, st.st_mode, st.st_rdev)
        os.chown(to, st.st_uid, st.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(to, stat.S_IMODE(st.st_mode))
        os.utime(to, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    top = os.stat(src)
    os.chown(dst, top.st_uid, top.st_gid)
    os.chmod(dst, stat.S_IMODE(top.st_mode))


def _mount_bind(ctx: _Context, m: Mount, dest: str) -> None:
    """Bind, creating a file or directory to match the source, then remount.

    A bind mount ignores ro/nosuid/nodev/noexec on creation; only a second
    MS_REMOUNT call applies them.
    """
    source_is_dir = stat.S_ISDIR(os.stat(m.source).st_mode)
    _check_proc_mount(ctx, dest, m.source)
    if source_is_dir:
        _mkdir_all(ctx, dest)
    else:
        _create_file(ctx, dest)
    _mount_propagate(ctx, m, dest)
    if m.flags & ~(sc.MS_REC | sc.MS_REMOUNT | sc.MS_BIND):
        _remount(ctx, m, dest)


def _remount(ctx: _Context, m: Mount, dest: str) -> None:
    """Remount with the entry's flags; on EPERM, keep the flags the source has locked.

    In a user namespace the kernel refuses to clear ro/nosuid/nodev/noexec
    that the source mount has; runc retries with them kept.
    """
    flags = m.flags | sc.MS_REMOUNT
    with _Target(ctx, dest) as target:
        try:
            _mount(m.source, target, dest, None, flags)
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise
            locked = _statvfs_flags(m.source) & _LOCKED_FLAGS
            if not locked & ~flags:
                raise
            _mount(m.source, target, dest, None, flags | locked)


def _statvfs_flags(path: str) -> int:
    """The ST_* flags of the mount holding path, as MS_* flags."""
    flags = os.statvfs(path).f_flag
    # The ST_* values are the MS_* ones except ST_RELATIME (MS_BIND's value)
    # and ST_VALID (MS_REMOUNT's), which must not leak into mount(2) flags.
    return (flags & _STATVFS_AS_MS) | (sc.MS_RELATIME if flags & _ST_RELATIME else 0)


class _MountAttr(libc.Structure):
    _fields_ = [
        ("attr_set", libc.c_uint64),
        ("attr_clr", libc.c_uint64),
        ("propagation", libc.c_uint64),
        ("userns_fd", libc.c_uint64),
    ]


def _set_rec_attr(ctx: _Context, m: Mount, dest: str) -> None:
    """Apply rro, rnosuid, ... to the whole mount tree with mount_setattr(2)."""
    if not (m.options.attr_set or m.options.attr_clr):
        return
    fd = _open(ctx, dest)
    try:
        attr = _MountAttr(m.options.attr_set, m.options.attr_clr, 0, 0)
        flags = libc.c_uint(_AT_EMPTY_PATH | _AT_RECURSIVE)
        result = libc.syscall(
            _SYS_MOUNT_SETATTR,
            libc.c_int(fd),
            b"",
            flags,
            libc.byref(attr),
            libc.c_size_t(libc.sizeof(attr)),
        )
        if result != 0:
            err = libc.get_errno()
            raise OSError(err, f"mount_setattr {dest}: {os.strerror(err)}")
    finally:
        os.close(fd)


# --- cgroups ---------------------------------------------------------------


def _cgroup2_unified() -> bool:
    tops = [m for m in mountinfo.entries() if m.mountpoint == "/sys/fs/cgroup"]
    return bool(tops) and tops[-1].fstype == "cgroup2"


def _own_cgroups() -> dict[str, str]:
    """/proc/self/cgroup as controller -> path ("" for the v2 hierarchy)."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path
    return own


def _cgroup_path(ctx: _Context, controllers: Sequence[str]) -> str | None:
    for controller in controllers:
        for key in (controller, controller.removeprefix("name=")):
            if key in ctx.cgroup_paths:
                return ctx.cgroup_paths[key]
    return None


def _mount_cgroup1(ctx: _Context, m: Mount) -> None:
    """A tmpfs with each of the container's v1 hierarchies inside, runc's layout.

    Without a cgroup namespace the container's own directories are bound
    in (read-only with "ro"), so it cannot see or touch its siblings.
    """
    tmpfs = Mount(
        m.destination,
        "tmpfs",
        "tmpfs",
        MountOptions(
            flags=_DEFAULT_MOUNT_FLAGS, propagation=m.options.propagation, data="mode=755"
        ),
    )
    _mount_entry(ctx, tmpfs)
    own = _own_cgroups()
    seen: set[tuple[str, ...]] = set()
    merged: list[str] = []
    for info in mountinfo.entries():
        controllers = tuple(o for o in info.super_options if o in own and o)
        if info.fstype != "cgroup" or not controllers or controllers in seen:
            continue
        seen.add(controllers)
        name = os.path.basename(info.mountpoint)
        inner = os.path.join(_clean(m.destination), name)
        if "," in name:
            merged.append(name)
        if "cgroup" in ctx.namespaces:
            dest = _secure_join(ctx.rootfs, inner)
            _mkdir_all(ctx, dest)
            with _Target(ctx, dest) as target:
                _mount(
                    "cgroup",
                    target,
                    dest,
                    "cgroup",
                    _DEFAULT_MOUNT_FLAGS | (m.flags & sc.MS_RDONLY),
                    ",".join(controllers),
                )
            continue
        source = _cgroup_path(ctx, controllers) or os.path.join(
            info.mountpoint, os.path.relpath(own[controllers[0]], info.root)
        )
        options = MountOptions(
            flags=sc.MS_BIND | sc.MS_REC | m.flags, propagation=m.options.propagation
        )
        _mount_entry(ctx, Mount(inner, source, "bind", options))
    if merged:
        top = _open(ctx, _secure_join(ctx.rootfs, m.destination), os.O_PATH | os.O_DIRECTORY)
        try:
            for name in merged:
                for controller in name.split(","):
                    # cpu -> cpu,cpuacct, as on the host.
                    try:  # noqa: SIM105 - contextlib is kept off create's path
                        os.symlink(name, controller, dir_fd=top)
                    except FileExistsError:
                        pass
        finally:
            os.close(top)


def _mount_cgroup2(ctx: _Context, m: Mount, dest: str) -> None:
    _mkdir_all(ctx, dest)
    try:
        with _Target(ctx, dest) as target:
            _mount(m.source, target, dest, "cgroup2", m.flags, m.options.data)
        return
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EBUSY):
            raise
    # A user namespace without its own cgroup namespace may not mount
    # cgroup2: bind the host's hierarchy, or the container's part of it.
    source = "/sys/fs/cgroup"
    if "cgroup" in ctx.namespaces and ctx.cgroup_paths.get(""):
        source = ctx.cgroup_paths[""]
    options = m.options._replace(flags=sc.MS_BIND | m.flags)
    _mount_bind(ctx, Mount(m.destination, source, "bind", options), dest)


# --- /dev ------------------------------------------------------------------


def _in_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map", encoding="utf-8") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except FileNotFoundError:
        return False


def _setup_dev(ctx: _Context, devices: Sequence[Device]) -> None:
    try:
        _create_devices(ctx, devices)
    except OSError as exc:
        raise PyruncError(f"error creating device nodes: {describe(exc)}") from exc
    try:
        _link_dev(ctx)
    except OSError as exc:
        raise PyruncError(f"error setting up /dev: {describe(exc)}") from exc


def _create_devices(ctx: _Context, devices: Sequence[Device]) -> None:
    bind = "user" in ctx.namespaces or _in_user_namespace()
    old = os.umask(0)
    try:
        for device in devices:
            if device.path and _clean(device.path) != "/dev/ptmx":  # ptmx: see _link_dev
                _create_device(ctx, device, bind)
    finally:
        os.umask(old)


def _link_dev(ctx: _Context) -> None:
    """/dev/ptmx to the container's devpts instance, and the /proc/self/fd links."""
    _mkdir_all(ctx, "/dev")
    dev = _open(ctx, "/dev", os.O_PATH | os.O_DIRECTORY)
    try:
        try:  # noqa: SIM105 - contextlib is kept off create's path
            os.unlink("ptmx", dir_fd=dev)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev)
        links = [
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
        ]
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for target, name in links:
            try:  # noqa: SIM105 - contextlib is kept off create's path
                os.symlink(target, name, dir_fd=dev)
            except FileExistsError:
                pass
    finally:
        os.close(dev)


def _create_device(ctx: _Context, device: Device, bind: bool) -> None:
    """mknod the node; where that is not allowed (a user namespace), bind the host's."""
    dest = _secure_join(ctx.rootfs, device.path)
    _mkdir_all(ctx, os.path.dirname(dest))
    if bind:
        _bind_device(ctx, device, dest)
        return
    kinds = {"c": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
    parent = _open(ctx, os.path.dirname(dest), os.O_PATH | os.O_DIRECTORY)
    name = os.path.basename(dest)
    try:
        os.mknod(
            name,
            device.mode | kinds[device.kind],
            os.makedev(device.major, device.minor),
            dir_fd=parent,
        )
        os.chown(name, device.uid, device.gid, dir_fd=parent, follow_symlinks=False)
    except FileExistsError:
        pass
    except PermissionError:
        _bind_device(ctx, device, dest)
    finally:
        os.close(parent)


def _bind_device(ctx: _Context, device: Device, dest: str) -> None:
    _create_file(ctx, dest, 0o666)
    with _Target(ctx, dest) as target:
        _mount(device.path, target, dest, None, sc.MS_BIND)


# --- the jail --------------------------------------------------------------


def _pivot_root(rootfs: str) -> None:
    """pivot_root(".", "."): the old root ends up stacked on the new one, then detached.

    No put_old directory is needed inside the rootfs, so a read-only image
    works as is.
    """
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        sc.pivot_root(".", ".")
        os.fchdir(old)
        # rslave, not rprivate: the unmount must not reach the host, and
        # host mounts that are being torn down must not be pinned here.
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def _move_root(rootfs: str) -> None:
    """--no-pivot: move the rootfs onto / and chroot into it.

    The host's procfs and sysfs would stay reachable in this mount
    namespace, and their presence lets the container mount fresh ones; so
    they are detached first (or covered when detaching is refused).
    """
    for info in mountinfo.entries():
        if info.root != "/" or info.fstype not in ("proc", "sysfs"):
            continue
        if _is_within(info.mountpoint, rootfs):
            continue
        try:
            sc.mount(None, info.mountpoint, None, sc.MS_SLAVE | sc.MS_REC)
        except FileNotFoundError:
            continue  # under a mount already detached
        try:
            sc.umount2(info.mountpoint, sc.MNT_DETACH)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM):
                raise
            sc.mount("tmpfs", info.mountpoint, "tmpfs", 0)
    sc.mount(rootfs, "/", None, sc.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def _reopen_dev_null() -> None:
    """Point stdio that is the host's /dev/null at the container's one."""
    fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        null = os.fstat(fd).st_rdev
        for stdio in (0, 1, 2):
            try:
                st = os.fstat(stdio)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == null:
                os.dup2(fd, stdio)
    finally:
        os.close(fd)


# --- inside the jail -------------------------------------------------------


def _finalize(spec: Mapping[str, Any], mounts: Sequence[Mount], proc_root: int | None) -> None:
    linux: Mapping[str, Any] = spec.get("linux") or {}
    for m in mounts:
        if m.flags & sc.MS_RDONLY and (m.device == "tmpfs" or _clean(m.destination) == "/dev"):
            _remount_readonly(m)
    if (spec.get("root") or {}).get("readonly"):
        try:
            _set_readonly()
        except OSError as exc:
            raise PyruncError(f"error setting rootfs as readonly: {describe(exc)}") from exc
    umask = ((spec.get("process") or {}).get("user") or {}).get("umask")
    os.umask(0o022 if umask is None else int(umask))
    try:
        if spec.get("hostname"):
            _sethostname(str(spec["hostname"]))
    except OSError as exc:
        raise PyruncError(f"sethostname: {describe(exc)}") from exc
    if spec.get("domainname"):
        _setdomainname(str(spec["domainname"]))
    sysctls = linux.get("sysctl") or {}
    if sysctls:
        root = proc_root if proc_root is not None else os.open(
            "/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for key, value in sysctls.items():
                _write_sysctl(root, key, str(value))
        finally:
            if root != proc_root:
                os.close(root)
    for path in linux.get("readonlyPaths") or []:
        try:
            _readonly_path(path)
        except OSError as exc:
            raise PyruncError(f'can\'t make "{path}" read-only: {describe(exc)}') from exc
    masked = linux.get("maskedPaths") or []
    if masked:
        null = _open_dev_null()
        try:
            for path in masked:
                try:
                    _mask_path(path, null)
                except OSError as exc:
                    raise PyruncError(f"can't mask path {path}: {describe(exc)}") from exc
        finally:
            os.close(null)


def _remount_readonly(m: Mount) -> None:
    """MS_BIND|MS_REMOUNT changes only per-mount flags, which a userns may do."""
    flags = m.flags | sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY
    for _ in range(5):
        try:
            sc.mount(None, m.destination, None, flags)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise PyruncError(f"remount {m.destination} read-only: {describe(exc)}") from exc
            time.sleep(0.1)
    raise PyruncError(f"unable to mount {m.destination} as readonly max retries reached")


def _set_readonly() -> None:
    flags = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY
    try:
        sc.mount(None, "/", None, flags)
    except OSError:
        # A user namespace must repeat the flags the mount has locked.
        sc.mount(None, "/", None, flags | _statvfs_flags("/"))


def _sethostname(name: str) -> None:
    """sethostname(2); socket.sethostname would bring socket's imports (~4 ms) to create."""
    _set_uts_name("sethostname", name)


def _setdomainname(name: str) -> None:
    try:
        _set_uts_name("setdomainname", name)
    except OSError as exc:
        raise PyruncError(f"setdomainname: {exc.strerror}") from None


def _set_uts_name(call: str, name: str) -> None:
    """sethostname(2) or setdomainname(2) through libc: they take the same arguments."""
    raw = os.fsencode(name)
    if libc.function(call)(raw, libc.c_size_t(len(raw))) != 0:
        err = libc.get_errno()
        raise OSError(err, os.strerror(err))


def _write_sysctl(proc_root: int, key: str, value: str) -> None:
    """Write sys/<key> below the procfs handle ``proc_root``.

    CVE-2025-52881: never by path, through a /proc the container may have
    arranged; openat2 refuses symlinks and mounts on the way.  The key is
    split on dots into path components, and a component that would climb
    out of /proc/sys is refused.
    """
    parts = [p.replace("/", ".") for p in _sysctl_dotted(key).split(".")]
    if any(p in ("", ".", "..") for p in parts):
        raise PyruncError(f"invalid sysctl key {key!r}")
    try:
        procfs.write_file(proc_root, os.path.join("sys", *parts), value)
    except OSError as exc:
        raise PyruncError(f"write sysctl {key}: {describe(exc)}") from exc


def _readonly_path(path: str) -> None:
    try:
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    except FileNotFoundError:
        return
    kept = _statvfs_flags(path) & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    sc.mount(path, path, None, kept | sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def _open_dev_null() -> int:
    """The container's /dev/null, opened once and checked to be the null device.

    CVE-2025-31133: masking by the path "/dev/null" follows whatever the
    container put there; a symlink to /proc/sys/kernel/core_pattern would
    bind that file, writable, over a masked path.  A /dev/null that is not
    the 1:3 character device fails create instead, as in runc 1.2.8.
    """
    fd = os.open("/dev/null", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    info = os.fstat(fd)
    if not stat.S_ISCHR(info.st_mode) or info.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise PyruncError("can't mask paths: the container's /dev/null is not the null "
                          "device (1:3)")
    return fd


def bind_from_fd(source_fd: int, target: str | int) -> None:
    """Bind the file open on ``source_fd`` onto ``target`` (a path, or an O_PATH fd).

    The source is never looked up again by path, so nothing swapped in after
    it was checked can take its place (CVE-2025-31133, CVE-2025-52565).
    Without the new mount API (Linux < 5.2), the fd's /proc/self/fd link.
    """
    target_fd, target_path = (target, "") if isinstance(target, int) else (-100, target)
    target_flag = sc.MOVE_MOUNT_T_EMPTY_PATH if isinstance(target, int) else 0
    try:
        tree = sc.open_tree(source_fd, "", sc.OPEN_TREE_CLONE | sc.AT_EMPTY_PATH)
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
        destination = target_path or f"/proc/self/fd/{target_fd}"
        sc.mount(f"/proc/self/fd/{source_fd}", destination, None, sc.MS_BIND)
        return
    try:
        sc.move_mount(tree, "", target_fd, target_path,
                      sc.MOVE_MOUNT_F_EMPTY_PATH | target_flag)
    finally:
        os.close(tree)


def _mask_path(path: str, null: int) -> None:
    """/dev/null (the checked fd ``null``) over a file, an empty read-only tmpfs
    over a directory."""
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if is_dir:
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY)
    else:
        bind_from_fd(null, path)
