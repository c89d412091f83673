"""The child side of starting a container process, shared by ``create`` and ``exec``.

CPython's ``subprocess`` discipline: the parent prepares everything before
``fork`` (a :class:`ProcessPlan` of plain numbers, open fds, a built seccomp
filter); the child only makes syscalls, in a fixed order, and reports the
first failure to the parent over a close-on-exec pipe.  If ``execve``
succeeds, the pipe closes with nothing written and the parent knows.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from runpy_exec.plan import ProcessPlan

# Stages named in error messages so a failure says what the runtime was doing.
_ERROR_SEPARATOR = b"\0"


@dataclass
class ChildSetup:
    """Everything the child needs that cannot be derived after fork without risk."""

    plan: ProcessPlan
    error_fd: int
    seccomp_filter: Any = None  # a prepared pyseccomp filter, loaded in the child
    fd_moves: list[tuple[int, int]] = field(default_factory=list)  # (host fd, target fd)
    keep_fds: frozenset[int] = frozenset()  # fds >= 3 that survive into the process
    exec_fd: int | None = None  # execute the file open on this fd (fexecve)
    verify_cwd_inside: bool = True
    plain_errors: bool = False  # after `start` nobody reads the pipe: say it on stderr


class ChildError(Exception):
    """A failure in the child, carried to the parent as (stage, errno, message)."""

    def __init__(self, stage: str, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.stage = stage
        self.errno = errno


def encode_error(stage: str, errno: int, message: str) -> bytes:
    return _ERROR_SEPARATOR.join([stage.encode(), str(errno).encode(), message.encode()])


def decode_error(data: bytes) -> ChildError:
    try:
        stage, errno, message = data.split(_ERROR_SEPARATOR, 2)
        return ChildError(stage.decode(), message.decode(errors="replace"), int(errno))
    except ValueError:
        return ChildError("child", data.decode(errors="replace"))


def describe(err: BaseException) -> str:
    """An OSError as "reason: path" (the call name is in the reason for our ctypes calls)."""
    if isinstance(err, OSError) and err.strerror:
        if err.filename is not None:
            return f"{os.fsdecode(err.filename)}: {err.strerror}"
        return err.strerror
    return str(err) or type(err).__name__


def report_and_exit(error_fd: int, stage: str, err: BaseException) -> NoReturn:
    """Tell the parent why the child failed, then leave without running parent cleanup."""
    errno = getattr(err, "errno", 0) or 0
    message = describe(err)
    try:
        os.write(error_fd, encode_error(stage, errno, message))
    finally:
        os._exit(255)


def _step(stage: str, action: Callable[[], None]) -> None:
    try:
        action()
    except ChildError:
        raise
    except OSError as err:
        raise ChildError(stage, describe(err), err.errno or 0) from None
    except Exception as err:  # noqa: BLE001 - every failure must reach the parent
        raise ChildError(stage, str(err)) from None


def _move_fds(moves: list[tuple[int, int]]) -> None:
    """dup every source above all targets first, so a move never clobbers another's source."""
    if not moves:
        return
    floor = max(max(src for src, _ in moves), max(dst for _, dst in moves)) + 1
    staged = [(os.dup2(src, floor + i, inheritable=False), dst)
              for i, (src, dst) in enumerate(moves)]
    for tmp, dst in staged:
        os.dup2(tmp, dst, inheritable=True)
        os.close(tmp)


def _close_other_fds(keep: frozenset[int]) -> None:
    """Mark every fd >= 3 close-on-exec except those the process was promised.

    CVE-2016-9962 / CVE-2024-21626: a host fd that reaches the container
    process (or is reachable through /proc/self/fd while we sit in its
    namespaces) lets it walk the host filesystem.  Marking them CLOEXEC rather
    than closing keeps the error pipe usable until execve.
    """
    from runpy_exec.linux.syscalls import CLOSE_RANGE_CLOEXEC, close_range

    start = 3
    for fd in sorted(keep):
        if fd >= start:
            if fd > start:
                close_range(start, fd - 1, CLOSE_RANGE_CLOEXEC)
            os.set_inheritable(fd, True)
            start = fd + 1
    close_range(start, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC)


def _apply_rlimits(plan: ProcessPlan) -> None:
    for limit in plan.rlimits:
        resource.setrlimit(limit.resource, (limit.soft, limit.hard))


def _apply_oom_score_adj(value: int) -> None:
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(value))


def _apply_lsm_label(plan: ProcessPlan) -> None:
    """Labels apply at the next execve; a missing LSM is an error, never silently skipped."""
    if plan.apparmor_profile:
        if not _apparmor_enabled():
            raise ChildError("apparmor", f"apparmor profile {plan.apparmor_profile!r} requested "
                             "but AppArmor is not enabled on this host")
        with open("/proc/self/attr/apparmor/exec", "w") as f:
            f.write(f"exec {plan.apparmor_profile}")
    if plan.selinux_label:
        if not os.path.isdir("/sys/fs/selinux"):
            raise ChildError("selinux", f"process label {plan.selinux_label!r} requested "
                             "but SELinux is not enabled on this host")
        with open("/proc/self/attr/exec", "w") as f:
            f.write(plan.selinux_label)


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
        from runpy_exec.linux.syscalls import ioprio_set

        ioprio_set(plan.io_priority.ioprio_class, plan.io_priority.priority)
    if plan.cpu_affinity_initial:
        os.sched_setaffinity(0, plan.cpu_affinity_initial)


