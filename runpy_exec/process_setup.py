"""The child side of starting a container process, shared by ``create`` and ``exec``.

Modules are imported at the top, not where used: ``create``'s init runs this
code after pivot_root, where the interpreter's own files are out of reach.

CPython's ``subprocess`` discipline: the parent prepares everything before
``fork`` (a :class:`ProcessPlan` of plain numbers, open fds, a built seccomp
filter); the child only makes syscalls, in a fixed order, and reports the
first failure to the parent over a close-on-exec pipe.  If ``execve``
succeeds, the pipe closes with nothing written and the parent knows.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import stat
import sys

from runpy_exec.errors import PyruncError, describe
from runpy_exec.linux import capabilities, procctl, procfs, syscalls
from runpy_exec.plan import ProcessPlan
from runpy_exec.records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    # signal.py wraps these C functions to return IntEnums, and importing enum
    # costs ~3 ms on every exec; _signal is the same functions on plain ints.
    import _signal as signal
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, NoReturn, TypeVar

# Between the fields of an error record: stage, errno, message.
_ERROR_SEPARATOR = b"\0"
# CPython ignores these at start-up; an ignored signal stays ignored across
# execve, so the process would never see a broken pipe or a file size limit.
_PYTHON_IGNORED = (signal.SIGPIPE, signal.SIGXFSZ)
_TIOCSCTTY = 0x540E
# close_range errors that mean "not here": an old kernel, or a seccomp profile.
_CLOSE_RANGE_REFUSED = (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.EACCES)
# A CPU mask that names every CPU the kernel may have (it ignores numbers past
# its own count); computed here, before fork, while /sys is the host's.
_EVERY_CPU = frozenset(range(max(1024, os.cpu_count() or 1)))

_made_terminal = False  # set by become_terminal_owner: stdio is a pty this process opened

if TYPE_CHECKING:
    T = TypeVar("T")


class ProcFiles:
    """/proc/self files the child writes, opened while /proc is still the host's.

    Once the child has joined the container's mount namespace, /proc is
    whatever the container mounted there: a container that can mount could
    shadow attr/exec and run the process without its LSM profile
    (CVE-2019-16884).  fds opened before the join refer to the real files.
    """

    def __init__(self) -> None:
        self.oom_score_adj: int | None = None
        self.lsm_exec: int | None = None


class ChildSetup(NamedTuple):
    """Everything the child needs that cannot be derived after fork without risk.

    A named tuple, not a dataclass: this module is on exec's hot path.
    """

    plan: ProcessPlan
    error_fd: int
    seccomp_filter: Any = None  # a prepared seccomp.Filter, loaded in the child
    fd_moves: tuple[tuple[int, int], ...] = ()  # (host fd, target fd)
    keep_fds: frozenset[int] = frozenset()  # fds >= 3 that survive into the process
    exec_fd: int | None = None  # execute the file open on this fd (fexecve)
    verify_cwd_inside: bool = True
    proc_files: ProcFiles | None = None  # None: open them where the child stands
    # Set for a detached exec: our parent's pid as we saw it right after fork.
    # The process then dies with its waiter (see _die_with_parent).
    parent_seen_as: int | None = None


class ChildError(Exception):
    """A failure in the child, carried to the parent as (stage, errno, message)."""

    def __init__(self, stage: str, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.stage = stage
        self.errno = errno


def prepare_seccomp(spec: dict[str, Any], state_dir: str | None = None,
                    cache_dir: str | None = None) -> Any:
    """Build the container's seccomp filter before fork (create and exec alike),
    or None without a profile; pyseccomp is imported only to compile one.

    exec passes the container's state directory: the BPF program create kept
    there is loaded as it is, and the profile is compiled again only for a
    container without one (one with a user-space listener, or made by runc).
    create passes the cache of programs compiled for earlier containers
    (see ``seccomp.compiled``).
    """
    profile = (spec.get("linux") or {}).get("seccomp")
    if not profile:
        return None
    from runpy_exec.linux import seccomp

    try:
        code = seccomp.kept_program(state_dir) if state_dir is not None else None
        if code is not None:
            return seccomp.from_program(code, profile)
        if cache_dir is not None:
            return seccomp.compiled(profile, cache_dir)
        return seccomp.prepare(profile)
    except (OSError, ValueError) as err:
        raise PyruncError(f"config.json: linux.seccomp: {err}") from None


def encode_error(stage: str, errno: int, message: str) -> bytes:
    return _ERROR_SEPARATOR.join([stage.encode(), str(errno).encode(), message.encode()])


def decode_error(data: bytes) -> ChildError:
    try:
        stage, errno, message = data.split(_ERROR_SEPARATOR, 2)
        return ChildError(stage.decode(), message.decode(errors="replace"), int(errno))
    except ValueError:
        return ChildError("child", data.decode(errors="replace"))



def report_and_exit(error_fd: int, stage: str, err: BaseException) -> NoReturn:
    """Tell the parent why the child failed, then leave without running parent cleanup."""
    if isinstance(err, ChildError):
        stage = err.stage
    code = getattr(err, "errno", 0) or 0
    try:
        os.write(error_fd, encode_error(stage, code, describe(err)))
    finally:
        os._exit(255)


def reset_signals(mask: Iterable[int] | None = None) -> None:
    """Give the process the dispositions it would have had without Python in between.

    SIGINT goes back to the default only where Python installed its own
    handler: a caller that ignores it (a background job) passes that on, as
    runc does.  ``mask`` is the signal mask the parent had before it blocked
    everything around fork.
    """
    for sig in _PYTHON_IGNORED:
        signal.signal(sig, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def open_proc_files(plan: ProcessPlan, proc_root: int | None = None) -> ProcFiles:
    """Open what :func:`setup_and_exec` will write under /proc/self (see :class:`ProcFiles`).

    ``proc_root`` is a procfs handle to open them through (create's init has
    its own, see :mod:`runpy_exec.linux.procfs`); without one, /proc itself,
    which must then still be the host's.
    """
    files = ProcFiles()
    flags = os.O_WRONLY | os.O_CLOEXEC

    def open_self(name: str) -> int:
        if proc_root is None:
            return os.open(f"/proc/self/{name}", flags)
        return procfs.open_file(proc_root, f"self/{name}", flags)

    if plan.oom_score_adj is not None:
        files.oom_score_adj = open_self("oom_score_adj")
    if plan.apparmor_profile:
        if not _apparmor_enabled():
            raise ChildError("apparmor", f"apparmor profile {plan.apparmor_profile!r} requested "
                             "but AppArmor is not enabled on this host")
        files.lsm_exec = open_self("attr/apparmor/exec")
    elif plan.selinux_label:
        if not os.path.isdir("/sys/fs/selinux"):
            raise ChildError("selinux", f"process label {plan.selinux_label!r} requested "
                             "but SELinux is not enabled on this host")
        files.lsm_exec = open_self("attr/exec")
    return files


def _step(stage: str, action: Callable[[], T]) -> T:
    try:
        return action()
    except ChildError:
        raise
    except OSError as err:
        raise ChildError(stage, describe(err), err.errno or 0) from None
    except Exception as err:  # noqa: BLE001 - every failure must reach the parent
        raise ChildError(stage, str(err)) from None


def _move_fds(moves: tuple[tuple[int, int], ...], floor: int) -> None:
    """dup every source above all targets first, so a move never clobbers another's source."""
    staged = [(_dup_above(src, floor), dst) for src, dst in moves]
    for tmp, dst in staged:
        os.dup2(tmp, dst, inheritable=True)
        os.close(tmp)


