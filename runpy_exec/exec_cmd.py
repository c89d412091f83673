"""``pyrunc exec``: start a new process inside a running container.

load state -> resolve the process (pure) -> prepare fds and filters -> fork
-> the child joins the container and becomes the process -> the parent
reports pids, relays the terminal and signals, and exits with the status.
"""

from __future__ import annotations

import fcntl
import os

from runpy_exec import state
from runpy_exec.errors import PyruncError
from runpy_exec.plan import ProcessPlan
from runpy_exec.requests import ExecRequest, GlobalOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    # signal.py wraps these C functions to return IntEnums, and importing enum
    # costs ~3 ms on every exec; _signal is the same functions on plain ints.
    import _signal as signal
if TYPE_CHECKING:
    # Imported where used: socket costs ~6 ms, and only a terminal exec needs it.
    import socket
    from collections.abc import Iterable
    from typing import Any, NoReturn

    from runpy_exec.linux.cgroups.joining import CgroupJoin

EXEC_ERROR = 255
TIMEOUT_STATUS = 124  # what coreutils' timeout(1) exits with; probes know it
# Not forwarded: SIGCHLD is about pyrunc's own children, SIGWINCH resizes the
# relayed terminal; SIGKILL and SIGSTOP cannot be caught.
_NOT_FORWARDED = frozenset({signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH})


class Launched:
    """The started process, as the parent holds it.  (No dataclasses on this
    path: importing them costs ~13 ms, a tenth of exec's budget.)"""

    def __init__(self, pid: int, pidfd: int, forwarder: SignalForwarder,
                 master_fd: int | None = None) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.forwarder = forwarder
        self.master_fd = master_fd  # pty master when pyrunc relays the terminal


def exec_(opts: GlobalOptions, req: ExecRequest) -> int:
    """Every failure of exec itself exits 255, whatever layer raised it, so that
    a caller can tell it from any status the process could exit with."""
    try:
        return _exec(opts, req)
    except PyruncError as err:
        if err.exit_code == EXEC_ERROR:
            raise
        raise PyruncError(str(err), EXEC_ERROR) from None


def _exec(opts: GlobalOptions, req: ExecRequest) -> int:
    if req.session is not None:
        from runpy_exec.sessions import start

        return start.exec_session(opts, req)
    # With --process the terminal comes from the file: checked again once it is read.
    _check_terminal(req, req.tty or (bool(req.process_file) and req.console_socket is not None))
    _check_cap_names(req.caps)
    timeout = _timeout(req)
    if req.detach:
        return _exec_detached(opts, req, timeout)
    launched = _launch(opts, req)
    _report_started(req, launched, launched.pid)
    if launched.master_fd is None:
        timeout = _hand_off_if_long(launched, timeout)
    return _wait(launched, timeout)


# A process still running after this long, foreground or detached, is waited
# for by the small waiter (see runpy_exec.waiter): probes are done by then and
# never pay for the re-spawn, long execs stop holding everything exec imported.
HAND_OFF_AFTER = 0.5


def _hand_off_if_long(launched: Launched, timeout: float | None) -> float | None:
    """Wait here a little; then, if the process still runs, become the small waiter.

    Returns (with the timeout left) only when the process has exited.
    """
    import select
    import time

    start = time.monotonic()
    first = HAND_OFF_AFTER if timeout is None else min(HAND_OFF_AFTER, timeout)
    while time.monotonic() - start < first:
        ready, _, _ = select.select([launched.pidfd, launched.forwarder.wake_fd], [], [],
                                    max(0.0, first - (time.monotonic() - start)))
        launched.forwarder.drain()  # the handlers have forwarded those signals already
        if launched.pidfd in ready:
            break
    left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
    if select.select([launched.pidfd], [], [], 0)[0] or left == 0.0:
        return left
    import sys

    from runpy_exec import waiter

    sys.stdout.flush()
    sys.stderr.flush()
    waiter.become(launched.pid, launched.pidfd, left)


