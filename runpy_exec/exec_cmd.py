"""``pyrunc exec``: start a new process inside a running container.

load state -> resolve the process (pure) -> prepare fds and filters -> fork
-> the child joins the container and becomes the process -> the parent
reports pids, relays the terminal and signals, and exits with the status.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
from dataclasses import dataclass, field
from typing import Any

from runpy_exec import state
from runpy_exec.errors import PyruncError
from runpy_exec.plan import ProcessPlan
from runpy_exec.requests import ExecRequest, GlobalOptions

EXEC_ERROR = 255
TIMEOUT_STATUS = 124  # what coreutils' timeout(1) exits with; probes know it


@dataclass
class Launched:
    pid: int
    pidfd: int
    master_fd: int | None = None  # pty master when pyrunc relays the terminal
    fds_to_close: list[int] = field(default_factory=list)


def exec_(opts: GlobalOptions, req: ExecRequest) -> int:
    if req.tty and req.detach and not req.console_socket:
        raise PyruncError("cannot allocate tty if pyrunc will detach without setting "
                          "console socket", EXEC_ERROR)
    if req.console_socket and not _wants_terminal(req):
        raise PyruncError("--console-socket needs a terminal (--tty or terminal: true)", EXEC_ERROR)
    if req.detach:
        return _exec_detached(opts, req)
    launched = _launch(opts, req)
    _write_pid_files(req, launched.pid, launched.pid)
    return _wait(launched, req)


def _wants_terminal(req: ExecRequest) -> bool:
    # With --process the terminal comes from the file; checked after loading it.
    return req.tty or bool(req.process_file)


def _exec_detached(opts: GlobalOptions, req: ExecRequest) -> int:
    """runsc's way: a copy of pyrunc stays behind as the process's waiter.

    Its pid goes into --pid-file: once we exit it is reparented to the
    caller's subreaper (conmon, containerd's shim), which waits on it; it
    relays signals to the process and exits with the process's status.
    """
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    waiter = os.fork()
    if waiter == 0:
        os.close(ready_r)
        _run_waiter(opts, req, ready_w)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        report = ready.read()
    if report == b"ok":
        return 0
    os.waitpid(waiter, 0)
    message = report[len(b"error:"):].decode(errors="replace") if report.startswith(
        b"error:") else "exec failed: the waiting process died before the process started"
    raise PyruncError(message, EXEC_ERROR)


def _run_waiter(opts: GlobalOptions, req: ExecRequest, ready_w: int) -> None:
    status = EXEC_ERROR
    try:
        try:
            launched = _launch(opts, req)
            _write_pid_files(req, launched.pid, os.getpid())
        except PyruncError as err:
            os.write(ready_w, b"error:" + str(err).encode())
            os._exit(EXEC_ERROR)
        os.write(ready_w, b"ok")
        os.close(ready_w)
        status = _wait(launched, req)
    finally:
        os._exit(status)


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
    if status == "paused" and not req.ignore_paused:
        raise PyruncError("cannot exec in a paused container (use --ignore-paused to override)",
                          EXEC_ERROR)
    return container


def _resolve_plan(opts: GlobalOptions, req: ExecRequest, container: state.Container) -> ProcessPlan:
    from runpy_exec import containerfs, resolve, validate
    from runpy_exec.linux import capabilities

    root = f"/proc/{container.init_pid}/root"
    passwd = containerfs.read_container_file(root, "/etc/passwd")
    group = containerfs.read_container_file(root, "/etc/group")
    container_process: dict[str, Any] = validate.check_process(
        container.config.get("process") or {}, "config.json: process")
    if req.process_file:
        process = validate.load_process_fast(req.process_file)
        return resolve.resolve_process_file(
            process, container_process, passwd, group, opts.net_raw,
            capabilities.last_cap(), req)
    return resolve.resolve_exec(
        container_process, req, passwd, group, opts.net_raw, capabilities.last_cap())


def _launch(opts: GlobalOptions, req: ExecRequest) -> Launched:
    from runpy_exec.linux import cgroups, namespaces

    container = _load_running(opts, req)
    plan = _resolve_plan(opts, req, container)
    if req.console_socket and not plan.terminal:
        raise PyruncError("--console-socket needs a terminal (--tty or terminal: true)",
                          EXEC_ERROR)
    prepared = _Prepared()
    try:
        prepared.check_fds(req)
        prepared.cgroup_fds = cgroups.open_procs_fds(_cgroup_paths(container, req))
        prepared.namespaces = namespaces.open_namespaces(
            container.init_pid, sorted(container.namespace_paths))
        prepared.seccomp = _prepare_seccomp(container)
        if plan.terminal and req.console_socket:
            prepared.console = _connect_console(req.console_socket)
        return _fork_into_container(plan, req, prepared)
    finally:
        prepared.close()


def _cgroup_paths(container: state.Container, req: ExecRequest) -> dict[str, str]:
    from runpy_exec import resolve
    from runpy_exec.linux import cgroups

    paths = dict(container.cgroup_paths)
    for value in req.cgroups:
        controllers, subpath = resolve.validate_cgroup_subpath(value)
        sub = cgroups.sub_paths(container.cgroup_paths, controllers, subpath)
        missing = [p for p in sub.values() if not os.path.isdir(p)]
        if missing:
            raise PyruncError(f"--cgroup {value}: no such cgroup {missing[0]}", EXEC_ERROR)
        paths.update(sub)
    return paths


def _prepare_seccomp(container: state.Container) -> Any:
    profile = (container.config.get("linux") or {}).get("seccomp")
    if not profile:
        return None
    from runpy_exec.linux import seccomp

    try:
        return seccomp.prepare(profile)
    except (OSError, ValueError) as err:
        raise PyruncError(f"config.json: linux.seccomp: {err}", EXEC_ERROR) from None


def _connect_console(path: str) -> socket.socket:
    """Connect before anything starts, so a dead socket leaves no process behind."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise PyruncError(f"console socket {path}: {_reason(err)}", EXEC_ERROR) from None
    return sock