def _dup_above(fd: int, floor: int) -> int:
    """A close-on-exec copy of ``fd`` at ``floor`` or above, out of the way of fd moves."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)


def _close_other_fds(keep: frozenset[int]) -> None:
    """Mark every fd >= 3 close-on-exec except those the process was promised.

    CVE-2016-9962 / CVE-2024-21626: a host fd that reaches the container
    process (or is reachable through /proc/self/fd while we sit in its
    namespaces) lets it walk the host filesystem.  Marking them CLOEXEC rather
    than closing keeps the error pipe usable until execve.

    close_range(CLOSE_RANGE_CLOEXEC) does it in one call where the kernel
    has it (5.11); elsewhere, or when something refuses it, each open fd is
    marked with fcntl.
    """
    for fd in keep:
        if fd >= 3:
            os.set_inheritable(fd, True)
    try:
        for first, last in _ranges_outside(keep):
            syscalls.close_range(first, last, syscalls.CLOSE_RANGE_CLOEXEC)
    except OSError as err:
        if err.errno not in _CLOSE_RANGE_REFUSED:
            raise
        for fd in _open_fds():
            if fd >= 3 and fd not in keep:
                _set_cloexec(fd)


def close_fds_except(keep: Iterable[int]) -> None:
    """Close every fd >= 3 not in ``keep``: what a caller happened to have open
    (and what we opened on the host) must not sit in a container's init."""
    kept = frozenset(keep)
    try:
        for first, last in _ranges_outside(kept):
            syscalls.close_range(first, last)
    except OSError as err:
        if err.errno not in _CLOSE_RANGE_REFUSED:
            raise
        for fd in _open_fds():
            if fd >= 3 and fd not in kept:
                try:  # noqa: SIM105 - contextlib is kept off exec's path
                    os.close(fd)
                except OSError:
                    pass


