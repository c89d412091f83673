"""``pyrunc create`` and ``pyrunc run``: make a container and leave its init waiting.

The parent validates the bundle and prepares cgroups, then forks a first
child that enters the new namespaces (the user namespace first, with the id
maps written by the parent) and forks the container's init, pid 1 of the new
pid namespace.  The init builds the root filesystem and sets the process up
through the same path as ``exec`` (user, capabilities, limits...) as far as
its seccomp filter; then it reports "ready" and blocks opening the exec fifo
until ``start`` opens the other end, and goes on to the filter and execve.
Anything that fails before "ready" is undone: no process, cgroup or state
directory is left behind.
"""

from __future__ import annotations

# Everything the two children use is imported before they fork: once in a
# user namespace they may no longer read Python's own files (a 0700 /root
# holding the interpreter, say), and an import there would fail.  What every
# container needs is imported here; what only some do (a terminal's socket,
# in-container hooks' subprocess, a tmpcopyup mount's shutil) is imported by
# _load_what_the_children_need.  None of contextlib, dataclasses, datetime,
# json or typing (~30 ms together) is on create's path.
import fcntl
import os
import posixpath
import time

from runpy_exec import hooks, jsonio, process_setup
from runpy_exec import state as store
from runpy_exec.errors import PyruncError, describe
from runpy_exec.linux import (  # noqa: F401 - imported for the children, see above
    capabilities,
    console,
    namespaces,
    proc,
    procctl,
    procfs,
    rootfs,
    seccomp,
    syscalls,
)
from runpy_exec.linux.cgroups import joining
from runpy_exec.plan import ProcessPlan
from runpy_exec.requests import CreateRequest, GlobalOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    # signal.py wraps these C functions to return IntEnums; importing enum
    # costs ~3 ms.  _signal is the same functions on plain ints.
    import _signal as signal
if TYPE_CHECKING:
    import socket
    from typing import Any, NoReturn

# The seccomp programs create compiled, by profile (see seccomp.compiled): a
# cache in the FHS's sense, regenerated when missing.  Not under --root, which
# engines expect to find empty once their containers are deleted.
SECCOMP_CACHE = "/var/cache/pyrunc/seccomp"


class _Created:
    def __init__(self, container: store.Container, master_fd: int | None = None) -> None:
        self.container = container
        self.master_fd = master_fd


def create(opts: GlobalOptions, req: CreateRequest) -> None:
    created = _create(opts, req, detached=True)
    if created.master_fd is not None:
        os.close(created.master_fd)


def run(opts: GlobalOptions, req: CreateRequest, detach: bool, keep: bool) -> int:
    """create + start; in the foreground, wait for the init and exit with its status."""
    from runpy_exec import lifecycle

    if not detach:
        # The init's first parent exits right away; as subreaper we inherit
        # the init and can wait for its status.
        procctl.set_child_subreaper()
    created = _create(opts, req, detached=detach)
    container = created.container
    try:
        lifecycle.start(opts, container.id)
    except PyruncError:
        lifecycle.destroy(container, store.status_of(container))
        raise
    if detach:
        return 0
    from runpy_exec import exec_cmd

    status = exec_cmd.wait_for(container.init_pid, created.master_fd, timeout=None)
    if not keep:
        lifecycle.destroy(container, "stopped")
    return status