def _check_terminal(req: ExecRequest, terminal: bool) -> None:
    """A terminal needs someone to hold its master: pyrunc in the foreground, or the socket."""
    if terminal and req.detach and not req.console_socket:
        raise PyruncError("cannot allocate tty if pyrunc will detach without setting "
                          "console socket", EXEC_ERROR)
    if req.console_socket and not terminal:
        raise PyruncError("--console-socket needs a terminal (--tty or terminal: true)",
                          EXEC_ERROR)


def _check_cap_names(names: tuple[str, ...]) -> None:
    """A name typed on the command line that is no capability at all is a mistake.

    runc only warns and runs without it; a misspelt ``--cap`` then goes
    unnoticed until the process fails for lack of it.  Names from a config or
    process.json are still only warned about, so a spec written for a newer
    kernel keeps working.
    """
    from runpy_exec import resolve

    for name in names:
        if resolve.cap_number(name) is None:
            raise PyruncError(f'exec failed: --cap "{name}": unknown capability '
                              "(want a name such as CAP_NET_ADMIN)", EXEC_ERROR)


def _timeout(req: ExecRequest) -> float | None:
    if not req.timeout:
        return None
    from runpy_exec import resolve

    return resolve.parse_duration(req.timeout)


def _exec_detached(opts: GlobalOptions, req: ExecRequest, timeout: float | None) -> int:
    """runsc's way: a copy of pyrunc stays behind as the process's waiter.

    Its pid goes into --pid-file: once we exit it is reparented to the
    caller's subreaper (conmon, containerd's shim), which waits on it; it
    relays signals to the process and exits with the process's status.

    The waiter must be the process's parent, so it forks it; everything
    before that (loading, resolving, checking, opening fds) is done here
    first.  Done in the forked waiter, the same work took ~1 ms longer: it
    copied every page of ours it touched, ours being alive beside it.
    """
    plan, prepared = _prepare(opts, req)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    try:
        waiter = os.fork()
        if waiter == 0:
            try:
                os.close(ready_r)
                _run_waiter(req, plan, prepared, ready_w, timeout)
            finally:
                os._exit(EXEC_ERROR)
    finally:
        prepared.close()
        os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        report = ready.read()
    if report == b"ok":
        return 0
    os.waitpid(waiter, 0)
    message = report[len(b"error:"):].decode(errors="replace") if report.startswith(
        b"error:") else "exec failed: the waiting process died before the process started"
    raise PyruncError(message, EXEC_ERROR)


def _run_waiter(req: ExecRequest, plan: ProcessPlan, prepared: _Prepared, ready_w: int,
                timeout: float | None) -> NoReturn:
    """The forked waiter: start the process, report to the caller, then wait.

    Before it reports, it lets go of everything of the caller's, so that the
    caller is done with us when pyrunc returns.  Then it waits as a
    foreground exec does: for HAND_OFF_AFTER here, and a process still
    running by then gets the small waiter of :mod:`runpy_exec.waiter`, in
    this same process.  Probes and most execs have ended by then, and pay
    for no second interpreter (~5 ms of CPU per detached exec).
    """
    try:
        try:
            launched = _fork_into_container(plan, prepared)
        finally:
            prepared.close()
        # Before the pid files: a failure here is reported, with none written
        # (the process dies with us, by its parent-death signal).
        let_go_of_the_callers_fds()
        _report_started(req, launched, os.getpid())
    except Exception as err:  # noqa: BLE001 - the caller reports it; we only pass it on
        message = str(err) if isinstance(err, PyruncError) else (
            f"pyrunc: internal error: {type(err).__name__}: {err}")
        os.write(ready_w, b"error:" + message.encode())
        os._exit(EXEC_ERROR)
    os.write(ready_w, b"ok")
    os.close(ready_w)
    left = _hand_off_if_long(launched, timeout)
    os._exit(_wait(launched, left))


def let_go_of_the_callers_fds() -> None:
    """Keep nothing of the caller's once the process has what it was given.

    The caller's stdio (it may read our stdout to its end) and any fd it let
    us inherit (--preserve-fds, --pass-fd, a shim's pipes) would otherwise
    stay open as long as we wait.  pyrunc's own fds are all close-on-exec;
    the ones that are not are the caller's.
    """
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and os.get_inheritable(fd):
                os.close(fd)
        except OSError:
            continue  # the listing's own fd, closed by now


