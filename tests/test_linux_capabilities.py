"""Capability sets, set in a forked child and read back from /proc/self/status."""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from runpy_exec.linux import capabilities
from runpy_exec.linux.proc import status_field
from runpy_exec.plan import CapabilitySets
from tests.forking import in_child

pytestmark = pytest.mark.root

CAP_CHOWN = 0
CAP_KILL = 5
CAP_SETGID = 6
CAP_SETUID = 7
CAP_SETPCAP = 8
CAP_NET_BIND_SERVICE = 10
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21
CAP_AUDIT_WRITE = 29



def mask(caps: set[int]) -> str:
    return format(sum(1 << c for c in caps), "016x")


def read_sets() -> dict[str, str]:
    names = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
    return {n: str(status_field("self", n)) for n in names}


def test_last_cap_is_the_highest_number_the_kernel_accepts() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_read = 23
    last = capabilities.last_cap()
    assert libc.prctl(pr_capbset_read, ctypes.c_ulong(last), 0, 0, 0) in (0, 1)
    assert libc.prctl(pr_capbset_read, ctypes.c_ulong(last + 1), 0, 0, 0) == -1
    assert ctypes.get_errno() == errno.EINVAL


def test_sets_applied_as_root() -> None:
    keep = {CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE}

    def body() -> None:
        capabilities.apply_bounding(frozenset(keep))
        capabilities.apply_sets(
            CapabilitySets(
                bounding=frozenset(keep),
                effective=frozenset({CAP_KILL, CAP_CHOWN}),
                permitted=frozenset(keep),
                inheritable=frozenset({CAP_NET_BIND_SERVICE, CAP_KILL}),
                ambient=frozenset({CAP_NET_BIND_SERVICE}),
            )
        )
        assert read_sets() == {
            "CapBnd": mask(keep),
            "CapPrm": mask(keep),
            "CapEff": mask({CAP_KILL, CAP_CHOWN}),
            "CapInh": mask({CAP_NET_BIND_SERVICE, CAP_KILL}),
            "CapAmb": mask({CAP_NET_BIND_SERVICE}),
        }

    in_child(body)


def test_setuid_sequence_keeps_granted_caps_for_a_non_root_user() -> None:
    granted = {CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE}

    def body() -> None:
        capabilities.apply_bounding(frozenset(granted))
        capabilities.keep_caps_across_setuid(True)
        os.setgroups([])
        os.setgid(1000)
        os.setuid(1000)
        after_setuid = read_sets()
        assert after_setuid["CapEff"] == mask(set())
        assert after_setuid["CapAmb"] == mask(set())
        capabilities.apply_sets(
            CapabilitySets(
                bounding=frozenset(granted),
                effective=frozenset(granted),
                permitted=frozenset(granted),
                inheritable=frozenset(granted),
                ambient=frozenset(granted),
            )
        )
        assert read_sets() == {
            n: mask(granted) for n in ("CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb")
        }
        assert os.getuid() == 1000 and os.getgid() == 1000
        # The ambient set survives execve for a non-root user: check in a real exec.
        os.execv("/bin/sh", ["sh", "-c", f"grep -qx 'CapAmb:\t{mask(granted)}' /proc/self/status"])

    in_child(body)


def test_without_keep_caps_setuid_empties_permitted() -> None:
    def body() -> None:
        capabilities.keep_caps_across_setuid(False)
        os.setuid(1000)
        assert read_sets()["CapPrm"] == mask(set())
        with pytest.raises(OSError, match="capset"):
            capabilities.apply_sets(CapabilitySets(permitted=frozenset({CAP_KILL})))

    in_child(body)


def test_ambient_requires_inheritable() -> None:
    def body() -> None:
        with pytest.raises(OSError, match="PR_CAP_AMBIENT_RAISE"):
            capabilities.apply_sets(
                CapabilitySets(
                    effective=frozenset({CAP_KILL}),
                    permitted=frozenset({CAP_KILL}),
                    ambient=frozenset({CAP_KILL}),
                )
            )

    in_child(body)


def test_bounding_drop_needs_setpcap_so_it_goes_first() -> None:
    def body() -> None:
        capabilities.apply_sets(
            CapabilitySets(effective=frozenset({CAP_KILL}), permitted=frozenset({CAP_KILL}))
        )
        with pytest.raises(OSError, match="PR_CAPBSET_DROP"):
            capabilities.apply_bounding(frozenset({CAP_KILL}))

    in_child(body)