def _create(opts: GlobalOptions, req: CreateRequest, detached: bool) -> _Created:
    from runpy_exec import validate

    store.validate_id(req.container_id)
    _check_preserve_fds(req.preserve_fds)
    bundle = os.path.abspath(req.bundle)
    spec = validate.load_spec_fast(os.path.join(bundle, "config.json"))
    scope = _systemd_scope(spec, req.container_id) if opts.systemd_cgroup else None
    process = spec.get("process")
    if not process:
        raise PyruncError("config.json: process: field required")
    terminal = bool(process.get("terminal"))
    if terminal and detached and not req.console_socket:
        raise PyruncError("cannot allocate tty if pyrunc will detach without setting "
                          "console socket")
    if req.console_socket and not terminal:
        raise PyruncError("--console-socket given but process.terminal is false in config.json")
    rootfs_dir = os.path.join(bundle, spec["root"]["path"])
    if not os.path.isdir(rootfs_dir):
        raise PyruncError(f"config.json: root.path: {rootfs_dir}: no such directory")
    _check_namespaces_unique(spec.get("linux") or {})
    _check_user_namespace(spec.get("linux") or {})
    plan = _resolve_plan(opts, process, rootfs_dir)
    seccomp_filter = process_setup.prepare_seccomp(spec, cache_dir=SECCOMP_CACHE)
    _load_what_the_children_need(spec)
    console_socket = console.connect(req.console_socket) if req.console_socket else None
    pidfd_sock = _connect_pidfd_socket(req.pidfd_socket, console_socket)
    state_dir = store.make_container_dir(opts.root, req.container_id)
    container = store.Container(
        id=req.container_id, state_dir=state_dir, bundle=bundle, rootfs=rootfs_dir,
        init_pid=0, init_start_time=0, created=_now(), config=spec,
        annotations=spec.get("annotations") or {},
        creator_pid=os.getpid(), creator_start_time=proc.start_time("self"),
    )
    sync = _Channels(terminal)
    try:
        # Recorded at once, and again before any cgroup exists: a create killed
        # at any point leaves a record that state, list and delete --force use.
        store.save(container)
        if seccomp_filter is not None:
            _keep_seccomp_program(seccomp_filter, state_dir)
        master_fd = _start_init(container, spec, plan, seccomp_filter, req, terminal, sync,
                                scope)
        store.save(container)
        from runpy_exec import lifecycle

        # The spec's order: prestart and createRuntime here in the runtime's
        # namespaces, then createContainer inside the container, then ready.
        created_state = lifecycle.oci_state(container, "created")
        hooks.run_hooks(container, "prestart", created_state, fatal=True)
        hooks.run_hooks(container, "createRuntime", created_state, fatal=True)
        sync.tell_child("go " + jsonio.dumps(created_state))
        sync.expect("ready", master_fd)
        if master_fd is not None and console_socket is not None:
            console.send_fd(console_socket, master_fd)
            os.close(master_fd)
            master_fd = None
        if pidfd_sock is not None:
            from runpy_exec.linux import pidfd_socket

            pidfd_socket.send(pidfd_sock, pidfd_socket.INIT, container.init_pid)
        if req.pid_file:
            store.write_pid_file(req.pid_file, container.init_pid)
    except BaseException:
        _undo(container)
        raise
    finally:
        sync.close()
        for sock in (console_socket, pidfd_sock):
            if sock is not None:
                sock.close()
    return _Created(container=container, master_fd=master_fd)


def _systemd_scope(spec: dict[str, Any], container_id: str) -> tuple[str, str]:
    """(slice, unit) of the container's scope; a malformed "slice:prefix:name" or a host
    without systemd and its bus fails here, before anything is made.

    No cgroupsPath is runc's default: runc-<id>.scope in system.slice.
    """
    from runpy_exec import systemd_path
    from runpy_exec.linux import systemd

    cgroups_path = (spec.get("linux") or {}).get("cgroupsPath")
    slice_name, prefix, name = (systemd_path.parse(cgroups_path) if cgroups_path
                                else ("", "runc", container_id))
    if name.endswith(".slice"):
        raise PyruncError(f"cgroupsPath {cgroups_path!r}: pyrunc makes a scope for a "
                          "container, not a slice: the name cannot end in .slice")
    systemd.check_available()
    return slice_name or "system.slice", systemd.unit_name(prefix, name)


def _connect_pidfd_socket(path: str | None, console_socket: socket.socket | None,
                          ) -> socket.socket | None:
    """Connected up front (see --console-socket): a dead socket leaves nothing behind."""
    if not path:
        return None
    from runpy_exec.linux import pidfd_socket

    try:
        return pidfd_socket.connect(path)
    except PyruncError:
        if console_socket is not None:
            console_socket.close()
        raise