def _report_started(req: ExecRequest, launched: Launched, waiter_pid: int) -> None:
    """Write the pid files; a process nobody can be told about is killed, as runc does."""
    try:
        _write_pid_files(req, launched.pid, waiter_pid)
    except (PyruncError, OSError) as err:
        _abandon(launched)
        raise PyruncError(f"exec failed: {err}", EXEC_ERROR) from None


def _abandon(launched: Launched) -> None:
    _kill(launched.pidfd)
    os.waitpid(launched.pid, 0)
    launched.forwarder.restore()
    os.close(launched.pidfd)
    if launched.master_fd is not None:
        os.close(launched.master_fd)


def _write_pid_files(req: ExecRequest, process_pid: int, waiter_pid: int) -> None:
    """runsc writes the pid inside the container first, then the host pid file."""
    if req.internal_pid_file:
        from runpy_exec.linux import proc

        state.write_pid_file(req.internal_pid_file, proc.ns_pid(process_pid))
    if req.pid_file:
        state.write_pid_file(req.pid_file, waiter_pid)


def _load_running(opts: GlobalOptions, req: ExecRequest) -> state.Container:
    container = state.load(opts.root, req.container_id)
    status = state.status_of(container)
    if status == "stopped":
        raise PyruncError("cannot exec in a stopped container", EXEC_ERROR)
    if status == "creating":
        raise PyruncError("cannot exec in a container that is still being created", EXEC_ERROR)
    if status == "paused" and not req.ignore_paused:
        raise PyruncError("cannot exec in a paused container (use --ignore-paused to override)",
                          EXEC_ERROR)
    return container


def _check_still_running(container: state.Container) -> None:
    """After the namespace fds are open: they are the container's only if its init,
    checked by start time, outlived the opening (a reused pid would be another's)."""
    from runpy_exec.linux import proc

    if not proc.is_alive_with_start_time(container.init_pid, container.init_start_time):
        raise PyruncError("cannot exec in a stopped container", EXEC_ERROR)


def _resolve_plan(opts: GlobalOptions, req: ExecRequest, container: state.Container) -> ProcessPlan:
    from runpy_exec import containerfs, resolve
    from runpy_exec.linux import capabilities

    root = f"/proc/{container.init_pid}/root"
    passwd = containerfs.read_container_file(root, "/etc/passwd")
    group = containerfs.read_container_file(root, "/etc/group")
    container_process = _container_process(container)
    if req.process_file:
        process = _load_process_file(req.process_file)
        return resolve.resolve_process_file(
            process, container_process, passwd, group, opts.net_raw,
            capabilities.last_cap(), req)
    return resolve.resolve_exec(
        container_process, req, passwd, group, opts.net_raw, capabilities.last_cap())


def _container_process(container: state.Container) -> dict[str, Any]:
    """The container's config.json ``process``, checked as a process.json is.

    pyrunc's create stored it already checked and cleaned by config.schema.json,
    whose Process is process.schema.json's (tests/test_validate.py holds the
    cleaned process to be its own check's result), so it is taken as stored:
    checking it again would read and walk that 12 KB schema at every exec.
    runc's containers, and a stored config without a process, are checked.
    """
    process = container.config.get("process")
    if container.runtime == "pyrunc" and isinstance(process, dict):
        return process
    from runpy_exec import validate

    checked: dict[str, Any] = validate.check_process(process or {}, "config.json: process")
    return checked


def _load_process_file(path: str) -> dict[str, Any]:
    """runc reads a process.json without "user" as root's; the OCI schema requires it.
    Supplying root's before validation keeps runc's process files working."""
    from runpy_exec import validate

    data = validate.read_json(path, EXEC_ERROR)
    if isinstance(data, dict) and "user" not in data:
        data["user"] = {"uid": 0, "gid": 0}
    return validate.check_process(data, path)


def _launch(opts: GlobalOptions, req: ExecRequest) -> Launched:
    plan, prepared = _prepare(opts, req)
    try:
        return _fork_into_container(plan, prepared)
    finally:
        prepared.close()


