"""cgroup v2 resources: the unified hierarchy, its file names and its units."""

from __future__ import annotations

import os

from runpy_exec.errors import PyruncError
from runpy_exec.linux.cgroups.common import (
    THROTTLES,
    UNIFIED,
    CgroupError,
    Target,
    device_numbers,
    limit_text,
    rdma_line,
    read,
)

# create imports this module on every call: typing and collections.abc are
# for the type checker only (~8 ms a start).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# The controllers whose files a cgroup has only when its parent enables them.
_V2_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "hugetlb", "pids", "rdma", "misc")
_V2_IO_KEYS = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops", "write_iops": "wiops"}


def needs_domain_controllers(r: Mapping[str, Any]) -> bool:
    """Whether ``linux.resources`` sets a memory, cpu, io or hugetlb limit.

    Those controllers work only in a domain cgroup; without them a container
    can live in a threaded cgroup (see common._create_unified).  The same
    fields as runc's containsDomainController.
    """
    memory, cpu, io = r.get("memory") or {}, r.get("cpu") or {}, r.get("blockIO") or {}
    return bool(
        any(memory.get(k) for k in ("limit", "reservation", "swap"))
        or any(cpu.get(k) for k in ("shares", "quota", "period"))
        or io.get("weight") or io.get("weightDevice")
        or any(io.get(key) for key, _ in THROTTLES)
        or r.get("hugepageLimits"))


def apply(target: Target, r: Mapping[str, Any]) -> None:
    if "devices" in r:
        # Given at create; an update without device rules keeps the program as it is.
        from runpy_exec.linux.cgroups import devices

        devices.set_rules(target.dir(UNIFIED), r["devices"] or [])
    with _Field("memory"):
        if r.get("memory"):
            _v2_memory(target, r["memory"])
    with _Field("cpu"):
        if r.get("cpu"):
            _v2_cpu(target, r["cpu"])
    with _Field("pids"):
        if r.get("pids") and r["pids"].get("limit"):
            limit = r["pids"]["limit"]
            target.write(UNIFIED, "pids.max", limit if limit > 0 else "max")
    with _Field("blockIO"):
        if r.get("blockIO"):
            _v2_io(target, r["blockIO"])
    with _Field("hugepageLimits"):
        for page in r.get("hugepageLimits") or []:
            target.write(UNIFIED, f"hugetlb.{page['pageSize']}.max", page["limit"])
    with _Field("rdma"):
        for device, limits in (r.get("rdma") or {}).items():
            target.write(UNIFIED, "rdma.max", rdma_line(device, limits))
    for name, value in (r.get("unified") or {}).items():
        _unified(target, name, value)


class _Field:
    """Name the OCI field in front of a write the kernel refused (contextlib is kept
    off create's path)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: object, err: BaseException | None, tb: object) -> None:
        if isinstance(err, CgroupError):
            raise CgroupError(f"linux.resources.{self._name}: {err}", err.errno) from None


def _unified(target: Target, name: str, value: object) -> None:
    """Write one linux.resources.unified entry: a file of the container's cgroup.

    The container's cgroup was created with every controller its parent
    offers enabled, so a file that is missing is either no cgroup file at all
    or one of a controller the host does not give this cgroup.
    """
    where = f"linux.resources.unified key {name!r}"
    if "/" in name or name in (".", "..", ""):
        raise PyruncError(f"{where}: not a file name")
    directory = target.dir(UNIFIED)
    if not os.path.exists(os.path.join(directory, name)):
        controller = name.split(".", 1)[0]
        enabled = read(UNIFIED, directory, "cgroup.controllers").split()
        if controller in _V2_CONTROLLERS and controller not in enabled:
            parent = os.path.dirname(directory)
            offered = read(UNIFIED, parent, "cgroup.controllers").split()
            reason = ("could not be enabled in" if controller in offered else "is not offered by")
            raise PyruncError(f"{where}: controller {controller!r} {reason} the parent cgroup "
                              f"{parent}")
        raise PyruncError(f"{where}: no such cgroup file")
    try:
        target.write(UNIFIED, name, value)
    except CgroupError as err:
        raise CgroupError(f"{where}: the kernel refused {str(value)!r}: "
                          f"{os.strerror(err.errno)}", err.errno) from None


def _v2_swap(swap: int, limit: int) -> int:
    """OCI's swap is memory+swap (v1's memsw); v2's memory.swap.max is swap alone."""
    if limit == -1 and swap == 0:
        return -1  # unlimited memory with swap unset: unlimited swap too, as on v1
    if swap in (0, -1) or limit == -1:
        return swap  # unset, unlimited, or beside unlimited memory: as it is
    if limit < 0:
        raise PyruncError(f"cgroup memory: memory limit {limit} is not valid")
    if limit == 0:
        raise PyruncError("cgroup memory: a swap limit needs a memory limit")
    if swap < limit:
        raise PyruncError("cgroup memory: memory+swap limit must be at least the memory limit")
    return swap - limit