def _ranges_outside(keep: frozenset[int]) -> list[tuple[int, int]]:
    """The (first, last) fd ranges from 3 up that hold no fd of ``keep``."""
    ranges = []
    start = 3
    for fd in sorted(keep):
        if fd >= start:
            if fd > start:
                ranges.append((start, fd - 1))
            start = fd + 1
    ranges.append((start, 0xFFFFFFFF))
    return ranges


def _open_fds() -> list[int]:
    """The fds open in this process: /proc/self/fd when it can be read, else
    every number below the fd limit (slow, but never misses one)."""
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(resource.getrlimit(resource.RLIMIT_NOFILE)[0]))


def _set_cloexec(fd: int) -> None:
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError as err:
        if err.errno == errno.EBADF:
            return  # not open, or the listing's own fd, closed since
        raise
    if not flags & fcntl.FD_CLOEXEC:
        fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)


def apply_rlimits(plan: ProcessPlan) -> None:
    for limit in plan.rlimits:
        resource.setrlimit(limit.resource, (limit.soft, limit.hard))


def _write_proc(fd: int, text: str) -> None:
    os.write(fd, text.encode())
    os.close(fd)


def _apply_lsm_label(plan: ProcessPlan, fd: int) -> None:
    """Labels apply at the next execve; a missing LSM was refused when the file was opened."""
    if plan.apparmor_profile:
        _write_proc(fd, f"exec {plan.apparmor_profile}")
    elif plan.selinux_label:
        _write_proc(fd, plan.selinux_label)


def _apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def _apply_scheduling(plan: ProcessPlan) -> None:
    if plan.scheduler is not None:
        sched = plan.scheduler
        os.sched_setscheduler(0, sched.policy, os.sched_param(sched.priority))
        if sched.nice:
            os.setpriority(os.PRIO_PROCESS, 0, sched.nice)
    if plan.io_priority is not None:
        syscalls.ioprio_set(plan.io_priority.ioprio_class, plan.io_priority.priority)
    # runc#4814: without this the process keeps the CPU mask of whoever ran
    # pyrunc (an engine pinned to one CPU pins every container process).
    # Asking for every CPU gets the container cgroup's cpuset: the kernel
    # intersects the request with it.  We are in that cgroup by now.
    os.sched_setaffinity(0, plan.cpu_affinity_initial or _EVERY_CPU)


def _own_stdio(uid: int) -> None:
    """Give the process's user its stdio, as runc does, so it can reopen /dev/stdout.

    Only what is the process's alone: the pty made for it, and pipes or
    sockets.  Unlike runc, a host terminal or file that the caller handed
    over keeps its owner: a container user must not gain a host file.
    /dev/null stays root's, or every later open of it would be the user's.
    Failures that only mean "not ours to change" are ignored, as in runc.
    """
    for fd in (0, 1, 2):
        try:
            info = os.fstat(fd)
        except OSError:
            continue
        mode = info.st_mode
        ours = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (
            _made_terminal and stat.S_ISCHR(mode) and os.isatty(fd))
        if not ours or info.st_uid == uid:
            continue
        try:
            os.fchown(fd, uid, -1)
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
                raise


def _change_user(plan: ProcessPlan) -> None:
    """Bounding first (needs CAP_SETPCAP), keep caps across setuid, then the ids."""
    if plan.capabilities is not None:
        capabilities.apply_bounding(plan.capabilities.bounding)
        capabilities.keep_caps_across_setuid(True)
    os.setgroups(list(plan.additional_gids))
    os.setresgid(plan.gid, plan.gid, plan.gid)
    os.setresuid(plan.uid, plan.uid, plan.uid)


