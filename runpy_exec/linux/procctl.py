"""prctl(2) calls, through python-prctl's C module ``_prctl``.

python-prctl's Python face (``import prctl``) generates a function per
option and capability objects when it is imported: ~2 ms on every exec and
create, for the seven calls pyrunc makes.  Its C module does the same calls
(each failure an ``OSError`` with errno) without that start-up, so pyrunc
calls it directly, here and in :mod:`runpy_exec.linux.capabilities`.
"""

from __future__ import annotations

import _prctl

# The highest capability number this build of python-prctl knows and accepts.
KNOWN_CAPS_LAST: int = _prctl.CAP_LAST_CAP


def set_pdeathsig(signum: int) -> None:
    _prctl.prctl(_prctl.PR_SET_PDEATHSIG, signum)


def set_no_new_privs() -> None:
    _prctl.prctl(_prctl.PR_SET_NO_NEW_PRIVS, 1)


def set_dumpable(on: bool) -> None:
    _prctl.prctl(_prctl.PR_SET_DUMPABLE, int(on))


def set_child_subreaper() -> None:
    _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 1)


def set_keepcaps(on: bool) -> None:
    _prctl.prctl(_prctl.PR_SET_KEEPCAPS, int(on))


def capbset_drop(cap: int) -> None:
    _prctl.prctl(_prctl.PR_CAPBSET_DROP, cap)


def set_caps(effective: list[int], permitted: list[int], inheritable: list[int],
             not_effective: list[int], not_permitted: list[int],
             not_inheritable: list[int]) -> None:
    """One capset(2): the capabilities to raise in each set, then those to clear."""
    _prctl.set_caps(effective, permitted, inheritable,
                    not_effective, not_permitted, not_inheritable)
