"""cgroup v1 resources: one hierarchy per controller, v1 file names and units."""

from __future__ import annotations

import errno

from runpy_exec.errors import PyruncError
from runpy_exec.linux.cgroups.common import (
    THROTTLES,
    CgroupError,
    Target,
    device_numbers,
    rdma_line,
)

# create imports this module on every call: typing and collections.abc are
# for the type checker only (~8 ms a start).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


def apply(target: Target, r: Mapping[str, Any]) -> None:
    if "unified" in r and r["unified"]:
        raise PyruncError("cgroup: resources.unified needs cgroup v2, and this host uses v1")
    if "devices" in r:
        _v1_devices(target, r["devices"] or [])
    if r.get("memory"):
        _v1_memory(target, r["memory"])
    if r.get("cpu"):
        _v1_cpu(target, r["cpu"])
    if r.get("pids") and r["pids"].get("limit"):
        limit = r["pids"]["limit"]
        target.write("pids", "pids.max", limit if limit > 0 else "max")
    if r.get("blockIO"):
        _v1_blkio(target, r["blockIO"])
    for page in r.get("hugepageLimits") or []:
        target.write("hugetlb", f"hugetlb.{page['pageSize']}.limit_in_bytes", page["limit"])
    network = r.get("network") or {}
    if network.get("classID") is not None:
        target.write("net_cls", "net_cls.classid", network["classID"])
    for prio in network.get("priorities") or []:
        target.write("net_prio", "net_prio.ifpriomap", f"{prio['name']} {prio['priority']}")
    for device, limits in (r.get("rdma") or {}).items():
        target.write("rdma", "rdma.max", rdma_line(device, limits))


def _v1_device_rule(rule: Mapping[str, Any]) -> str:
    kind = rule.get("type") or "a"
    major = "*" if rule.get("major") in (None, -1) else rule["major"]
    minor = "*" if rule.get("minor") in (None, -1) else rule["minor"]
    return f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"


def _v1_devices(target: Target, rules: Sequence[Mapping[str, Any]]) -> None:
    """Deny every device, then apply the OCI rules in order.

    OCI device rules are applied in order over a default of "deny all", as
    runc does; a new v1 cgroup would otherwise start from its parent's rules,
    typically "allow all".  Writing "a" to devices.deny fails (EINVAL) once
    the cgroup has sub-cgroups, so this suits a new container's cgroup.
    """
    target.write("devices", "devices.deny", "a")
    allowed_any = False
    for rule in rules:
        if not rule.get("allow") and not allowed_any:
            continue  # nothing is allowed yet: a deny changes nothing (runc skips it too)
        allowed_any = True
        name = "devices.allow" if rule.get("allow") else "devices.deny"
        target.write("devices", name, _v1_device_rule(rule))


def _v1_memory(target: Target, m: Mapping[str, Any]) -> None:
    limit = m.get("limit") or 0
    swap = m.get("swap") or 0
    if limit == -1 and not swap and target.has("memory", "memory.memsw.limit_in_bytes"):
        swap = -1  # "unlimited memory" with swap unset means memory+swap unlimited too
    if limit and swap:
        # The kernel insists on memory <= memory+swap at every moment, so
        # raise memsw before memory, and lower memory before memsw.
        current = int(target.read("memory", "memory.limit_in_bytes"))
        if swap == -1 or current < swap:
            target.write("memory", "memory.memsw.limit_in_bytes", swap)
            target.write("memory", "memory.limit_in_bytes", limit)
        else:
            target.write("memory", "memory.limit_in_bytes", limit)
            target.write("memory", "memory.memsw.limit_in_bytes", swap)
    elif limit:
        target.write("memory", "memory.limit_in_bytes", limit)
    elif swap:
        target.write("memory", "memory.memsw.limit_in_bytes", swap)
    if m.get("reservation"):
        target.write("memory", "memory.soft_limit_in_bytes", m["reservation"])
    if m.get("disableOOMKiller"):
        target.write("memory", "memory.oom_control", 1)
    swappiness = m.get("swappiness")
    if swappiness is not None and swappiness != -1:
        if not 0 <= swappiness <= 100:
            raise PyruncError(f"cgroup memory: swappiness {swappiness} is not within 0-100")
        target.write("memory", "memory.swappiness", swappiness)
    if m.get("useHierarchy") is not None:
        target.write("memory", "memory.use_hierarchy", int(bool(m["useHierarchy"])))


def _v1_cpu(target: Target, c: Mapping[str, Any]) -> None:
    if c.get("shares"):
        target.write("cpu", "cpu.shares", c["shares"])
    quota, period = c.get("quota") or 0, c.get("period") or 0
    period_pending = False
    if period:
        try:
            target.write("cpu", "cpu.cfs_period_us", period)
        except CgroupError as err:
            # A shorter period can make the current quota/period exceed the
            # parent's limit (EINVAL) until the new quota is in: retry after.
            if not quota or err.errno != errno.EINVAL:
                raise
            period_pending = True
    if quota:
        target.write("cpu", "cpu.cfs_quota_us", quota)
        if period_pending:
            target.write("cpu", "cpu.cfs_period_us", period)
    if c.get("burst") is not None:
        target.write("cpu", "cpu.cfs_burst_us", c["burst"])
    # The runtime can only be set within the period, so the period goes first,
    # unless the new period is shorter than the current runtime (EINVAL).
    runtime = c.get("realtimeRuntime")
    if c.get("realtimePeriod"):
        try:
            target.write("cpu", "cpu.rt_period_us", c["realtimePeriod"])
        except CgroupError as err:
            if not runtime or err.errno != errno.EINVAL:
                raise
            target.write("cpu", "cpu.rt_runtime_us", runtime)
            target.write("cpu", "cpu.rt_period_us", c["realtimePeriod"])
            runtime = None
    if runtime:
        target.write("cpu", "cpu.rt_runtime_us", runtime)
    if c.get("idle") is not None:
        target.write("cpu", "cpu.idle", c["idle"])
    if c.get("cpus"):
        target.write("cpuset", "cpuset.cpus", c["cpus"])
    if c.get("mems"):
        target.write("cpuset", "cpuset.mems", c["mems"])


def _v1_blkio(target: Target, b: Mapping[str, Any]) -> None:
    """blkio limits; the weight files are BFQ's where that scheduler provides them."""
    bfq = target.has("blkio", "blkio.bfq.weight")
    weight_file = "blkio.bfq.weight" if bfq else "blkio.weight"
    if b.get("weight"):
        target.write("blkio", weight_file, b["weight"])
    if b.get("leafWeight"):
        target.write("blkio", "blkio.leaf_weight", b["leafWeight"])
    for dev in b.get("weightDevice") or []:
        if dev.get("weight"):
            target.write("blkio", weight_file + "_device", f"{device_numbers(dev)} {dev['weight']}")
        if dev.get("leafWeight"):
            target.write(
                "blkio", "blkio.leaf_weight_device", f"{device_numbers(dev)} {dev['leafWeight']}"
            )
    for key, name in THROTTLES:
        for dev in b.get(key) or []:
            target.write(
                "blkio", f"blkio.throttle.{name}_device", f"{device_numbers(dev)} {dev['rate']}"
            )