def _prepare(opts: GlobalOptions, req: ExecRequest) -> tuple[ProcessPlan, _Prepared]:
    """Everything short of the fork: the plan, and the fds the child will need.

    The caller closes the fds (``_Prepared.close``) once the child is started;
    on a failure here they are closed before it is raised.
    """
    from runpy_exec import process_setup
    from runpy_exec.linux import namespaces
    from runpy_exec.linux.cgroups import joining

    container = _load_running(opts, req)
    plan = _resolve_plan(opts, req, container)
    _check_terminal(req, plan.terminal)
    if plan.terminal and not req.console_socket:
        plan = _with_our_terminal_size(plan, req.size)
    prepared = _Prepared(die_with_parent=req.detach or req.session is not None)
    try:
        prepared.check_fds(req)
        # Without --cgroup, a v2 cgroup that takes no process gives way to the
        # init's current one, as in runc 1.4; a cgroup the caller named does not.
        prepared.cgroups = joining.CgroupJoin(
            _cgroup_paths(container, req), None if req.cgroups else container.init_pid)
        prepared.namespaces = namespaces.open_namespaces(
            container.init_pid, sorted(container.namespace_paths))
        _check_still_running(container)
        prepared.seccomp = process_setup.prepare_seccomp(container.config, container.state_dir)
        if plan.terminal and req.console_socket:
            from runpy_exec.linux import console

            # Connected before anything starts: a dead socket leaves no process.
            prepared.console = console.connect(req.console_socket)
        if req.pidfd_socket:
            from runpy_exec.linux import pidfd_socket

            prepared.pidfd_socket = pidfd_socket.connect(req.pidfd_socket)
    except BaseException:
        prepared.close()
        raise
    return plan, prepared


def _with_our_terminal_size(plan: ProcessPlan, given: str | None = None) -> ProcessPlan:
    """When we relay our own terminal, the pty starts at its size, not after the
    process has already asked for it (a resize follows later changes); a
    session's starts at the size it was given."""
    if given:
        from runpy_exec import sessions

        return plan._replace(console_size=sessions.parse_size(given))
    if not os.isatty(0):
        return plan
    from runpy_exec.linux import console

    try:
        size = console.get_winsize(0)
    except OSError:
        return plan
    return plan._replace(console_size=size) if all(size) else plan


def _cgroup_paths(container: state.Container, req: ExecRequest) -> dict[str, str]:
    """The container's cgroups with every ``--cgroup`` sub-cgroup applied.

    Checked here, before anything starts: the messages carry the words runc's
    callers (and its test-suite) look for.  A missing sub-cgroup is refused,
    not made, on v2 too: runc's exec.bats ("exec --cgroup subcgroup [v2]")
    requires that refusal.
    """
    from runpy_exec import resolve
    from runpy_exec.linux import cgroups

    paths = dict(container.cgroup_paths)
    for value, (controllers, subpath) in zip(
            req.cgroups, resolve.validate_cgroup_args(req.cgroups), strict=True):
        for controller in controllers:
            if controller not in container.cgroup_paths:
                raise PyruncError(f"exec failed: --cgroup {value}: unknown controller "
                                  f"{controller}", EXEC_ERROR)
        sub = {c: os.path.normpath(p) for c, p in
               cgroups.sub_paths(container.cgroup_paths, controllers, subpath).items()}
        for path in sub.values():
            if not os.path.isdir(path):
                raise PyruncError(f"exec failed: --cgroup {value}: adding pid to cgroup: open "
                                  f"{path}/cgroup.procs: no such file or directory", EXEC_ERROR)
        paths.update({c: p for c, p in sub.items() if p != container.cgroup_paths[c]})
    return paths