def _enter_cwd_early(cwd: str, verify_inside: bool) -> bool:
    """chdir while still root, as runc does: the process may start in a directory
    that only the runtime can enter.  False when only its user may enter it."""
    try:
        _enter_cwd(cwd, verify_inside)
    except ChildError as err:
        if err.errno in (errno.EACCES, errno.EPERM):
            return False
        raise
    return True


def _enter_cwd(cwd: str, verify_inside: bool) -> None:
    try:
        os.chdir(cwd)
    except OSError as err:
        raise ChildError("cwd", (err.strerror or str(err)).lower(), err.errno or 0) from None
    if verify_inside:
        _check_cwd_inside(cwd)


def _check_cwd_inside(cwd: str) -> None:
    """CVE-2024-21626: a cwd reached through a leaked host fd (/proc/self/fd/N)
    lies outside the container's root; getcwd then fails (ENOENT) or answers
    a path that is not absolute."""
    try:
        where = os.getcwd()
    except FileNotFoundError:
        where = ""
    if not where.startswith("/"):
        raise ChildError("cwd", "it is outside the container's root filesystem", errno.ENOENT)


def _apply_capabilities(plan: ProcessPlan) -> None:
    if plan.capabilities is not None:
        capabilities.apply_sets(plan.capabilities)
        capabilities.keep_caps_across_setuid(False)


def _load_seccomp(setup: ChildSetup) -> None:
    from runpy_exec.linux import seccomp

    seccomp.load(setup.seccomp_filter)


def find_program(plan: ProcessPlan) -> str:
    """The file execve will run: ``args[0]`` when it names a path, else the first
    executable of that name on the process's own $PATH, as runc looks it up.

    Done here rather than by execvpe so that "not found" is told apart from a
    found file that fails to execute, and said in one line.  Public so that
    ``create`` can refuse a missing program before the container is started.
    Raises :class:`ChildError` (stage "exec").
    """
    name = plan.args[0]
    if "/" in name:
        _check_executable(name)
        return name
    env = dict(entry.split("=", 1) for entry in plan.env)
    denied = False
    for directory in env.get("PATH", "").split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            _check_executable(candidate)
        except ChildError as err:
            denied = denied or err.errno == errno.EACCES
            continue
        return candidate
    if denied:
        raise ChildError("exec", "permission denied", errno.EACCES)
    raise ChildError("exec", "executable file not found in $PATH", errno.ENOENT)


def _check_executable(path: str) -> None:
    try:
        info = os.stat(path)
    except OSError as err:
        raise ChildError("exec", (err.strerror or str(err)).lower(), err.errno or 0) from None
    if stat.S_ISDIR(info.st_mode):
        raise ChildError("exec", "is a directory", errno.EISDIR)
    # Effective ids and capabilities, as execve judges: a user with
    # CAP_DAC_OVERRIDE may run a file only its owner may execute.
    if not (stat.S_ISREG(info.st_mode) and os.access(path, os.X_OK, effective_ids=True)):
        raise ChildError("exec", "permission denied", errno.EACCES)


def _exec(plan: ProcessPlan, program: str | int) -> NoReturn:
    """``program`` is a path, or an fd to run with fexecve.

    A failure is stage "execve", worded as runc words it ("exec /run.sh: no
    such file or directory" for a script whose interpreter is missing), apart
    from the lookup failures of :func:`find_program`.
    """
    env = dict(entry.split("=", 1) for entry in plan.env)
    try:
        os.execve(program, plan.args, env)
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        raise ChildError("execve", f"exec {plan.args[0]}: {reason}", err.errno or 0) from None


def _die_with_parent(parent_seen_as: int) -> None:
    """SIGKILL us when the parent dies; set last, since any change of
    credentials (setuid, capset) clears it.  If the parent is already gone,
    we have been reparented and must not start at all."""
    procctl.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent_seen_as:
        raise ChildError("parent death signal", "the waiting pyrunc died before the start")


