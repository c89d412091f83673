"""Set the calling process's capability sets.

Process setup calls these in a fixed order, because each step needs a
capability that a later step may take away, and setuid changes the sets:

1. :func:`apply_bounding` first: dropping from the bounding set needs
   CAP_SETPCAP in the effective set, which :func:`apply_sets` may remove.
2. ``keep_caps_across_setuid(True)``: when a process whose uids include 0
   switches all of them to non-zero, the kernel clears its permitted,
   effective and ambient sets; keep-caps spares the permitted set, so the
   capabilities the container is granted are still there to be made effective.
3. setgroups, setgid, setuid: these need CAP_SETGID/CAP_SETUID, still effective.
4. :func:`apply_sets`: after setuid, which emptied the effective and ambient
   sets.  The ambient set is raised last, since the kernel only accepts a
   capability there that is already both permitted and inheritable.

The keep-caps flag is reset by execve, so it need not be turned off after.
"""

from __future__ import annotations

import errno

from runpy_exec.linux import procctl, syscalls
from runpy_exec.plan import CapabilitySets

_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability number the running kernel knows, read once per process.

    The runtime reads it on the host before fork, so a child that has since
    joined a container's mount namespace does not take the number from a
    /proc/sys the container may have mounted over: a smaller number there
    would leave the higher capabilities in every set (CVE-2019-16884 is the
    same trick played on the LSM attribute files).
    """
    global _last_cap
    if _last_cap is None:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            _last_cap = int(f.read())
    return _last_cap


def _all_caps() -> range:
    """Every capability of the running kernel, each of which must be set or cleared.

    python-prctl refuses numbers it was not built to know.  Failing here is
    safer than leaving a newer kernel's capability in the process untouched.
    """
    last = last_cap()
    if last > procctl.KNOWN_CAPS_LAST:
        raise OSError(errno.ENOTSUP, f"capset: python-prctl does not know capability {last}")
    return range(last + 1)


def apply_bounding(keep: frozenset[int]) -> None:
    """Drop from the bounding set every capability not in ``keep``.

    The bounding set caps what any later execve can gain, including through a
    set-user-ID-root or file-capability binary in the container.
    """
    for cap in range(last_cap() + 1):
        if cap not in keep:
            try:
                procctl.capbset_drop(cap)
            except OSError as err:
                raise OSError(err.errno, f"prctl(PR_CAPBSET_DROP, {cap}): {err.strerror}") from err


def keep_caps_across_setuid(on: bool) -> None:
    procctl.set_keepcaps(on)


def apply_sets(caps: CapabilitySets) -> None:
    """Make the effective, permitted, inheritable and ambient sets exactly ``caps``.

    One capset(2) sets the first three together, so the kernel judges the
    final combination rather than each intermediate step (e.g. effective must
    stay within permitted).
    """
    every = _all_caps()
    try:
        procctl.set_caps(
            sorted(caps.effective), sorted(caps.permitted), sorted(caps.inheritable),
            [c for c in every if c not in caps.effective],
            [c for c in every if c not in caps.permitted],
            [c for c in every if c not in caps.inheritable],
        )
    except OSError as err:
        raise OSError(err.errno, f"capset: {err.strerror}") from err
    syscalls.ambient_clear_all()
    for cap in sorted(caps.ambient):
        syscalls.ambient_raise(cap)