class _Prepared:
    """Fds opened before fork; the parent closes all of them once the child has them."""

    def __init__(self, die_with_parent: bool) -> None:
        self.cgroups: CgroupJoin | None = None
        self.namespaces: list[tuple[str, int]] = []
        self.seccomp: Any = None
        self.console: socket.socket | None = None
        self.pidfd_socket: socket.socket | None = None
        self.fd_moves: list[tuple[int, int]] = []
        self.keep_fds: frozenset[int] = frozenset()
        self.exec_fd: int | None = None
        # A detached exec's waiter is what the caller holds: if it is killed
        # (SIGKILL cannot be relayed), the process must go with it.
        self.die_with_parent = die_with_parent

    def check_fds(self, req: ExecRequest) -> None:
        """Every fd the caller names must be one it really handed us, open now."""
        import resource

        from runpy_exec import resolve

        open_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        resolve.check_preserve_fds(req.preserve_fds, open_limit)
        keep = set(range(3, 3 + req.preserve_fds))
        for fd in sorted(keep):
            if not _callers_fd(fd):
                raise PyruncError(f"exec failed: --preserve-fds {req.preserve_fds}: fd {fd} "
                                  "is not open", EXEC_ERROR)
        targets: set[int] = set()
        for value in req.pass_fds:
            source, target = resolve.parse_pass_fd(value)
            resolve.check_fd_target(value, target, open_limit)
            if not _callers_fd(source):
                raise PyruncError(f"exec failed: --pass-fd {value}: fd {source} is not open",
                                  EXEC_ERROR)
            if target in keep or target in targets:
                raise PyruncError(f"exec failed: --pass-fd {value}: fd {target} is already "
                                  "given to the process", EXEC_ERROR)
            targets.add(target)
            self.fd_moves.append((source, target))
        if req.exec_fd is not None:
            if not _callers_fd(req.exec_fd):
                raise PyruncError(f"exec failed: --exec-fd {req.exec_fd}: fd is not open",
                                  EXEC_ERROR)
            self.exec_fd = req.exec_fd
        self.keep_fds = frozenset(keep | {t for t in targets if t > 2})

    def close(self) -> None:
        if self.cgroups is not None:
            self.cgroups.close()
        for _, fd in self.namespaces:
            os.close(fd)
        self.namespaces = []
        if self.console is not None:
            self.console.close()
            self.console = None
        if self.pidfd_socket is not None:
            self.pidfd_socket.close()
            self.pidfd_socket = None


def _callers_fd(fd: int) -> bool:
    """Open, and not one pyrunc opened for itself (the --log file)."""
    from runpy_exec import log

    if fd == log.file_fd():
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def _fork_into_container(plan: ProcessPlan, prepared: _Prepared) -> Launched:
    """Fork the process, with every signal held back until it can be forwarded.

    A signal arriving between fork and the forwarder's installation would
    otherwise kill pyrunc (SIGTERM) and orphan the process, or run a Python
    handler inside the half-made child.
    """
    from runpy_exec import process_setup

    floor = max([2, *prepared.keep_fds, *(src for src, _ in prepared.fd_moves),
                 *(dst for _, dst in prepared.fd_moves)]) + 1
    error_r, error_w = _pipe_above(floor)
    pty_parent = pty_child = None
    if plan.terminal:
        from runpy_exec.linux import console

        pty_parent, pty_child = console.pty_channel()
    pid_ns = dict(prepared.namespaces).get("pid")
    if pid_ns is not None:
        # pid_for_children only: pyrunc itself stays in the host pid namespace,
        # its next child is born inside the container's.
        from runpy_exec.linux.syscalls import CLONE_NEWPID, setns

        setns(pid_ns, CLONE_NEWPID)
    assert prepared.cgroups is not None
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid, pidfd = prepared.cgroups.fork()
        if pid == 0:
            _child(plan, prepared, error_w, pty_child, mask)
        forwarder = SignalForwarder(pidfd)
        forwarder.install()
    except BaseException as err:
        for fd in (error_r, error_w):
            os.close(fd)
        for end in (pty_parent, pty_child):
            if end is not None:
                end.close()
        if isinstance(err, PyruncError):  # the cgroup refused the process
            raise PyruncError(f"exec failed: {err}", EXEC_ERROR) from None
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.close(error_w)
    master_fd = None
    if pty_parent is not None and pty_child is not None:
        pty_child.close()
        from runpy_exec.linux import console

        with pty_parent:
            master_fd = console.receive_fd(pty_parent)
    error = _read_all(error_r)
    os.close(error_r)
    launched = Launched(pid=pid, pidfd=forwarder.pidfd, forwarder=forwarder, master_fd=master_fd)
    if error:
        _abandon(launched)
        raise PyruncError(_describe(process_setup.decode_error(error), plan), EXEC_ERROR)
    if master_fd is not None and prepared.console is not None:
        from runpy_exec.linux import console

        try:
            console.send_fd(prepared.console, master_fd)
        except PyruncError as err:
            _abandon(launched)
            raise PyruncError(str(err), EXEC_ERROR) from None
        os.close(master_fd)
        launched.master_fd = None
    if prepared.pidfd_socket is not None:
        from runpy_exec.linux import pidfd_socket

        try:
            pidfd_socket.send(prepared.pidfd_socket, pidfd_socket.EXEC, pid)
        except PyruncError as err:
            _abandon(launched)
            raise PyruncError(str(err), EXEC_ERROR) from None
    return launched


