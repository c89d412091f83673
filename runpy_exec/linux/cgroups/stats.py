"""A container's resource usage read from its cgroup files, in runc's events shape.

The result is the ``data`` of a ``{"type": "stats"}`` event as ``runc events``
prints it (runc's types.Stats): cpu, cpuset, memory, pids, blkio, hugetlb.
Zero values that runc leaves out (Go's omitempty) are left out here too, so
a consumer that parses runc's output parses ours.  A file the kernel does
not have (a controller not mounted, no swap accounting) is simply absent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from runpy_exec.linux.cgroups.common import UNIFIED, is_unified

_UNLIMITED = 2**64 - 1  # what runc reports for "max"


def _read(directory: str | None, name: str) -> str | None:
    if directory is None:
        return None
    try:
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def _number(text: str | None) -> int:
    if not text:
        return 0
    if text == "max":
        return _UNLIMITED
    try:
        return int(text)
    except ValueError:
        return 0


def _flat_keyed(text: str | None) -> dict[str, int]:
    """ "key value" lines (memory.stat, cpu.stat, memory.events) as a dict."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _omit_zero(entries: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entries.items() if v not in (0, [], {}, None, "")}


def _cpu_list(text: str | None) -> list[int]:
    """ "0-2,4" as [0, 1, 2, 4]."""
    out: list[int] = []
    for part in (text or "").split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            out.extend(range(int(low), int(high) + 1))
        elif part.strip():
            out.append(int(part))
    return out


def oom_kills(paths: Mapping[str, str]) -> int:
    """How many processes the kernel's OOM killer has killed in the container's cgroup.

    v2 counts them in memory.events, v1 (kernel 4.13+) in memory.oom_control.
    """
    if is_unified(paths):
        return _flat_keyed(_read(paths.get(UNIFIED), "memory.events")).get("oom_kill", 0)
    return _flat_keyed(_read(paths.get("memory"), "memory.oom_control")).get("oom_kill", 0)


def stats(paths: Mapping[str, str]) -> dict[str, Any]:
    if is_unified(paths):
        return _v2(paths[UNIFIED])
    return _v1(paths)


def _hugetlb_sizes(directory: str | None) -> list[str]:
    if directory is None:
        return []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    sizes = {n.split(".")[1] for n in names if n.startswith("hugetlb.") and n.count(".") >= 2}
    return sorted(sizes)