def _check_preserve_fds(count: int) -> None:
    import resource

    from runpy_exec import resolve

    try:
        resolve.check_preserve_fds(count, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    except resolve.ResolveError as err:
        raise PyruncError(err.detail) from None


def _keep_seccomp_program(flt: seccomp.Filter, state_dir: str) -> None:
    """Keep the container's seccomp program beside its state, for exec to load, and
    file one compiled just now in the cache for later creates.

    Done once the container directory exists, so a create refused earlier leaves
    no file; a cache that cannot be written only makes the next create slower.
    """
    code = seccomp.program_code(flt)
    if code is None:
        return
    store.atomic_write(os.path.join(state_dir, seccomp.PROGRAM_FILE), code)
    if flt.cache_path:
        store.write_cache_entry(flt.cache_path, code)


def _check_namespaces_unique(linux: dict[str, Any]) -> None:
    """Two entries of one namespace type would each ask for it (one may be a join, one
    new); which wins is undefined, so refuse it as runc does ("duplicated ns")."""
    seen: set[str] = set()
    for ns in linux.get("namespaces") or []:
        kind = ns.get("type")
        if kind in seen:
            raise PyruncError(f"config.json: linux.namespaces: {kind} is listed twice")
        seen.add(kind)


def _check_user_namespace(linux: dict[str, Any]) -> None:
    """A new user namespace without id maps leaves its root unmapped: refuse it up front."""
    new_userns = any(ns.get("type") == "user" and not ns.get("path")
                     for ns in linux.get("namespaces") or [])
    if new_userns and not (linux.get("uidMappings") and linux.get("gidMappings")):
        raise PyruncError("config.json: linux: user namespaces enabled, but no uid or gid "
                          "mappings found")


def _load_what_the_children_need(spec: dict[str, Any]) -> None:
    """Import now what only some containers' children use: they may not import (see the top).

    A terminal's socket module comes with console.pty_channel().
    """
    spec_hooks = spec.get("hooks") or {}
    if any(spec_hooks.get(point) for point in hooks.IN_CONTAINER_POINTS):
        import subprocess  # noqa: F401
    copy_up = any("tmpcopyup" in (mount.get("options") or []) for mount in spec.get("mounts") or [])
    if copy_up:
        import shutil  # noqa: F401
        import tempfile  # noqa: F401


def _now() -> str:
    """Now in UTC, RFC 3339 with microseconds, as the state's "created" field."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos // 1000:06d}Z"


def _resolve_plan(opts: GlobalOptions, process: dict[str, Any], rootfs_dir: str) -> ProcessPlan:
    from runpy_exec import containerfs, resolve

    try:
        passwd = containerfs.read_container_file(rootfs_dir, "/etc/passwd")
        group = containerfs.read_container_file(rootfs_dir, "/etc/group")
    except resolve.ResolveError as err:
        raise PyruncError(err.detail) from None
    return resolve.resolve_container_process(
        process, passwd, group, opts.net_raw, capabilities.last_cap())


def _undo(container: store.Container) -> None:
    """Leave nothing behind after a failed create."""
    from runpy_exec.linux import cgroups

    if container.init_pid:
        try:  # noqa: SIM105 - contextlib is kept off create's path
            os.kill(container.init_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:  # noqa: SIM105 - contextlib is kept off create's path
            os.waitpid(container.init_pid, 0)
        except ChildProcessError:
            pass
    if container.systemd_unit:
        from runpy_exec.linux import systemd

        try:  # noqa: SIM105 - contextlib is kept off create's path
            systemd.stop_scope(container.systemd_unit)
        except PyruncError:
            pass
    try:  # noqa: SIM105 - contextlib is kept off create's path
        cgroups.destroy(container.cgroup_paths)
    except (OSError, PyruncError):
        pass
    try:
        for name in os.listdir(container.state_dir):
            os.unlink(os.path.join(container.state_dir, name))
        os.rmdir(container.state_dir)
    except OSError:
        pass


_NS_FILES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
             "user": "user", "cgroup": "cgroup", "time": "time"}


def _start_init(container: store.Container, spec: dict[str, Any], plan: ProcessPlan,
                seccomp_filter: Any, req: CreateRequest, terminal: bool,
                sync: _Channels, scope: tuple[str, str] | None) -> int | None:
    """Fork the init and wait until its root filesystem is built; return the pty master."""
    from runpy_exec.linux import cgroups

    linux = spec.get("linux") or {}
    holder = None
    if scope is None:
        paths = cgroups.resolve_paths(linux.get("cgroupsPath"), container.id)
        cgroups.check_unused(paths)  # before they are ours to remove on failure
    else:
        holder, paths = _start_scope(container, linux, *scope)
    try:
        container.cgroup_paths = paths
        store.save(container)
        resources = _resources_with_default_devices(linux)
        cgroups.create(paths, domain_controllers=_needs_domain_controllers(paths, resources))
        cgroups.apply_resources(paths, resources)
        return _fork_init(container, spec, plan, seccomp_filter, req, terminal, sync, paths,
                          holder)
    finally:
        if holder is not None:
            holder.release()


def _needs_domain_controllers(paths: dict[str, str], resources: dict[str, Any]) -> bool:
    """Whether the container's v2 cgroup must be a domain (it sets such limits)."""
    from runpy_exec.linux import cgroups

    if not cgroups.is_unified(paths):
        return False
    from runpy_exec.linux.cgroups import v2

    return v2.needs_domain_controllers(resources)


class _ScopeHolder:
    """A child that only waits: systemd makes no scope without a process to put in it.

    It holds the scope until the container's first child is born into its
    cgroup, then is killed (runc hands systemd its own runc-init child instead).
    """

    def __init__(self) -> None:
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:
            try:  # never back into the parent's code, whatever happens here
                procctl.set_pdeathsig(signal.SIGKILL)  # a pyrunc killed midway leaves no holder
                while os.getppid() == parent:
                    signal.pause()
            finally:
                os._exit(0)

    def release(self) -> None:
        """Kill it (it holds copies of the parent's pipes: no waiting for it to notice)."""
        if self.pid > 0:
            try:  # noqa: SIM105 - contextlib is kept off create's path
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:  # noqa: SIM105 - contextlib is kept off create's path
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0


def _start_scope(container: store.Container, linux: dict[str, Any], slice_name: str,
                 unit: str) -> tuple[_ScopeHolder, dict[str, str]]:
    """Ask systemd for the container's scope; its cgroup directory is the container's."""
    from runpy_exec.linux import cgroups, systemd

    holder = _ScopeHolder()
    try:
        systemd.start_scope(unit, slice_name, holder.pid, f"pyrunc container {container.id}",
                            linux.get("resources") or {})
    except BaseException:
        holder.release()
        raise
    container.systemd_unit = unit
    path = posixpath.join(systemd.slice_path(slice_name), unit)
    return holder, cgroups.resolve_paths(path, container.id)


def _fork_init(container: store.Container, spec: dict[str, Any], plan: ProcessPlan,
               seccomp_filter: Any, req: CreateRequest, terminal: bool, sync: _Channels,
               paths: dict[str, str], holder: _ScopeHolder | None) -> int | None:
    linux = spec.get("linux") or {}
    fifo = os.path.join(container.state_dir, store.EXEC_FIFO)
    os.mkfifo(fifo)
    # The init opens it as the container's root, which in a user namespace is
    # an unprivileged host uid.
    os.chown(fifo, _host_id(linux.get("uidMappings")), _host_id(linux.get("gidMappings")))
    os.chmod(fifo, 0o622)
    namespaces = linux.get("namespaces") or []
    cgroup_join = joining.CgroupJoin(paths)
    fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
    joined = _open_joined_namespaces(namespaces)
    try:
        first, first_pidfd = cgroup_join.fork()
        if first == 0:
            _first_child(spec, plan, seccomp_filter, req, sync, cgroup_join, fifo_fd, joined,
                         container.bundle, paths)
        os.close(first_pidfd)
        if holder is not None:
            holder.release()  # the first child keeps the scope from now on
        sync.close_child_ends()
        _map_user_ids(first, spec, sync)
        init_pid = int(sync.read_line() or 0)
        try:  # noqa: SIM105 - contextlib is kept off create's path
            os.waitpid(first, 0)
        except ChildProcessError:
            pass
        container.init_pid = init_pid
        master_fd = sync.receive_master() if terminal else None
        sync.expect("rootfs", master_fd)
    finally:
        cgroup_join.close()
        for fd in [fifo_fd, *(fd for _, fd in joined)]:
            os.close(fd)
    container.init_start_time = proc.start_time(init_pid)
    container.namespace_paths = {
        ns["type"]: f"/proc/{init_pid}/ns/{_NS_FILES[ns['type']]}"
        for ns in namespaces if ns.get("type") in _NS_FILES
    }
    return master_fd


# Devices every container may use whatever its rules say, as runc allows them:
# mknod of any node, the standard character devices, ptys, and /dev/net/tun.
# linux.devices entries are only created in /dev; access to them is for the
# spec's rules to grant.
_ALWAYS_ALLOWED_DEVICES = [
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 2), (10, 200))),
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]