def _child(plan: ProcessPlan, prepared: _Prepared, error_w: int, pty_child: Any,
           mask: Iterable[int]) -> NoReturn:
    """The forked child up to the point where process setup takes over; never returns."""
    from runpy_exec import process_setup

    stage = "signals"
    parent_seen_as = os.getppid()  # 0 when the parent is outside our pid namespace
    try:
        process_setup.reset_signals(mask)
        from runpy_exec.linux import procctl

        # CVE-2016-9962: while this process sits in the container's
        # namespaces holding host fds, nothing in the container may ptrace
        # it or open its /proc/<pid>/fd.  execve resets dumpable.
        procctl.set_dumpable(False)
        stage = "proc"
        proc_files = process_setup.open_proc_files(plan)
        stage = "cgroup"
        from runpy_exec.linux import namespaces

        assert prepared.cgroups is not None
        prepared.cgroups.join_in_child()
        stage = "namespaces"
        namespaces.join([(kind, fd) for kind, fd in prepared.namespaces if kind != "pid"])
        stage = "console"
        if pty_child is not None:
            process_setup.become_terminal_owner(plan.console_size, pty_child)
        setup = process_setup.ChildSetup(
            plan=plan, error_fd=error_w, seccomp_filter=prepared.seccomp,
            fd_moves=tuple(prepared.fd_moves), keep_fds=prepared.keep_fds,
            exec_fd=prepared.exec_fd, proc_files=proc_files,
            parent_seen_as=parent_seen_as if prepared.die_with_parent else None)
    except BaseException as err:  # noqa: BLE001 - report, never return into the parent
        process_setup.report_and_exit(error_w, stage, err)
    process_setup.setup_and_exec(setup)


def _describe(err: Exception, plan: ProcessPlan) -> str:
    from runpy_exec.process_setup import ChildError

    if not isinstance(err, ChildError):
        return f"exec failed: {err}"
    reason = str(err)
    reason = reason[:1].lower() + reason[1:]
    if err.stage == "execve":
        return f"exec failed: {reason}"
    if err.stage == "exec":
        return f'exec failed: exec "{plan.args[0]}": {reason}'
    if err.stage == "cwd":
        return f'exec failed: chdir to cwd "{plan.cwd}": {reason}'
    return f"exec failed: {err.stage}: {reason}"


def _pipe_above(floor: int) -> tuple[int, int]:
    """A pipe whose fds are above every fd the child will move or keep."""
    r, w = os.pipe2(os.O_CLOEXEC)
    high_r = fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, floor)
    high_w = fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, floor)
    os.close(r)
    os.close(w)
    return high_r, high_w


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _wait(launched: Launched, timeout: float | None) -> int:
    return wait_for(launched.pid, launched.master_fd, timeout, launched.pidfd,
                    launched.forwarder)


class SignalForwarder:
    """Sends every signal pyrunc can catch on to the process, as runc does.

    Signals go through a pidfd, so one that arrives after the process was
    reaped cannot reach another process that reused its pid.

    Python runs a handler only between bytecodes: a signal that lands just
    before a blocking select would wait for that select to end, which for a
    process that ignores nothing else is never.  So every signal also writes
    to a wakeup pipe (``signal.set_wakeup_fd``), and the wait includes
    :attr:`wake_fd`.
    """

    def __init__(self, pidfd: int) -> None:
        self.pidfd = pidfd
        self._previous: dict[int, Any] = {}
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._previous_wakeup: int | None = None

    @property
    def wake_fd(self) -> int:
        return self._wake_r

    def install(self) -> None:
        self._previous_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in signal.valid_signals():
            if sig in _NOT_FORWARDED:
                continue
            try:  # noqa: SIM105 - contextlib is kept off exec's path
                self._previous[sig] = signal.signal(sig, self._forward)
            except (OSError, ValueError):
                pass  # a signal the kernel keeps for itself (SIGRTMIN's first few)

    def _forward(self, signum: int, _frame: object) -> None:
        try:  # noqa: SIM105 - contextlib is kept off exec's path
            signal.pidfd_send_signal(self.pidfd, signum)
        except OSError:
            pass  # it has exited: the wait sees that next

    def drain(self) -> None:
        """Empty the wakeup pipe; the handlers themselves have run by now."""
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        if self._previous_wakeup is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            self._previous_wakeup = None
        if self._wake_w >= 0:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1