def _v1(paths: Mapping[str, str]) -> dict[str, Any]:
    cpuacct = paths.get("cpuacct")
    percpu = [int(v) for v in (_read(cpuacct, "cpuacct.usage_percpu") or "").split()]
    cpuacct_stat = _flat_keyed(_read(cpuacct, "cpuacct.stat"))
    ticks = os.sysconf("SC_CLK_TCK")
    usage = {
        "total": _number(_read(cpuacct, "cpuacct.usage")),
        "percpu": percpu,
        "percpu_kernel": [int(v) for v in (_read(cpuacct, "cpuacct.usage_percpu_sys")
                                           or "").split()],
        "percpu_user": [int(v) for v in (_read(cpuacct, "cpuacct.usage_percpu_user")
                                         or "").split()],
    }
    cpu_stat = _flat_keyed(_read(paths.get("cpu"), "cpu.stat"))
    cpu = {
        "usage": {**_omit_zero(usage),
                  "kernel": cpuacct_stat.get("system", 0) * 10**9 // ticks,
                  "user": cpuacct_stat.get("user", 0) * 10**9 // ticks},
        "throttling": _omit_zero({
            "periods": cpu_stat.get("nr_periods", 0),
            "throttledPeriods": cpu_stat.get("nr_throttled", 0),
            "throttledTime": cpu_stat.get("throttled_time", 0),
        }),
    }
    memory_dir = paths.get("memory")

    def entry(prefix: str) -> dict[str, Any]:
        return {
            "limit": _number(_read(memory_dir, f"{prefix}.limit_in_bytes")),
            **_omit_zero({"usage": _number(_read(memory_dir, f"{prefix}.usage_in_bytes")),
                          "max": _number(_read(memory_dir, f"{prefix}.max_usage_in_bytes"))}),
            "failcnt": _number(_read(memory_dir, f"{prefix}.failcnt")),
        }

    raw = _flat_keyed(_read(memory_dir, "memory.stat"))
    memory = {
        **_omit_zero({"cache": raw.get("total_cache", raw.get("cache", 0))}),
        "usage": entry("memory"),
        "swap": entry("memory.memsw"),
        "kernel": entry("memory.kmem"),
        "kernelTCP": entry("memory.kmem.tcp"),
        **_omit_zero({"raw": raw}),
    }
    pids_dir = paths.get("pids")
    blkio_dir = paths.get("blkio")
    hugetlb_dir = paths.get("hugetlb")
    return {
        "cpu": cpu,
        "cpuset": _cpuset(paths.get("cpuset")),
        "memory": memory,
        "pids": _omit_zero({"current": _number(_read(pids_dir, "pids.current")),
                            "limit": _limit(_read(pids_dir, "pids.max"))}),
        "blkio": _omit_zero({
            "ioServiceBytesRecursive": _v1_blkio(blkio_dir, "io_service_bytes_recursive"),
            "ioServicedRecursive": _v1_blkio(blkio_dir, "io_serviced_recursive"),
            "ioQueueRecursive": _v1_blkio(blkio_dir, "io_queued_recursive"),
            "ioServiceTimeRecursive": _v1_blkio(blkio_dir, "io_service_time_recursive"),
            "ioWaitTimeRecursive": _v1_blkio(blkio_dir, "io_wait_time_recursive"),
            "ioMergedRecursive": _v1_blkio(blkio_dir, "io_merged_recursive"),
            "ioTimeRecursive": _v1_blkio(blkio_dir, "time_recursive"),
            "sectorsRecursive": _v1_blkio(blkio_dir, "sectors_recursive"),
        }),
        "hugetlb": {
            size: {**_omit_zero({
                "usage": _number(_read(hugetlb_dir, f"hugetlb.{size}.usage_in_bytes")),
                "max": _number(_read(hugetlb_dir, f"hugetlb.{size}.max_usage_in_bytes"))}),
                "failcnt": _number(_read(hugetlb_dir, f"hugetlb.{size}.failcnt"))}
            for size in _hugetlb_sizes(hugetlb_dir)
        },
        "intel_rdt": {},
        "network_interfaces": None,
    }


def _limit(text: str | None) -> int:
    """pids.max: "max" is no limit, which runc reports as 0 (omitted)."""
    return 0 if text in (None, "max") else _number(text)


def _cpuset(directory: str | None) -> dict[str, Any]:
    if directory is None:
        return {}
    prefix = "cpuset." if os.path.exists(os.path.join(directory, "cpuset.cpus")) else ""
    cpus = _read(directory, f"{prefix}cpus") or _read(directory, "cpuset.cpus.effective")
    mems = _read(directory, f"{prefix}mems") or _read(directory, "cpuset.mems.effective")
    return _omit_zero({"cpus": _cpu_list(cpus), "mems": _cpu_list(mems)})


def _v1_blkio(directory: str | None, name: str) -> list[dict[str, Any]]:
    """blkio.<name> (falling back to BFQ's blkio.bfq.<name>): "MAJ:MIN [Op] value" lines."""
    text = _read(directory, f"blkio.{name}") or _read(directory, f"blkio.bfq.{name}")
    entries = []
    for line in (text or "").splitlines():
        fields = line.split()
        if not fields or ":" not in fields[0]:
            continue
        major, minor = fields[0].split(":", 1)
        op, value = (fields[1], fields[2]) if len(fields) == 3 else ("", fields[-1])
        entries.append(_omit_zero({"major": int(major), "minor": int(minor), "op": op,
                                   "value": int(value)}))
    return entries


def _v2(directory: str) -> dict[str, Any]:
    cpu_stat = _flat_keyed(_read(directory, "cpu.stat"))
    raw = _flat_keyed(_read(directory, "memory.stat"))
    events = _flat_keyed(_read(directory, "memory.events"))
    swap_usage = _number(_read(directory, "memory.swap.current"))
    memory_usage = _number(_read(directory, "memory.current"))
    blkio: dict[str, list[dict[str, Any]]] = {"ioServiceBytesRecursive": [],
                                              "ioServicedRecursive": []}
    for line in (_read(directory, "io.stat") or "").splitlines():
        fields = line.split()
        if not fields or ":" not in fields[0]:
            continue
        major, minor = (int(n) for n in fields[0].split(":", 1))
        values = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        for key, op, target in (("rbytes", "Read", "ioServiceBytesRecursive"),
                                ("wbytes", "Write", "ioServiceBytesRecursive"),
                                ("rios", "Read", "ioServicedRecursive"),
                                ("wios", "Write", "ioServicedRecursive")):
            if key in values:
                blkio[target].append(_omit_zero({"major": major, "minor": minor, "op": op,
                                                 "value": int(values[key])}))
    hugetlb = {}
    for size in _hugetlb_sizes(directory):
        hugetlb[size] = {
            **_omit_zero({"usage": _number(_read(directory, f"hugetlb.{size}.current"))}),
            "failcnt": _flat_keyed(_read(directory, f"hugetlb.{size}.events")).get("max", 0),
        }
    return {
        "cpu": {
            "usage": {**_omit_zero({"total": cpu_stat.get("usage_usec", 0) * 1000}),
                      "kernel": cpu_stat.get("system_usec", 0) * 1000,
                      "user": cpu_stat.get("user_usec", 0) * 1000},
            "throttling": _omit_zero({
                "periods": cpu_stat.get("nr_periods", 0),
                "throttledPeriods": cpu_stat.get("nr_throttled", 0),
                "throttledTime": cpu_stat.get("throttled_usec", 0) * 1000,
            }),
        },
        "cpuset": _cpuset(directory),
        "memory": {
            **_omit_zero({"cache": raw.get("file", 0)}),
            "usage": {"limit": _number(_read(directory, "memory.max")),
                      **_omit_zero({"usage": memory_usage,
                                    "max": _number(_read(directory, "memory.peak"))}),
                      "failcnt": events.get("max", 0)},
            "swap": {"limit": _number(_read(directory, "memory.swap.max")),
                     **_omit_zero({"usage": swap_usage + memory_usage if swap_usage else 0}),
                     "failcnt": _flat_keyed(_read(directory, "memory.swap.events")).get("max", 0)},
            **_omit_zero({"raw": raw}),
        },
        "pids": _omit_zero({"current": _number(_read(directory, "pids.current")),
                            "limit": _limit(_read(directory, "pids.max"))}),
        "blkio": _omit_zero(blkio),
        "hugetlb": hugetlb,
        "intel_rdt": {},
        "network_interfaces": None,
    }
