"""start, state, list, kill, delete, ps, pause, resume: commands on a container's life.

Status is never stored: it is derived live from the init process (pid and
start time, so a recycled pid is not mistaken for the container), the exec
fifo (present until ``start``) and the freezer.
"""

from __future__ import annotations

import os
import sys

from runpy_exec import OCI_VERSION
from runpy_exec import state as store
from runpy_exec.errors import PyruncError

# Each command imports what it alone needs (json, signal, subprocess...):
# engines run state, kill and delete for every container, and the modules
# cost more than their work.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from runpy_exec.requests import GlobalOptions


def oci_state(container: store.Container, status: str | None = None) -> dict[str, Any]:
    status = status or store.status_of(container)
    return {
        "ociVersion": OCI_VERSION,
        "id": container.id,
        "pid": 0 if status == "stopped" else container.init_pid,
        "status": status,
        "bundle": container.bundle,
        "rootfs": container.rootfs,
        "created": container.created,
        "owner": container.owner,
        **({"annotations": container.annotations} if container.annotations else {}),
    }


def state(opts: GlobalOptions, container_id: str) -> None:
    from runpy_exec import jsonio as json

    container = store.load(opts.root, container_id)
    print(json.dumps(oci_state(container), indent="  "))


def list_containers(opts: GlobalOptions, quiet: bool, fmt: str) -> None:
    """Every container; one that cannot be read never hides the others.

    A broken one (a killed create, a corrupt state.json) is told on stderr,
    one line each, as runc does; the table also shows it, status "broken",
    so its id is not mistaken for free.  JSON and ``-q`` list only containers
    with a real OCI state, for the engines that parse them.
    """
    if fmt not in ("table", "json"):
        raise PyruncError(f"invalid format option {fmt!r}: must be table or json")
    containers = []
    broken: list[str] = []
    for container_id in store.list_ids(opts.root):
        try:
            containers.append(store.load(opts.root, container_id))
        except store.BrokenState as err:
            broken.append(container_id)
            print(f"pyrunc: list: {err}", file=sys.stderr)
        except PyruncError:
            continue  # deleted meanwhile
    if quiet:
        for container in containers:
            print(container.id)
        return
    records = [oci_state(c) for c in containers]
    if fmt == "json":
        from runpy_exec import jsonio as json

        print(json.dumps(records, separators=(",", ":")))
        return
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]]
             for r in records]
    rows += [[container_id, "0", "broken", "", "", ""] for container_id in broken]
    rows.sort(key=lambda row: row[0] if row[0] != "ID" else "")
    widths = [max(12, max(len(row[i]) for row in rows) + 3) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + row[-1])


def signal_numbers() -> dict[str, int]:
    """Every SIG* name the C library knows, aliases included, to its number.

    The names signal.Signals has, read from ``_signal`` itself: signal.py
    would import enum, ~3 ms on each `kill` an engine sends.
    """
    import _signal

    return {name: number for name, number in vars(_signal).items()
            if name.startswith("SIG") and not name.startswith("SIG_")}


def parse_signal(value: str) -> int:
    """``KILL``, ``SIGKILL`` and ``9`` all name SIGKILL, as in runc."""
    numbers = signal_numbers()
    if value.isascii() and value.isdigit():
        number = int(value) if len(value) <= 10 else -1
        if (number == 0 or number in numbers.values()
                or numbers["SIGRTMIN"] <= number <= numbers["SIGRTMAX"]):
            return number
        raise PyruncError(f"unknown signal {value!r}")
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return numbers[name]
    except KeyError:
        raise PyruncError(f"unknown signal {value!r}") from None


def kill(opts: GlobalOptions, container_id: str, signal_name: str, all_processes: bool) -> None:
    """Signal the init, or with --all every process of the container.

    As runc: a stopped container is an error ("container not running"),
    except with --all, which has nothing left to signal and succeeds.
    """
    signum = parse_signal(signal_name)
    container = store.load(opts.root, container_id)
    if store.status_of(container) in ("stopped", "creating"):
        if all_processes:
            return
        raise PyruncError("container not running")
    if all_processes:
        _signal_all(container, signum)
        return
    try:
        os.kill(container.init_pid, signum)
    except ProcessLookupError:
        raise PyruncError("container not running") from None


def _signal_all(container: store.Container, signum: int) -> None:
    import _signal as signal  # signal.py would import enum (~3 ms)

    from runpy_exec.linux import cgroups

    paused = store.status_of(container) == "paused"
    if signum == signal.SIGKILL and cgroups.kill_all(container.cgroup_paths):
        return
    for pid in cgroups.pids(container.cgroup_paths):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue
    if paused and signum == signal.SIGKILL:
        # A frozen task cannot die until thawed.
        cgroups.thaw(container.cgroup_paths)


def start(opts: GlobalOptions, container_id: str) -> None:
    container = store.load(opts.root, container_id)
    with store.locked(container.state_dir):
        status = store.status_of(container)
        if status == "stopped":
            raise PyruncError("cannot start a container that has stopped")
        if status == "creating":
            raise PyruncError("cannot start a container that is still being created")
        if status != "created":
            raise PyruncError("cannot start an already running container")
        _release_init(container)
    _run_hooks(container, "poststart", "running")