def _resources_with_default_devices(linux: dict[str, Any]) -> dict[str, Any]:
    resources = dict(linux.get("resources") or {})
    resources["devices"] = [*(resources.get("devices") or []), *_ALWAYS_ALLOWED_DEVICES]
    return resources


def _host_id(mappings: list[dict[str, int]] | None) -> int:
    """The host id that id 0 in the container maps to (0 without a user namespace)."""
    for mapping in mappings or []:
        if mapping["containerID"] == 0:
            return mapping["hostID"]
    return 0


def _open_joined_namespaces(namespaces: list[dict[str, Any]]) -> list[tuple[str, int]]:
    joined = []
    for ns in namespaces:
        if ns.get("path"):
            try:
                joined.append((ns["type"], os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)))
            except OSError as err:
                for _, fd in joined:
                    os.close(fd)
                raise PyruncError(f"config.json: linux.namespaces: {ns['type']} path "
                                  f"{ns['path']}: {err.strerror}") from None
    return joined


def _map_user_ids(first: int, spec: dict[str, Any], sync: _Channels) -> None:
    """The parent, still privileged on the host, writes the new user namespace's maps."""
    linux = spec.get("linux") or {}
    wants_userns = any(ns.get("type") == "user" and not ns.get("path")
                       for ns in linux.get("namespaces") or [])
    if not wants_userns:
        return
    if sync.read_line() != "userns":
        return
    namespaces.write_id_maps(first, linux.get("uidMappings") or [], linux.get("gidMappings") or [])
    sync.tell_child("mapped")


