"""Facts about a process, read from /proc.

A pid alone does not name a process: once it exits, the number is reused.
The start time (in clock ticks since boot) does not change for the life of a
process, so (pid, start time) is what the runtime records and checks.
"""

from __future__ import annotations

import errno

Pid = int | str  # a number, or "self"


def _read(pid: Pid, name: str) -> str:
    """Read /proc/<pid>/<name>, turning a vanished process into ESRCH.

    Callers ask about processes that may exit at any moment; a missing /proc
    entry means "no such process", not "no such file".
    """
    try:
        with open(f"/proc/{pid}/{name}", encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except FileNotFoundError:
        raise ProcessLookupError(errno.ESRCH, f"no such process: {pid}") from None


def _stat_fields(pid: Pid) -> list[str]:
    """Fields of /proc/<pid>/stat from field 3 (state) on.

    Field 2 is the command name in parentheses, and that name may itself hold
    spaces and ')': only the last ')' ends it.
    """
    stat = _read(pid, "stat")
    return stat[stat.rindex(")") + 2 :].split()


def start_time(pid: Pid) -> int:
    """Field 22 of /proc/<pid>/stat: the process's start, in ticks since boot."""
    return int(_stat_fields(pid)[22 - 3])


def state(pid: Pid) -> str:
    """Field 3 of /proc/<pid>/stat: one letter, R S D T t Z X ..."""
    return _stat_fields(pid)[0]


def is_alive_with_start_time(pid: int, start: int) -> bool:
    """Whether ``pid`` is still the process that started at ``start``.

    A zombie or dead entry counts as gone: it will never run again, and runc
    reports such a container as stopped too.
    """
    try:
        fields = _stat_fields(pid)
    except ProcessLookupError:
        return False
    return int(fields[22 - 3]) == start and fields[0] not in ("Z", "X")


def status_field(pid: Pid, name: str) -> str | None:
    """The value of ``name:`` in /proc/<pid>/status, or None if the kernel omits it."""
    prefix = name + ":"
    for line in _read(pid, "status").splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    return None


def ns_pid(pid: Pid) -> int:
    """The pid as seen from the innermost pid namespace the process is in.

    NSpid lists the pid in every namespace from the reader's down to the
    process's own; the last one is what the process itself sees.
    """
    value = status_field(pid, "NSpid")
    if value is None:
        raise OSError(errno.ENOSYS, f"/proc/{pid}/status has no NSpid line")
    return int(value.split()[-1])
