"""The process that waits for an exec'd process: small, and holding nothing else.

runsc's design: ``exec --detach`` leaves a waiter behind, whose pid goes into
``--pid-file``; the caller's subreaper (conmon, containerd's shim) waits on
it, so it relays every signal it gets to the process and exits with the
process's status (124 when ``--timeout`` killed it).  The process carries a
parent-death SIGKILL, so a killed waiter takes it along.

Such waiters live as long as their processes, hundreds on a busy node.  The
pyrunc that launched the process holds everything exec imported (~12 MB).
So a process still running after ``exec_cmd.HAND_OFF_AFTER`` (foreground or
detached) gets this waiter instead: pyrunc re-spawns itself as it
(:func:`become`), keeping only the process's pidfd, execs a bare interpreter
(``-I -S``) that imports nothing but this module, and waits there
(:func:`main`).  A process that ends sooner, as probes do, is waited for by
pyrunc itself and costs no second interpreter.  Every long exec pays for
this one's start; so the waiter's side uses the C modules under ``os`` and
``signal`` themselves.

The interface is two calls: :func:`become` (launcher side, never returns) and
:func:`main` (the waiter itself).
"""

# The C module under ``signal``: ``signal`` itself imports enum, ~1 MB of
# resident memory in every waiter for names nobody reads.
import _signal

# The C module under ``os`` (built in): a bare interpreter has not imported
# ``os``, whose import (stat, posixpath, _collections_abc) was ~0.7 ms of CPU,
# about an eighth of each waiter's start.  ``__future__`` stays out for the
# same reason: the annotations below hold at run time.
import posix

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

TIMEOUT_STATUS = 124  # what coreutils' timeout(1) exits with; probes know it
PIDFD = 3  # where the process's pidfd is handed to the waiter
# Not forwarded: SIGCHLD is about the waiter's own child, SIGWINCH a terminal's
# business; SIGKILL and SIGSTOP cannot be caught.
NOT_FORWARDED = frozenset({_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGCHLD, _signal.SIGWINCH})

_MAX_WAIT_SECONDS = 86400.0  # a longer --timeout just loops
MARK = "pyrunc-exec-waiter"  # the waiter's first argument, for ps and for tests
_BOOT = "import sys; sys.path.insert(0, sys.argv[2]); from runpy_exec.waiter import main; main()"


def become(pid: int, pidfd: int, timeout: float | None) -> "NoReturn":
    """Replace this process with the waiter for ``pid``; never returns.

    Signals are blocked from here to the waiter's handlers: a signal that
    arrives meanwhile stays pending across execve and is forwarded then.
    The process stays our child (execve keeps children and, being the same
    thread, does not fire its parent-death signal).  Every fd but stdio and
    the pidfd is closed: stdio is a foreground exec's caller's terminal or
    pipes, kept as before, and /dev/null in a detached exec's waiter, which
    has let go of the caller's already.
    """
    import os  # loaded long ago by the launcher, unlike in the waiter

    _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
    if pidfd != PIDFD:
        os.dup2(pidfd, PIDFD)  # inheritable, unlike the original
    else:
        os.set_inheritable(PIDFD, True)
    _close_at_exec(PIDFD + 1)
    argv = waiter_argv(pid, timeout)
    try:
        os.execv(argv[0], argv)
    finally:
        # execv failed: nobody is left to report to; the process dies with us.
        os._exit(255)


def waiter_argv(pid: int, timeout: float | None) -> list[str]:
    """The waiter's command line: this interpreter, bare, running :func:`main`."""
    import os
    import sys

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [sys.executable, "-I", "-S", "-c", _BOOT, MARK, package_parent, str(pid),
            "" if timeout is None else repr(timeout)]


def _close_at_exec(first: int) -> None:
    """Mark every fd from ``first`` on close-on-exec: one syscall, whatever the fd limit."""
    import os

    from runpy_exec.linux import syscalls

    try:
        syscalls.close_range(first, flags=syscalls.CLOSE_RANGE_CLOEXEC)
    except OSError:  # a kernel before 5.11: set the flag fd by fd
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= first:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    continue  # the listing's own fd, closed by now


def main() -> "NoReturn":
    """The waiter: ``argv`` is [MARK, package dir, pid, timeout or ""]; the pidfd is fd 3."""
    import sys

    pid, timeout = int(sys.argv[3]), float(sys.argv[4]) if sys.argv[4] else None
    posix._exit(wait(pid, PIDFD, timeout))


def wait(pid: int, pidfd: int, timeout: float | None) -> int:
    """Forward signals to ``pid`` until it exits; its status, 128+N for signal N, 124 on timeout.

    Every signal stays blocked and is taken synchronously with sigtimedwait,
    SIGCHLD included: no handler, no wakeup pipe, no poll, and no window in
    which a signal could arrive unseen.  Signals go through the pidfd, so none
    can reach another process that reused the pid.
    """
    import time

    wanted = _signal.valid_signals() - {_signal.SIGKILL, _signal.SIGSTOP}
    _signal.pthread_sigmask(_signal.SIG_BLOCK, wanted)
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    while True:
        # Before every wait: a SIGCHLD from before the signals were blocked is lost.
        done, status = posix.waitpid(pid, posix.WNOHANG)
        if done:
            break
        if deadline is not None and time.monotonic() >= deadline:
            _send(pidfd, _signal.SIGKILL)
            timed_out, deadline = True, None
        if deadline is None:
            info = _signal.sigwaitinfo(wanted)
        else:
            info = _signal.sigtimedwait(wanted, min(max(0.0, deadline - time.monotonic()),
                                                    _MAX_WAIT_SECONDS))
        if info is not None and info.si_signo not in NOT_FORWARDED:
            _send(pidfd, info.si_signo)
    if timed_out:
        return TIMEOUT_STATUS
    if posix.WIFEXITED(status):
        return posix.waitstatus_to_exitcode(status)
    return 128 + posix.WTERMSIG(status)


def _send(pidfd: int, signum: int) -> None:
    try:  # noqa: SIM105 - contextlib would cost every waiter its imports
        _signal.pidfd_send_signal(pidfd, signum)
    except ProcessLookupError:
        pass  # it has exited: its status is on the way