class _Channels:
    """Pipes between the parent and the two children: lines up, errors up, go-aheads down."""

    def __init__(self, terminal: bool) -> None:
        self.up_r, self.up_w = os.pipe2(os.O_CLOEXEC)
        self.err_r, self.err_w = os.pipe2(os.O_CLOEXEC)
        self.down_r, self.down_w = os.pipe2(os.O_CLOEXEC)
        self.pty_parent: socket.socket | None = None
        self.pty_child: socket.socket | None = None
        if terminal:
            self.pty_parent, self.pty_child = console.pty_channel()
        self._buffer = b""

    def close_child_ends(self) -> None:
        for fd in (self.up_w, self.err_w, self.down_r):
            os.close(fd)
        self.up_w = self.err_w = self.down_r = -1
        if self.pty_child is not None:
            self.pty_child.close()

    def close_parent_ends(self) -> None:
        """In the children: without the parent's ends, a parent that dies is an EOF
        to them, not a wait that never ends."""
        for fd in (self.up_r, self.err_r, self.down_w):
            os.close(fd)
        self.up_r = self.err_r = self.down_w = -1
        if self.pty_parent is not None:
            self.pty_parent.close()

    def read_line(self) -> str:
        while b"\n" not in self._buffer:
            chunk = os.read(self.up_r, 256)
            if not chunk:
                return ""
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def expect(self, word: str, master_fd: int | None) -> None:
        """The init's next word must be ``word``; otherwise its error (or its death) is ours."""
        if self.read_line() == word:
            return
        error = self.read_error()
        if master_fd is not None:
            os.close(master_fd)
        raise PyruncError(error or f"container init died before it was {word}")

    def read_error(self) -> str:
        data = b""
        while chunk := os.read(self.err_r, 4096):
            data += chunk
        if not data:
            return ""
        err = process_setup.decode_error(data)
        reason = str(err)
        return f"container init failed: {err.stage}: {reason[:1].lower() + reason[1:]}"

    def receive_master(self) -> int | None:
        assert self.pty_parent is not None
        return console.receive_fd(self.pty_parent)

    def tell_child(self, word: str) -> None:
        os.write(self.down_w, word.encode() + b"\n")

    def close(self) -> None:
        for fd in (self.up_r, self.up_w, self.err_r, self.err_w, self.down_r, self.down_w):
            if fd >= 0:
                try:  # noqa: SIM105 - contextlib is kept off create's path
                    os.close(fd)
                except OSError:
                    pass
        for sock in (self.pty_parent, self.pty_child):
            if sock is not None:
                sock.close()


