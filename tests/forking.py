"""Run test code in a forked child: capability, seccomp and namespace changes are
for good, and must never touch pytest's own process."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable


def run_child(body: Callable[[], None]) -> tuple[int, int]:
    """Fork a child running ``body``; return (pid, fd of its traceback report)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        status = 0
        try:
            body()
        except BaseException:
            os.write(w, traceback.format_exc().encode())
            status = 1
        os._exit(status)
    os.close(w)
    return pid, r


def in_child(body: Callable[[], None], allow_signal: bool = False) -> int:
    """Run ``body`` in a child and return its wait status; a raised exception fails
    the test with the child's traceback, and so does a death by signal unless
    ``allow_signal`` (a seccomp test expecting SIGSYS judges that itself)."""
    pid, r = run_child(body)
    with os.fdopen(r, "rb") as f:
        report = f.read().decode()
    _, wait_status = os.waitpid(pid, 0)
    if allow_signal and os.WIFSIGNALED(wait_status):
        return wait_status
    assert os.waitstatus_to_exitcode(wait_status) == 0, report
    return wait_status
