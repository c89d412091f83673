"""``pyrunc update``: change a running container's resource limits.

The change is merged into the resources recorded with the container (its
config.json copy in state.json) by runc's rules, the merged limits are
written through ``cgroups.apply_resources`` and then recorded, so a later
``update`` and ``events`` start from them.  Device rules are never touched
(runc cannot change them either; on cgroup v2 the device program stays).
When the kernel refuses a value, the previous limits are written back and
the error says so: a container is never left half updated.
"""

from __future__ import annotations

import sys

from runpy_exec import jsonio as json
from runpy_exec import state as store
from runpy_exec.errors import PyruncError

# Engines call update with --resources (containerd, on every in-place resize):
# re (for the sizes of the flags), copy, json and typing stay off that path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from runpy_exec.requests import GlobalOptions, UpdateRequest

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

# The fields of linux.resources that update changes, with their JSON types.
# "i" is int64, "u" uint64, "s" a string, "b" a boolean.
_FIELDS: dict[str, dict[str, str]] = {
    "memory": {
        "limit": "i", "reservation": "i", "swap": "i", "kernel": "i", "kernelTCP": "i",
        "swappiness": "u", "disableOOMKiller": "b", "useHierarchy": "b",
        "checkBeforeUpdate": "b",
    },
    "cpu": {
        "shares": "u", "quota": "i", "burst": "u", "period": "u", "realtimeRuntime": "i",
        "realtimePeriod": "u", "cpus": "s", "mems": "s", "idle": "i",
    },
    "blockIO": {"weight": "u16", "leafWeight": "u16"},
    "pids": {"limit": "i"},
}  # fmt: skip
_DEVICE_LISTS = (
    "weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
    "throttleReadIOPSDevice", "throttleWriteIOPSDevice",
)  # fmt: skip

# docker's units.RAMInBytes: binary multiples, "50M", "1.5g", "64KiB", "10 mb".
_RAM = r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$"
_RAM_UNITS = {None: 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}


def update_command(opts: GlobalOptions, req: UpdateRequest) -> None:
    """``pyrunc update``: the limits of ``--resources``, or else of the flags."""
    r = read_resources(req.resources) if req.resources is not None else _from_flags(req)
    rdt = {"--l3-cache-schema": req.l3_cache_schema or "",
           "--mem-bw-schema": req.mem_bw_schema or ""}
    update(opts.root, req.container_id, r, rdt)


def _from_flags(req: UpdateRequest) -> dict[str, Any]:
    """linux.resources from runc's update flags, each parsed as runc parses it."""
    r: dict[str, Any] = {"memory": {}, "cpu": {}, "blockIO": {}, "pids": {}}
    weight = parse_int("--blkio-weight", req.blkio_weight or "0", True)
    if weight:
        r["blockIO"]["weight"] = weight  # 0 is runc's "unchanged"
    if req.cpuset_cpus:
        r["cpu"]["cpus"] = req.cpuset_cpus
    if req.cpuset_mems:
        r["cpu"]["mems"] = req.cpuset_mems
    if req.cpu_idle is not None:
        r["cpu"]["idle"] = parse_int("--cpu-idle", req.cpu_idle, False)
    for flag, key, value, unsigned in (
        ("--cpu-burst", "burst", req.cpu_burst, True),
        ("--cpu-period", "period", req.cpu_period, True),
        ("--cpu-rt-period", "realtimePeriod", req.cpu_rt_period, True),
        ("--cpu-share", "shares", req.cpu_share, True),
        ("--cpu-quota", "quota", req.cpu_quota, False),
        ("--cpu-rt-runtime", "realtimeRuntime", req.cpu_rt_runtime, False),
    ):
        if value is not None:
            r["cpu"][key] = parse_int(flag, value, unsigned)
    for flag, key, value in (
        ("--memory", "limit", req.memory),
        ("--memory-swap", "swap", req.memory_swap),
        ("--kernel-memory", "kernel", req.kernel_memory),
        ("--kernel-memory-tcp", "kernelTCP", req.kernel_memory_tcp),
        ("--memory-reservation", "reservation", req.memory_reservation),
    ):
        if value is not None:
            r["memory"][key] = parse_ram(flag, value)
    if req.pids_limit is not None:
        r["pids"]["limit"] = parse_int("--pids-limit", req.pids_limit, False)
    return r


def parse_ram(flag: str, value: str) -> int:
    """A byte count with an optional binary unit; "-1" is unlimited."""
    import re

    if value == "-1":
        return -1
    match = re.match(_RAM, value.strip(), re.IGNORECASE)
    if not match:
        raise PyruncError(f"invalid value for {flag}: {value!r} is not a size like 64M")
    number = float(match.group(1)) * _RAM_UNITS[(match.group(2) or "").lower() or None]
    if number > INT64_MAX:
        raise PyruncError(f"invalid value for {flag}: {value!r} is out of range")
    return int(number)