def _first_child(spec: dict[str, Any], plan: ProcessPlan, seccomp_filter: Any,
                 req: CreateRequest, sync: _Channels, cgroup_join: joining.CgroupJoin,
                 fifo_fd: int, joined: list[tuple[str, int]], bundle: str,
                 cgroup_paths: dict[str, str]) -> NoReturn:
    """Enter or create the namespaces, then fork the init into the new pid namespace."""
    sync.close_parent_ends()
    try:
        procctl.set_dumpable(False)  # CVE-2016-9962: no ptrace into us while we hold host fds
        procctl.set_pdeathsig(signal.SIGKILL)
        cgroup_join.join_in_child()
        cgroup_join.close()  # the init keeps no host cgroup files
        wanted = {ns["type"] for ns in (spec.get("linux") or {}).get("namespaces") or []
                  if not ns.get("path")}
        joined_user = [(t, fd) for t, fd in joined if t == "user"]
        namespaces.join(joined_user)
        if "user" in wanted:
            syscalls.unshare(syscalls.CLONE_NEWUSER)
            os.write(sync.up_w, b"userns\n")
            _expect(sync.down_r, "mapped")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        namespaces.join([(t, fd) for t, fd in joined if t != "user"])
        for _, fd in joined:
            os.close(fd)
        flags = 0
        for kind in wanted - {"user"}:
            flags |= namespaces.clone_flag(kind)
        syscalls.unshare(flags)
        # The init speaks on the same pipe; it waits for EOF on this one (we hold
        # the only write end until we exit) so that its pid is the parent's
        # first line, never its "rootfs".
        pid_sent_r, pid_sent_w = os.pipe2(os.O_CLOEXEC)
        init = os.fork()
        if init == 0:
            os.close(pid_sent_w)
            os.read(pid_sent_r, 1)
            os.close(pid_sent_r)
            _init(spec, plan, seccomp_filter, req, sync, fifo_fd, bundle, cgroup_paths)
        os.close(pid_sent_r)
        os.write(sync.up_w, f"{init}\n".encode())
    except BaseException as err:  # noqa: BLE001 - report, never return into the parent
        os.write(sync.up_w, b"0\n")
        process_setup.report_and_exit(sync.err_w, "namespaces", err)
    os._exit(0)


def _expect(fd: int, word: str) -> None:
    if _read_line(fd) != word:
        raise RuntimeError(f"parent went away (expected {word!r})")


def _read_line(fd: int) -> str:
    """One line from the parent; byte by byte, so nothing past it is consumed."""
    data = bytearray()
    while (byte := os.read(fd, 1)) and byte != b"\n":
        data += byte
    return data.decode()