def _reason(err: OSError) -> str:
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]


@dataclass
class _Prepared:
    """Fds opened before fork; the parent closes all of them once the child has them."""

    cgroup_fds: list[int] = field(default_factory=list)
    namespaces: list[tuple[str, int]] = field(default_factory=list)
    seccomp: Any = None
    console: socket.socket | None = None
    fd_moves: list[tuple[int, int]] = field(default_factory=list)
    keep_fds: frozenset[int] = frozenset()
    exec_fd: int | None = None

    def check_fds(self, req: ExecRequest) -> None:
        from runpy_exec import resolve

        keep = set(range(3, 3 + req.preserve_fds))
        for fd in keep:
            if not _fd_open(fd):
                raise PyruncError(f"--preserve-fds {req.preserve_fds}: fd {fd} is not open",
                                  EXEC_ERROR)
        for value in req.pass_fds:
            source, target = resolve.parse_pass_fd(value)
            if not _fd_open(source):
                raise PyruncError(f"--pass-fd {value}: fd {source} is not open", EXEC_ERROR)
            self.fd_moves.append((source, target))
            keep.add(target)
        if req.exec_fd is not None:
            if not _fd_open(req.exec_fd):
                raise PyruncError(f"--exec-fd {req.exec_fd}: fd is not open", EXEC_ERROR)
            self.exec_fd = req.exec_fd
        self.keep_fds = frozenset(keep)

    def close(self) -> None:
        for fd in self.cgroup_fds:
            os.close(fd)
        for _, fd in self.namespaces:
            os.close(fd)
        self.cgroup_fds, self.namespaces = [], []
        if self.console is not None:
            self.console.close()
            self.console = None