def wait_for(pid: int, master_fd: int | None, timeout: float | None,
             pidfd: int | None = None, forwarder: SignalForwarder | None = None) -> int:
    """Relay signals (and the terminal) until ``pid`` exits; return its status.

    The status is the process's exit code, 128+N when killed by signal N, and
    124 when ``timeout`` seconds passed and pyrunc killed it.
    """
    if pidfd is None:
        pidfd = os.pidfd_open(pid)
    if forwarder is None:
        forwarder = SignalForwarder(pidfd)
        forwarder.install()
    try:
        timed_out = _wait_relaying(pidfd, forwarder, master_fd, timeout)
        _, status = os.waitpid(pid, 0)
    finally:
        forwarder.restore()
        os.close(pidfd)
    if timed_out:
        return TIMEOUT_STATUS
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _wait_relaying(pidfd: int, forwarder: SignalForwarder, master_fd: int | None,
                   timeout: float | None) -> bool:
    """Until the process exits; True when the deadline passed and it was killed.

    The relay watches one fd for "stop": an epoll set of the pidfd and the
    signal wakeup pipe, so a signal ends its wait as well as the exit does.
    """
    import select
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    either = select.epoll(2)
    either.register(pidfd, select.EPOLLIN)
    either.register(forwarder.wake_fd, select.EPOLLIN)
    try:
        with _TerminalRelay(master_fd) as relay:
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if relay is not None and not relay.hung_up:
                    relay.run_until(either.fileno(), remaining)
                else:
                    select.select([either.fileno()], [], [], remaining)
                forwarder.drain()
                if select.select([pidfd], [], [], 0)[0]:
                    return timed_out
                if deadline is not None and time.monotonic() >= deadline:
                    _kill(pidfd)
                    timed_out = True
                    deadline = None
    finally:
        either.close()


def _kill(pidfd: int) -> None:
    """SIGKILL the process behind ``pidfd``; one that has already exited is fine."""
    try:  # noqa: SIM105 - contextlib is kept off exec's path
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass


class _TerminalRelay:
    """The relay between our terminal and the process's, when pyrunc holds the master.

    When our stdin is a terminal it goes raw (every key, ^C included, is the
    process's to interpret), the pty takes its size, and follows it on
    SIGWINCH; everything is put back on the way out, and the master closed.
    (A class rather than a contextlib generator: contextlib's imports cost
    ~3 ms on every exec.)
    """

    def __init__(self, master_fd: int | None) -> None:
        self._master_fd = master_fd
        self._relay: Any = None
        self._raw: Any = None
        self._previous_winch: Any = None

    def __enter__(self) -> Any:
        if self._master_fd is None:
            return None
        from runpy_exec.linux import console

        relay = self._relay = console.Relay(self._master_fd)
        try:
            if os.isatty(0):
                raw = console.RawMode(0)
                raw.__enter__()
                self._raw = raw
                relay.resize_from(0)
                self._previous_winch = signal.signal(
                    signal.SIGWINCH, lambda _sig, _frame: relay.resize_from(0))
        except BaseException:
            self.__exit__()
            raise
        return relay

    def __exit__(self, *_exc_info: object) -> None:
        if self._relay is None or self._master_fd is None:
            return
        try:
            if self._raw is not None:
                self._raw.__exit__(None, None, None)
        finally:
            if self._previous_winch is not None:
                signal.signal(signal.SIGWINCH, self._previous_winch)
            self._relay.close()
            os.close(self._master_fd)