def _init(spec: dict[str, Any], plan: ProcessPlan, seccomp_filter: Any, req: CreateRequest,
          sync: _Channels, fifo_fd: int, bundle: str, cgroup_paths: dict[str, str]) -> NoReturn:
    """pid 1 of the container: build the rootfs, say ready, wait for start, become the process."""
    stage = "rootfs"
    try:
        procctl.set_pdeathsig(0)
        pty_child = [sync.pty_child.fileno()] if sync.pty_child is not None else []
        process_setup.close_fds_except([*range(3, 3 + req.preserve_fds), sync.up_w,
                                        sync.down_r, sync.err_w, fifo_fd, *pty_child])
        def open_console() -> None:
            # runc's order: the console exists before the read-only remounts.
            if sync.pty_child is not None:
                process_setup.become_terminal_owner(plan.console_size, sync.pty_child)
                rootfs.mount_console(0)

        # CVE-2025-52881: /proc writes go through a procfs of our own, opened
        # before the container's filesystem exists.
        proc_root = procfs.open_private()
        rootfs.prepare_rootfs(spec, bundle, req.no_pivot, cgroup_paths=cgroup_paths,
                              after_pivot=open_console, proc_root=proc_root)
        os.write(sync.up_w, b"rootfs\n")
        stage = "createContainer hook"
        go = _read_line(sync.down_r)
        if not go.startswith("go "):
            raise RuntimeError("pyrunc create went away before the container was ready")
        created_state = jsonio.loads(go.removeprefix("go "))
        hooks.run_spec_hooks(spec, "createContainer", created_state, fatal=True)
        stage = "proc"
        proc_files = process_setup.open_proc_files(plan, proc_root)
        os.close(proc_root)
        # A program that is not there is create's failure (as runc's), even
        # where the setup below waits for start early, before a filter loaded
        # without no_new_privileges, and looks for it only then.
        try:
            process_setup.find_program(plan)
        except process_setup.ChildError as err:
            raise process_setup.ChildError(f"exec {plan.args[0]!r}", str(err), err.errno) from None
    except BaseException as err:  # noqa: BLE001 - report, never return into the parent
        process_setup.report_and_exit(sync.err_w, stage, err)
    # Failures until wait_for_start are create's, reported on the error pipe.
    setup = process_setup.ChildSetup(plan=plan, error_fd=sync.err_w,
                                     seccomp_filter=seccomp_filter,
                                     keep_fds=frozenset(range(3, 3 + req.preserve_fds)),
                                     proc_files=proc_files)

    def wait_for_start() -> int:
        return _wait_for_start(spec, plan, req, sync, fifo_fd, created_state)

    process_setup.setup_and_exec(setup, wait_for_start)


def _wait_for_start(spec: dict[str, Any], plan: ProcessPlan, req: CreateRequest,
                    sync: _Channels, fifo_fd: int, created_state: dict[str, Any]) -> int:
    """Say "ready" (create returns), wait for `start`, run the startContainer hooks.

    Returns the fd `start` reads until execve closes it: failures from here
    on are start's to report, and nobody reads the error pipe any more.
    """
    os.write(sync.up_w, b"ready\n")
    try:
        # Reopen the fifo through our own fd: the host path is gone after
        # pivot_root.  The open blocks until `start` opens the other end.
        opened = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        # Above the preserved fds, or it would be kept open into the process.
        report_fd = fcntl.fcntl(opened, fcntl.F_DUPFD_CLOEXEC, 3 + req.preserve_fds)
        os.close(opened)
        os.close(fifo_fd)
        os.write(report_fd, b"0")
    except BaseException as err:  # noqa: BLE001 - the process must not start after this
        os.write(2, f"pyrunc: container init: {describe(err)}\n".encode())
        os._exit(255)
    try:
        hooks.run_spec_hooks(spec, "startContainer", {**created_state, "status": "running"},
                             fatal=True, default_env=list(plan.env))
    except BaseException as err:  # noqa: BLE001 - the process must not start after this
        process_setup.report_and_exit(report_fd, "startContainer hook", err)
    return report_fd