def setup_and_exec(setup: ChildSetup,
                   wait_for_start: Callable[[], int] | None = None) -> NoReturn:
    """Become the container process described by ``setup.plan``; never returns.

    Order (runc's): limits and scores while still root; fds (before any
    filter: close_range may be denied by a profile older than it);
    no_new_privs; seccomp early only without no_new_privs (loading needs
    CAP_SYS_ADMIN then); stdio ownership; cwd while still root when allowed; bounding set, user
    and groups; cwd again as the user if root was refused; the other
    capability sets; seccomp last with no_new_privs so the filter need not
    allow the setup syscalls; execve.

    ``wait_for_start`` is create's init waiting for ``start``: called once,
    just before a seccomp filter goes in, or before execve when there is
    none.  What comes before it is done, and fails, at create, as runc does
    all of it; what it needs (the exec fifo, startContainer hooks) never runs
    under the container's filter, which may deny it.  It returns the fd that
    failures are reported on from then on.
    """
    plan = setup.plan
    error_fd = setup.error_fd
    try:
        _step("signals", reset_signals)
        files = setup.proc_files
        if files is None:
            files = _step("proc", lambda: open_proc_files(plan))
        _step("rlimits", lambda: apply_rlimits(plan))
        if files.oom_score_adj is not None:
            oom_fd = files.oom_score_adj
            _step("oom_score_adj", lambda: _write_proc(oom_fd, str(plan.oom_score_adj)))
        _step("scheduling", lambda: _apply_scheduling(plan))
        if files.lsm_exec is not None:
            lsm_fd = files.lsm_exec
            _step("lsm", lambda: _apply_lsm_label(plan, lsm_fd))
        # fds before any filter: close_range is newer than many profiles
        # (older Docker default profiles deny it), and nothing after the filter
        # may depend on a syscall the profile can deny.
        floor = max([2, *(dst for _, dst in setup.fd_moves), *setup.keep_fds]) + 1
        exec_fd = setup.exec_fd
        if exec_fd is not None:
            source = exec_fd
            exec_fd = _step("fds", lambda: _dup_above(source, floor))
        _step("fds", lambda: _move_fds(setup.fd_moves, floor))
        _step("fds", lambda: _close_other_fds(setup.keep_fds))
        if plan.no_new_privileges:
            _step("no_new_privs", procctl.set_no_new_privs)
        if setup.seccomp_filter is not None and not plan.no_new_privileges:
            if wait_for_start is not None:
                error_fd, wait_for_start = wait_for_start(), None
            _step("seccomp", lambda: _load_seccomp(setup))
        _step("stdio", lambda: _own_stdio(plan.uid))
        entered = _step("cwd", lambda: _enter_cwd_early(plan.cwd, setup.verify_cwd_inside))
        _step("user", lambda: _change_user(plan))
        if plan.umask is not None:
            os.umask(plan.umask)
        if not entered:
            _step("cwd", lambda: _enter_cwd(plan.cwd, setup.verify_cwd_inside))
        _step("capabilities", lambda: _apply_capabilities(plan))
        # Looked up as the process's user, before a late seccomp filter that
        # need not allow stat and access.
        program = exec_fd if exec_fd is not None else _step("exec", lambda: find_program(plan))
        if wait_for_start is not None:
            error_fd = wait_for_start()
        if setup.seccomp_filter is not None and plan.no_new_privileges:
            _step("seccomp", lambda: _load_seccomp(setup))
        if plan.cpu_affinity_final:
            final = plan.cpu_affinity_final
            _step("cpu affinity", lambda: os.sched_setaffinity(0, final))
        if setup.parent_seen_as is not None:
            seen_as = setup.parent_seen_as
            _step("parent death signal", lambda: _die_with_parent(seen_as))
        _step("exec", lambda: _exec(plan, program))
    except ChildError as err:
        try:
            os.write(error_fd, encode_error(err.stage, err.errno, str(err)))
        finally:
            os._exit(255)
    except BaseException as err:  # noqa: BLE001 - never fall back into the parent's code
        report_and_exit(error_fd, "setup", err)
    os._exit(255)


def become_terminal_owner(console_size: tuple[int, int] | None, channel: Any) -> None:
    """Open the pty inside the container's /dev/pts (so ttyname() works in there),
    hand the master to the parent over ``channel``, and make the replica our
    controlling terminal and stdio.

    Only a terminal process needs the console module (and termios), so it is
    not imported for every exec; but this runs in the container's mount
    namespace, where an import would load the container's files as code.  The
    module is taken from those the parent loaded (it made ``channel``), and a
    missing one fails here rather than being imported.
    """
    global _made_terminal
    console = sys.modules["runpy_exec.linux.console"]

    replica = console.open_pty_for_parent(channel, console_size)
    os.setsid()
    fcntl.ioctl(replica, _TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(replica, target)
    if replica > 2:
        os.close(replica)
    _made_terminal = True
