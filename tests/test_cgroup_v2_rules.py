"""What needs no kernel: device rules as a program, OCI values in cgroup v2 units."""

from __future__ import annotations

from typing import Any

import pytest

from runpy_exec.errors import PyruncError
from runpy_exec.linux.cgroups import devices, v2


@pytest.mark.parametrize(("rule", "message"), [
    ({"type": "p", "access": "r"}, "type 'p' cannot be a cgroup device rule"),
    ({"type": "c", "access": "rx"}, "access 'rx' is not a subset of 'rwm'"),
    ({"type": "c", "major": -2}, "major -2 is not a device number or -1"),
    ({"type": "b", "minor": 2**32}, f"minor {2**32} is not a device number or -1"),
])
def test_rules_the_program_cannot_express_are_refused(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(PyruncError, match=r"linux\.resources\.devices\[1\]: " + message):
        devices.compile_rules([{"allow": False, "access": "rwm"}, {"allow": True, **rule}])


def test_program_ends_at_a_rule_that_matches_everything() -> None:
    """Code after an unconditional rule could never run, and the verifier refuses it."""
    only_last = devices.compile_rules([{"allow": True, "type": "c", "access": "r"},
                                       {"allow": True}])
    assert len(only_last) == (6 + 2) * 8  # loads, then "allow" and exit
    default_deny = devices.compile_rules([])
    assert len(default_deny) == (6 + 2) * 8


@pytest.mark.parametrize(("swap", "limit", "written"), [
    (0, 0, 0), (0, -1, -1), (-1, 100, -1), (300, 100, 200), (100, 100, 0), (300, -1, 300),
])
def test_swap_is_memory_plus_swap_less_memory(swap: int, limit: int, written: int) -> None:
    assert v2._v2_swap(swap, limit) == written


@pytest.mark.parametrize(("swap", "limit", "message"), [
    (100, 0, "a swap limit needs a memory limit"),
    (50, 100, "memory\\+swap limit must be at least the memory limit"),
    (50, -5, "memory limit -5 is not valid"),
])
def test_swap_that_cannot_be_converted_is_refused(swap: int, limit: int, message: str) -> None:
    with pytest.raises(PyruncError, match=message):
        v2._v2_swap(swap, limit)


@pytest.mark.parametrize(("resources", "domain"), [
    ({"devices": [{"allow": False, "access": "rwm"}]}, False),
    ({"pids": {"limit": 10}, "cpu": {"cpus": "0", "mems": "0"}}, False),
    ({"memory": {"limit": 0}, "cpu": {"shares": 0}}, False),
    ({"memory": {"limit": 1 << 20}}, True),
    ({"memory": {"reservation": 1 << 20}}, True),
    ({"cpu": {"shares": 512}}, True),
    ({"cpu": {"quota": 5000}}, True),
    ({"blockIO": {"weight": 100}}, True),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]}}, True),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}, True),
])
def test_limits_that_need_a_domain_cgroup(resources: dict[str, Any], domain: bool) -> None:
    """Threaded controllers (pids, cpuset) fit a threaded cgroup; memory, cpu, io,
    hugetlb do not (the fields runc checks before making a cgroup threaded)."""
    assert v2.needs_domain_controllers(resources) is domain