def _run_hooks(container: store.Container, point: str, status: str) -> None:
    """Run the bundle's poststart or poststop hooks; a failure is only a warning.

    ``hooks`` (and the state it is handed) is imported only when there is a
    hook to run: start and delete run for every container, and few have hooks.
    """
    if ((container.config or {}).get("hooks") or {}).get(point):
        from runpy_exec import hooks

        hooks.run_hooks(container, point, oci_state(container, status), fatal=False)


def _release_init(container: store.Container) -> None:
    """Open the exec fifo's other end: the init's blocked open returns and it goes on.

    Opened non-blocking and polled beside a pidfd of the init, so an init
    that died waiting cannot leave `start` blocked forever.
    """
    import select

    fifo = os.path.join(container.state_dir, store.EXEC_FIFO)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    pidfd = os.pidfd_open(container.init_pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        for ready_fd, _ in poller.poll():
            if ready_fd == fd and os.read(fd, 1):
                break
        else:
            raise PyruncError("container init exited before it could be started")
        os.unlink(fifo)
        _expect_exec(fd)
    finally:
        os.close(pidfd)
        os.close(fd)


def _expect_exec(fd: int) -> None:
    """Read the rest of the fifo: end of file when the process's execve closed
    the init's end, an error record when its setup or execve failed."""
    os.set_blocking(fd, True)
    report = bytearray()
    while chunk := os.read(fd, 4096):
        report += chunk
    if report:
        # Only here: process_setup brings _ctypes and _prctl (~2 ms) to every start.
        from runpy_exec import process_setup

        err = process_setup.decode_error(bytes(report))
        if err.stage == "execve":
            raise PyruncError(str(err))  # runc's own line: "exec /run.sh: <reason>"
        raise PyruncError(f"starting the container process: {err.stage}: {err}")


def delete(opts: GlobalOptions, container_id: str, force: bool) -> None:
    try:
        container = store.load(opts.root, container_id)
    except store.BrokenState as err:
        if not force:
            raise
        _remove_broken(err)
        return
    except PyruncError:
        if force:
            store.validate_id(container_id)
            return
        raise
    status = store.status_of(container)
    if status == "creating" and not force:
        raise PyruncError(f"cannot delete container {container_id} that is being created")
    if status in ("running", "paused") and not force:
        raise PyruncError(f"cannot delete container {container_id} that is not stopped: {status}")
    destroy(container, status)


def destroy(container: store.Container, status: str) -> None:
    """Kill what is left, remove cgroups and state, then run poststop hooks."""
    from runpy_exec.linux import cgroups

    if container.runtime != "pyrunc":
        raise PyruncError(f"container {container.id!r} was created by {container.runtime}: "
                          f"delete it with {container.runtime}")
    # A container without its own pid namespace outlives its init, and a create
    # killed half-way may leave its first child: whatever is in the cgroup goes too.
    # (A create killed before it chose the cgroups leaves none to look at.)
    paths = container.cgroup_paths
    if status != "stopped" or (paths and cgroups.pids(paths)):
        _kill_pids(paths, container)
    if any(name.startswith("sess.") for name in os.listdir(container.state_dir)):
        from runpy_exec.sessions import client

        client.end_all(container.state_dir)  # reattachable exec sessions end with the container
    if container.systemd_unit:
        from runpy_exec.linux import systemd

        systemd.stop_scope(container.systemd_unit)  # systemd removes the scope's cgroup
    if paths:
        cgroups.destroy(paths)
    with store.locked(container.state_dir):
        _remove_files(container.state_dir)
    os.rmdir(container.state_dir)
    _run_hooks(container, "poststop", "stopped")


def _remove_broken(broken: store.BrokenState) -> None:
    """``delete --force`` of a container without a usable state: its cgroup's
    processes and cgroups when the record still names them, then the directory.

    create records the cgroup paths before it makes any cgroup, so a create
    killed before its first record left no cgroup either.
    """
    from runpy_exec.linux import cgroups

    with store.locked(broken.state_dir):
        paths = broken.cgroup_paths or _default_cgroup_paths(broken.container_id)
        if paths:
            _kill_pids(paths)
            cgroups.destroy(paths)
        _remove_files(broken.state_dir)
    try:  # noqa: SIM105 - contextlib is kept off delete's path
        os.rmdir(broken.state_dir)
    except FileNotFoundError:
        pass


def _default_cgroup_paths(container_id: str) -> dict[str, str]:
    """The cgroups create gives a container whose config has no cgroupsPath, where
    they exist: the best guess left once a broken record no longer names them."""
    from runpy_exec.linux import cgroups

    try:
        paths = cgroups.resolve_paths(None, container_id)
    except (OSError, cgroups.CgroupError):
        return {}
    return {controller: path for controller, path in paths.items()
            if os.path.isdir(path) and not os.path.ismount(path)}


def _remove_files(state_dir: str) -> None:
    for entry in os.scandir(state_dir):
        if entry.is_dir(follow_symlinks=False):
            import shutil

            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:  # noqa: SIM105 - contextlib is kept off delete's path
                os.unlink(entry.path)
            except FileNotFoundError:
                pass


def _kill_pids(paths: dict[str, str], init: store.Container | None = None) -> None:
    """SIGKILL to every process in the cgroups (thawed first: a frozen task cannot
    die) and to the live init; wait, up to 10 s, until all of them are gone.

    Each process is held by a pidfd, so the kill cannot reach a process that
    reused a pid, and the wait is the kernel's word (a pidfd turns readable
    at exit) rather than a polling loop.  Processes forked while we kill are
    picked up from the cgroup on the next pass.
    """
    import _signal as signal  # signal.py would import enum (~3 ms)
    import select
    import time

    from runpy_exec.linux import cgroups, proc

    def processes() -> set[int]:
        found = set(cgroups.pids(paths)) if paths else set()
        # Never pid 0 (kill(0) is our own process group): a container still
        # being created has no init yet.
        if init is not None and init.init_pid > 0 and proc.is_alive_with_start_time(
                init.init_pid, init.init_start_time):
            found.add(init.init_pid)
        return found

    if "freezer" in paths:
        cgroups.thaw(paths)
    if paths:
        cgroups.kill_all(paths)  # cgroup.kill where the kernel has it; the pidfds wait
    deadline = time.monotonic() + 10
    pids = processes()
    killed: set[int] = set()
    while pids and time.monotonic() < deadline:
        poller = select.poll()
        pidfds = []
        waiting = 0
        try:
            for pid in pids:
                try:
                    pidfd = os.pidfd_open(pid)
                except ProcessLookupError:
                    continue
                pidfds.append(pidfd)
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                poller.register(pidfd, select.POLLIN)
                waiting += 1
            while waiting:
                remaining = deadline - time.monotonic()
                ready = poller.poll(remaining * 1000) if remaining > 0 else []
                if not ready:
                    break
                for pidfd, _events in ready:
                    poller.unregister(pidfd)
                    waiting -= 1
        finally:
            for pidfd in pidfds:
                os.close(pidfd)
        killed |= pids
        pids = processes() - killed


def ps(opts: GlobalOptions, container_id: str, fmt: str, ps_args: Sequence[str]) -> None:
    from runpy_exec.linux import cgroups

    container = store.load(opts.root, container_id)
    pids = cgroups.pids(container.cgroup_paths)
    if fmt == "json":
        from runpy_exec import jsonio as json

        print(json.dumps(pids))
        return
    if fmt != "table":
        raise PyruncError(f"invalid format option {fmt!r}: must be table or json")
    lines = _run_ps(list(ps_args or ["-ef"])).splitlines()
    if not lines:
        return
    header = lines[0].split()
    if "PID" not in header:
        raise PyruncError("ps: couldn't find PID field in ps output")
    column = header.index("PID")
    wanted = set(pids)
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            print(line)


def _run_ps(args: list[str]) -> str:
    """What ``ps ARGS`` prints; if it fails, an error with its status and first complaint
    (runc's error carries ps's whole output).

    Spawned with os.posix_spawnp: importing subprocess (locale, re, enum...)
    would cost more than the rest of the command.  Its stderr goes to a memfd,
    read after it exits, so a chatty ps cannot block on a pipe nobody reads.
    """
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    errors = os.memfd_create("pyrunc-ps-stderr", os.MFD_CLOEXEC)
    try:
        pid = os.posix_spawnp("ps", ["ps", *args], os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, write_end, 1), (os.POSIX_SPAWN_DUP2, errors, 2)])
    except OSError as err:
        os.close(read_end)
        os.close(errors)
        raise PyruncError(f"ps {' '.join(args)}: {err.strerror}") from None
    finally:
        os.close(write_end)
    with open(read_end, "rb") as output:
        data = output.read()
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    try:
        if status != 0:
            # ps's writes moved the shared offset to the end: read from the start.
            said = os.pread(errors, os.fstat(errors).st_size, 0)
            said = said or data  # procps prints some usage errors on stdout
            complaint = next((line.strip() for line in said.decode(errors="replace")
                              .splitlines() if line.strip()), "")
            raise PyruncError(f"ps {' '.join(args)}: exit status {status}"
                              + (f": {complaint}" if complaint else ""))
    finally:
        os.close(errors)
    return data.decode(errors="replace")


def pause(opts: GlobalOptions, container_id: str) -> None:
    _set_frozen(opts, container_id, True)


def resume(opts: GlobalOptions, container_id: str) -> None:
    _set_frozen(opts, container_id, False)


def _set_frozen(opts: GlobalOptions, container_id: str, frozen: bool) -> None:
    from runpy_exec.linux import cgroups

    container = store.load(opts.root, container_id)
    status = store.status_of(container)
    if frozen and status != "running":
        raise PyruncError(f"container {container_id!r} is not running")
    if not frozen and status != "paused":
        raise PyruncError(f"container {container_id!r} is not paused")
    if frozen:
        cgroups.freeze(container.cgroup_paths)
    else:
        cgroups.thaw(container.cgroup_paths)