def parse_int(flag: str, value: str, unsigned: bool) -> int:
    try:
        number = int(value, 10)
    except ValueError:
        raise PyruncError(f"invalid value for {flag}: {value!r} is not an integer") from None
    low, high = (0, UINT64_MAX) if unsigned else (-(2**63), INT64_MAX)
    if not low <= number <= high:
        raise PyruncError(f"invalid value for {flag}: {value!r} is out of range")
    return number


def read_resources(source: str) -> dict[str, Any]:
    """The JSON object of ``--resources FILE|-``, its known fields type-checked.

    Unknown fields are ignored, as runc's decoder ignores them (containerd
    and CRI-O send whole LinuxResources objects); a known field of the wrong
    type is an error, before anything is written.
    """
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as f:
                text = f.read()
    except OSError as err:
        raise PyruncError(f"--resources {source}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise PyruncError(f"--resources {source}: not JSON: {err}") from None
    check_resources(data, f"--resources {source}")
    return data  # type: ignore[no-any-return]


def _check_value(where: str, kind: str, value: Any) -> None:
    if kind == "s":
        ok = isinstance(value, str)
    elif kind == "b":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok:
            low = -(2**63) if kind == "i" else 0
            high = {"i": INT64_MAX, "u": UINT64_MAX, "u16": 65535}[kind]
            ok = low <= value <= high
    if not ok:
        wanted = {"s": "a string", "b": "a boolean", "i": "a 64-bit integer",
                  "u": "a non-negative 64-bit integer", "u16": "an integer in 0-65535"}[kind]
        raise PyruncError(f"{where}: {json.dumps(value)} is not {wanted}")


def check_resources(data: Any, where: str) -> None:
    if not isinstance(data, dict):
        raise PyruncError(f"{where}: must be a JSON object")
    for section, fields in _FIELDS.items():
        part = data.get(section)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise PyruncError(f"{where}: {section}: must be an object")
        for name, kind in fields.items():
            if part.get(name) is not None:
                _check_value(f"{where}: {section}.{name}", kind, part[name])
    for name in _DEVICE_LISTS:
        for i, dev in enumerate((data.get("blockIO") or {}).get(name) or []):
            if not isinstance(dev, dict):
                raise PyruncError(f"{where}: blockIO.{name}[{i}]: must be an object")
            for key, kind in (("major", "i"), ("minor", "i"), ("weight", "u16"),
                              ("leafWeight", "u16"), ("rate", "u")):
                if dev.get(key) is not None:
                    _check_value(f"{where}: blockIO.{name}[{i}].{key}", kind, dev[key])
    unified = data.get("unified")
    if unified is not None and not (
        isinstance(unified, dict) and all(isinstance(v, str) for v in unified.values())
    ):
        raise PyruncError(f"{where}: unified: must be an object of strings")


def check_limits(r: Mapping[str, Any]) -> None:
    """Refuse what no kernel takes, before anything is written."""
    memory = r.get("memory") or {}
    for name in ("limit", "reservation", "swap"):
        value = memory.get(name)
        if value is not None and value < -1:
            raise PyruncError(f"memory.{name} {value}: must be -1 (unlimited) or a byte count")
    quota = (r.get("cpu") or {}).get("quota")
    if quota is not None and quota < -1:
        raise PyruncError(f"cpu.quota {quota}: must be -1 (unlimited) or a time in us")
    limit = (r.get("pids") or {}).get("limit")
    if limit is not None and limit < -1:
        raise PyruncError(f"pids.limit {limit}: must be -1 (unlimited) or a count")
    weight = (r.get("blockIO") or {}).get("weight")
    if weight and not 10 <= weight <= 1000:
        raise PyruncError(f"blockIO.weight {weight}: must be within 10-1000")


def _upsert(devices: list[dict[str, Any]], new: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    for dev in reversed(devices):
        if dev.get("major") == new.get("major") and dev.get("minor") == new.get("minor"):
            dev.update({k: new[k] for k in keys if new.get(k) is not None})
            return
    devices.append(dict(new))


def merge(old: Mapping[str, Any], r: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded resources with the update applied, by runc's rules.

    Only what the update names changes.  A period or a quota given alone
    keeps the other; "memory -1" without a swap value makes swap unlimited
    too; a pids limit of 0 becomes 1 (runc's mapping, as systemd refuses 0);
    setting cpu.idle without shares forgets the shares.
    """
    merged = json.loads(json.dumps(old))  # a deep copy of JSON-shaped data, without copy
    memory = dict(r.get("memory") or {})
    cpu = dict(r.get("cpu") or {})
    block = r.get("blockIO") or {}
    if memory.get("limit") == -1 and memory.get("swap") is None:
        memory["swap"] = 0
    if cpu.get("idle") is not None and cpu.get("shares") is None:
        cpu["shares"] = 0  # the kernel refuses cpu.shares while cpu.idle is 1
    mem = merged.setdefault("memory", {})
    for name in ("limit", "reservation", "swap"):
        if memory.get(name) is not None:
            mem[name] = memory[name]
    c = merged.setdefault("cpu", {})
    for name in ("shares", "burst", "realtimePeriod", "realtimeRuntime", "idle"):
        if cpu.get(name) is not None:
            c[name] = cpu[name]
    for name in ("period", "quota"):
        if cpu.get(name):
            c[name] = cpu[name]
    for name in ("cpus", "mems"):
        if cpu.get(name):
            c[name] = cpu[name]
    b = merged.setdefault("blockIO", {})
    for name in ("weight", "leafWeight"):
        if block.get(name) is not None:
            b[name] = block[name]
    for name in _DEVICE_LISTS:
        for dev in block.get(name) or []:
            keys = ("weight", "leafWeight") if name == "weightDevice" else ("rate",)
            _upsert(b.setdefault(name, []), dev, keys)
    limit = (r.get("pids") or {}).get("limit")
    if limit is not None:
        merged.setdefault("pids", {})["limit"] = 1 if limit == 0 else limit
    if r.get("unified"):
        merged.setdefault("unified", {}).update(r["unified"])
    return {key: value for key, value in merged.items() if value not in ({}, [])}


def _writable(resources: Mapping[str, Any]) -> dict[str, Any]:
    """What update writes: the limits it can change, never device rules."""
    keep = ("memory", "cpu", "blockIO", "pids", "unified")
    out = {key: resources[key] for key in keep if resources.get(key)}
    if "memory" in out:
        out["memory"] = {k: v for k, v in out["memory"].items()
                         if k in ("limit", "reservation", "swap")}
    return out


def update(root: str, container_id: str, r: dict[str, Any], rdt: Mapping[str, str]) -> None:
    from runpy_exec.linux import cgroups

    container = store.load(root, container_id)
    if container.runtime != "pyrunc":
        raise PyruncError(f"container {container_id!r} was created by {container.runtime}: "
                          f"update it with {container.runtime}")
    for flag, value in rdt.items():
        if value:
            raise PyruncError(f"{flag}: Intel RDT is not enabled on this host "
                              "(no resctrl filesystem), and pyrunc does not manage it")
    memory = r.get("memory") or {}
    if memory.get("kernel") is not None or memory.get("kernelTCP") is not None:
        from runpy_exec import log

        log.warning("kernel memory settings are ignored: the kernel no longer enforces them")
    check_limits(r)
    with store.locked(container.state_dir):
        if store.status_of(container) == "stopped":
            raise PyruncError(f"container {container_id!r} is not running")
        linux = container.config.setdefault("linux", {})
        old = linux.get("resources") or {}
        new = merge(old, r)
        before = _snapshot(container.cgroup_paths, new)
        try:
            cgroups.apply_resources(container.cgroup_paths, _writable(new))
        except PyruncError as err:
            failed = _restore(before)
            if failed:
                raise PyruncError(f"{err}; restoring the previous limits failed too: "
                                  f"{failed}") from None
            raise PyruncError(f"{err}; the previous limits are kept") from None
        linux["resources"] = new
        store.save(container)


# The files update may write, per hierarchy: read before, written back on failure.
_V1_FILES = {
    "memory": ("memory.memsw.limit_in_bytes", "memory.limit_in_bytes",
               "memory.soft_limit_in_bytes"),
    "cpu": ("cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us",
            "cpu.rt_period_us", "cpu.rt_runtime_us", "cpu.idle"),
    "cpuset": ("cpuset.cpus", "cpuset.mems"),
    "pids": ("pids.max",),
    "blkio": ("blkio.weight", "blkio.bfq.weight", "blkio.leaf_weight"),
}
_V2_FILES = (
    "memory.swap.max", "memory.max", "memory.low", "cpu.weight", "cpu.max", "cpu.max.burst",
    "cpu.idle", "cpuset.cpus", "cpuset.mems", "pids.max", "io.weight", "io.bfq.weight",
)


def _snapshot(paths: Mapping[str, str], new: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(controller, file path, value) of every limit file update may touch."""
    import os

    from runpy_exec.linux import cgroups

    if cgroups.is_unified(paths):
        unified = [name for name in new.get("unified") or {}
                   if "/" not in name and name not in (".", "..")]  # v2.apply refuses others
        files = [("", name) for name in (*_V2_FILES, *unified)]
    else:
        files = [(c, name) for c, names in _V1_FILES.items() if c in paths for name in names]
    saved = []
    for controller, name in files:
        path = os.path.join(paths[controller], name)
        try:
            with open(path, encoding="utf-8") as f:
                saved.append((controller, path, f.read().strip()))
        except OSError:
            continue
    return saved


def _restore(saved: list[tuple[str, str, str]]) -> str:
    """Write the saved values back; "" when all went in, else the last failure.

    Two passes: a value can be refused until its partner is back (v1's
    memory against memory+swap, a cpu period against the parent's quota).
    """
    from runpy_exec.linux.cgroups import common

    failure = ""
    pending = saved
    for _ in range(2):
        failed = []
        for controller, path, value in pending:
            directory, name = path.rsplit("/", 1)
            try:
                if common.read(controller, directory, name) != value:
                    common.write(controller, directory, name, value)
            except PyruncError as err:
                failed.append((controller, path, value))
                failure = str(err)
        if not failed:
            return ""
        pending = failed
    return failure