def _change_user(plan: ProcessPlan) -> None:
    """Bounding first (needs CAP_SETPCAP), keep caps across setuid, then the ids."""
    from runpy_exec.linux import capabilities

    if plan.capabilities is not None:
        capabilities.apply_bounding(plan.capabilities.bounding)
        capabilities.keep_caps_across_setuid(True)
    os.setgroups(list(plan.additional_gids))
    os.setresgid(plan.gid, plan.gid, plan.gid)
    os.setresuid(plan.uid, plan.uid, plan.uid)


def _enter_cwd(cwd: str, verify_inside: bool) -> None:
    os.chdir(cwd)
    if verify_inside:
        # CVE-2024-21626: a cwd reached through a leaked host fd
        # (/proc/self/fd/N) lies outside the container's root; getcwd then
        # fails (ENOENT) or answers a path that is not absolute.
        try:
            where = os.getcwd()
        except FileNotFoundError:
            where = ""
        if not where.startswith("/"):
            raise ChildError("cwd", f"cwd {cwd!r} is outside the container root", 2)


def _apply_capabilities(plan: ProcessPlan) -> None:
    from runpy_exec.linux import capabilities

    if plan.capabilities is not None:
        capabilities.apply_sets(plan.capabilities)
        capabilities.keep_caps_across_setuid(False)


def _load_seccomp(setup: ChildSetup) -> None:
    from runpy_exec.linux import seccomp

    seccomp.load(setup.seccomp_filter)


def _exec(setup: ChildSetup) -> NoReturn:
    plan = setup.plan
    env = dict(entry.split("=", 1) for entry in plan.env)
    if setup.exec_fd is not None:
        os.execve(setup.exec_fd, plan.args, env)
    if "/" in plan.args[0]:
        os.execve(plan.args[0], plan.args, env)
    os.execvpe(plan.args[0], plan.args, env)


def setup_and_exec(setup: ChildSetup) -> NoReturn:
    """Become the container process described by ``setup.plan``; never returns.

    Order (runc's): limits and scores while still root; no_new_privs; seccomp
    early only without no_new_privs (loading needs CAP_SYS_ADMIN then); fds;
    bounding set, user and groups; cwd (after the user change, so permissions
    are the process's own); the other capability sets; seccomp last with
    no_new_privs so the filter need not allow the setup syscalls; execve.
    """
    plan = setup.plan
    try:
        _step("rlimits", lambda: _apply_rlimits(plan))
        if plan.oom_score_adj is not None:
            score = plan.oom_score_adj
            _step("oom_score_adj", lambda: _apply_oom_score_adj(score))
        _step("scheduling", lambda: _apply_scheduling(plan))
        _step("lsm", lambda: _apply_lsm_label(plan))
        if plan.no_new_privileges:
            import prctl

            _step("no_new_privs", lambda: prctl.set_no_new_privs(1))
        if setup.seccomp_filter is not None and not plan.no_new_privileges:
            _step("seccomp", lambda: _load_seccomp(setup))
        _step("fds", lambda: _move_fds(setup.fd_moves))
        _step("fds", lambda: _close_other_fds(setup.keep_fds))
        _step("user", lambda: _change_user(plan))
        if plan.umask is not None:
            os.umask(plan.umask)
        _step("cwd", lambda: _enter_cwd(plan.cwd, setup.verify_cwd_inside))
        _step("capabilities", lambda: _apply_capabilities(plan))
        if setup.seccomp_filter is not None and plan.no_new_privileges:
            _step("seccomp", lambda: _load_seccomp(setup))
        if plan.cpu_affinity_final:
            final = plan.cpu_affinity_final
            _step("cpu affinity", lambda: os.sched_setaffinity(0, final))
        _step("exec", lambda: _exec(setup))
    except ChildError as err:
        try:
            if setup.plain_errors:
                os.write(setup.error_fd, f"pyrunc: {err.stage}: {err}\n".encode())
            else:
                os.write(setup.error_fd, encode_error(err.stage, err.errno, str(err)))
        finally:
            os._exit(255)
    except BaseException as err:  # noqa: BLE001 - never fall back into the parent's code
        report_and_exit(setup.error_fd, "setup", err)
    os._exit(255)


_TIOCSCTTY = 0x540E


def become_terminal_owner(console_size: tuple[int, int] | None, channel: Any) -> None:
    """Open the pty inside the container's /dev/pts (so ttyname() works in there),
    hand the master to the parent over ``channel``, and make the replica our
    controlling terminal and stdio."""
    import fcntl
    import socket

    master, replica = os.openpty()
    if console_size:
        from runpy_exec.linux import console

        console.set_winsize(replica, *console_size)
    socket.send_fds(channel, [b"/dev/ptmx"], [master])
    channel.close()
    os.close(master)
    os.setsid()
    fcntl.ioctl(replica, _TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(replica, target)
    if replica > 2:
        os.close(replica)