def _v2_memory(target: Target, m: Mapping[str, Any]) -> None:
    limit = m.get("limit") or 0
    swap = _v2_swap(m.get("swap") or 0, limit)
    if swap:
        target.write(UNIFIED, "memory.swap.max", limit_text(swap))
    if limit:
        target.write(UNIFIED, "memory.max", limit_text(limit))
    if m.get("reservation"):
        target.write(UNIFIED, "memory.low", limit_text(m["reservation"]))
    if m.get("disableOOMKiller"):
        raise PyruncError("cgroup memory: cgroup v2 cannot disable the OOM killer")
    swappiness = m.get("swappiness")
    if swappiness is not None and swappiness != -1:
        raise PyruncError("cgroup memory: cgroup v2 has no per-cgroup swappiness")


def _v2_cpu(target: Target, c: Mapping[str, Any]) -> None:
    if c.get("shares"):
        # v1 shares span 2..262144 and v2 weights 1..10000: map one range on the
        # other linearly, as runc 1.1 (the reference installed beside pyrunc)
        # does.  runc 1.4 changed to a curve that maps 1024 to 100; the two
        # agree only at the ends.
        target.write(UNIFIED, "cpu.weight", 1 + ((c["shares"] - 2) * 9999) // 262142)
    quota, period = c.get("quota") or 0, c.get("period") or 0
    if quota or period:
        value = str(quota) if quota > 0 else "max"
        if period:
            value += f" {period}"
        target.write(UNIFIED, "cpu.max", value)
    if c.get("burst") is not None:
        target.write(UNIFIED, "cpu.max.burst", c["burst"])
    if c.get("realtimePeriod") or c.get("realtimeRuntime"):
        raise PyruncError("cgroup cpu: cgroup v2 has no realtime scheduling limits")
    if c.get("idle") is not None:
        target.write(UNIFIED, "cpu.idle", c["idle"])
    if c.get("cpus"):
        target.write(UNIFIED, "cpuset.cpus", c["cpus"])
    if c.get("mems"):
        target.write(UNIFIED, "cpuset.mems", c["mems"])


def _v2_io_weight(weight: int) -> int:
    """blkio weights span 10..1000 and io.weight 1..10000: map one range on the other."""
    return 1 + (weight - 10) * 9999 // 990


def _v2_io(target: Target, b: Mapping[str, Any]) -> None:
    bfq = target.has(UNIFIED, "io.bfq.weight")
    if b.get("weight"):
        if bfq:
            target.write(UNIFIED, "io.bfq.weight", b["weight"])
        else:
            target.write(UNIFIED, "io.weight", _v2_io_weight(b["weight"]))
    for dev in b.get("weightDevice") or []:
        if dev.get("weight"):
            weight = dev["weight"] if bfq else _v2_io_weight(dev["weight"])
            name = "io.bfq.weight" if bfq else "io.weight"
            target.write(UNIFIED, name, f"{device_numbers(dev)} {weight}")
    for key, name in THROTTLES:
        for dev in b.get(key) or []:
            target.write(
                UNIFIED, "io.max", f"{device_numbers(dev)} {_V2_IO_KEYS[name]}={dev['rate']}"
            )