def _fd_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def _fork_into_container(plan: ProcessPlan, req: ExecRequest, prepared: _Prepared) -> Launched:
    from runpy_exec import process_setup

    floor = max([2, *prepared.keep_fds, *(src for src, _ in prepared.fd_moves)]) + 1
    error_r, error_w = _pipe_above(floor)
    pty_parent, pty_child = (socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                             if plan.terminal else (None, None))
    pid_ns = dict(prepared.namespaces).get("pid")
    if pid_ns is not None:
        # pid_for_children only: pyrunc itself stays in the host pid namespace,
        # its next child is born inside the container's.
        from runpy_exec.linux.syscalls import CLONE_NEWPID, setns

        setns(pid_ns, CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:
        try:
            import prctl

            # CVE-2016-9962: while this process sits in the container's
            # namespaces holding host fds, nothing in the container may ptrace
            # it or open its /proc/<pid>/fd.  execve resets dumpable.
            prctl.set_dumpable(0)
            for fd in prepared.cgroup_fds:
                os.write(fd, b"0")
            from runpy_exec.linux import namespaces

            namespaces.join([(kind, fd) for kind, fd in prepared.namespaces if kind != "pid"])
            if pty_child is not None:
                process_setup.become_terminal_owner(plan.console_size, pty_child)
            setup = process_setup.ChildSetup(
                plan=plan, error_fd=error_w, seccomp_filter=prepared.seccomp,
                fd_moves=prepared.fd_moves, keep_fds=prepared.keep_fds,
                exec_fd=prepared.exec_fd)
        except BaseException as err:  # noqa: BLE001 - report, never return into the parent
            process_setup.report_and_exit(error_w, "join container", err)
        process_setup.setup_and_exec(setup)
    os.close(error_w)
    pidfd = os.pidfd_open(pid)
    master_fd = None
    if pty_parent is not None and pty_child is not None:
        pty_child.close()
        master_fd = _receive_master(pty_parent)
    error = _read_all(error_r)
    os.close(error_r)
    if error:
        os.waitpid(pid, 0)
        os.close(pidfd)
        if master_fd is not None:
            os.close(master_fd)
        child_error = process_setup.decode_error(error)
        raise PyruncError(_describe(child_error, plan), EXEC_ERROR)
    if master_fd is not None and prepared.console is not None:
        from runpy_exec.linux import console

        console.send_fd(prepared.console, master_fd)
        os.close(master_fd)
        master_fd = None
    return Launched(pid=pid, pidfd=pidfd, master_fd=master_fd)


def _describe(err: Exception, plan: ProcessPlan) -> str:
    from runpy_exec.process_setup import ChildError

    if not isinstance(err, ChildError):
        return f"exec failed: {err}"
    reason = str(err)
    reason = reason[:1].lower() + reason[1:]
    if err.stage == "exec":
        return f"exec failed: exec {plan.args[0]!r}: {reason}"
    if err.stage == "cwd":
        return f"exec failed: chdir to cwd {plan.cwd!r}: {reason}"
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


def _receive_master(channel: socket.socket) -> int | None:
    with channel:
        try:
            _, fds, _, _ = socket.recv_fds(channel, 64, 1)
        except OSError:
            return None
    return fds[0] if fds else None


def _wait(launched: Launched, req: ExecRequest) -> int:
    timeout = None
    if req.timeout:
        from runpy_exec import resolve

        timeout = resolve.parse_duration(req.timeout)
    return wait_for(launched.pid, launched.master_fd, timeout, launched.pidfd)


def wait_for(pid: int, master_fd: int | None, timeout: float | None,
             pidfd: int | None = None) -> int:
    """Relay signals (and the terminal) until ``pid`` exits; return its status.

    The status is the process's exit code, 128+N when killed by signal N, and
    124 when ``timeout`` seconds passed and pyrunc killed it.
    """
    import select
    import time

    if pidfd is None:
        pidfd = os.pidfd_open(pid)
    deadline = None if timeout is None else time.monotonic() + timeout
    _forward_signals(pid)
    timed_out = False
    relay = None
    if master_fd is not None:
        from runpy_exec.linux import console

        relay = console.Relay(master_fd)
    try:
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if relay is not None:
                done = relay.run_until(pidfd, remaining)
            else:
                done = bool(select.select([pidfd], [], [], remaining)[0])
            if done:
                break
            if deadline is not None and time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                timed_out = True
                deadline = None
    finally:
        if relay is not None:
            relay.close()
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    if timed_out:
        return TIMEOUT_STATUS
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _forward_signals(pid: int) -> None:
    """Every signal pyrunc can catch goes to the process, as runc does."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    skip = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH}
    for sig in signal.valid_signals():
        if sig not in skip:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, forward)
