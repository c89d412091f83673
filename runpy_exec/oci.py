"""Pydantic models of the OCI runtime spec, and the loaders built on them.

The models are the single source of truth for what pyrunc accepts in a
config.json, a process.json and a state document: the JSON Schemas in
``schemas/`` are generated from them, and :mod:`runpy_exec.validate` checks
process.json against the generated schema so that ``exec`` never has to import
pydantic.

Acceptance follows runc 1.1.5 (which decodes with Go's ``encoding/json``):

* every model is strict, because Go refuses ``"0"`` or ``1.5`` for a uint32
  and ``1`` for a bool, where pydantic's lax mode would quietly coerce them;
* integers carry their Go type's range, so a negative uid is rejected here
  rather than wrapping round in a syscall;
* ``null`` is accepted wherever a field is optional, as Go leaves the field
  unset;
* unknown fields are ignored, as the runtime spec requires;
* a field is required when runc refuses a config without it (process,
  process.args, process.cwd, root, namespace type, hook path, seccomp
  actions and operators, rlimit type, device type and path, ...) or when
  without it the entry could only fail later (mount destination, ID mapping
  fields, throttle and weight device numbers);
* elsewhere a missing field takes the value Go's zero value gives it in
  runc: ``ociVersion`` (runc never reads it), ``process.user`` and its
  ``uid``/``gid`` (0: runc's own capabilities.bats sets ``{"uid": 0}``),
  rlimit ``soft``/``hard``, ``consoleSize`` sides, ``ioPriority.priority``,
  seccomp argument ``index``/``value`` and a network interface's
  ``priority`` (0).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runpy_exec.errors import PyruncError
from runpy_exec.validate import (
    EXEC_EXIT_CODE,
    PACKAGE_SCHEMA_DIR,
    format_violation,
    read_json,
)

Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Uint16 = Annotated[int, Field(ge=0, le=2**16 - 1)]
Uint32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
Uint64 = Annotated[int, Field(ge=0, le=2**64 - 1)]


class OciModel(BaseModel):
    """Shared configuration: strict like Go's decoder, tolerant of extra keys."""

    model_config = ConfigDict(strict=True, extra="ignore")


# --- process -----------------------------------------------------------------


class ConsoleSize(OciModel):
    height: Uint64 | None = None
    width: Uint64 | None = None


class User(OciModel):
    uid: Uint32 | None = None
    gid: Uint32 | None = None
    umask: Uint32 | None = None
    additionalGids: list[Uint32] | None = None
    username: str | None = None


class Capabilities(OciModel):
    """Capability names stay strings: runc warns about unknown ones, not fails."""

    bounding: list[str] | None = None
    effective: list[str] | None = None
    inheritable: list[str] | None = None
    permitted: list[str] | None = None
    ambient: list[str] | None = None


class Rlimit(OciModel):
    """``type`` stays a string: the set of RLIMIT_* names is the kernel's to grow."""

    type: str
    hard: Uint64 | None = None
    soft: Uint64 | None = None


class Scheduler(OciModel):
    policy: Literal[
        "SCHED_OTHER",
        "SCHED_FIFO",
        "SCHED_RR",
        "SCHED_BATCH",
        "SCHED_ISO",
        "SCHED_IDLE",
        "SCHED_DEADLINE",
    ]
    nice: Int32 | None = None
    priority: Int32 | None = None
    flags: list[str] | None = None
    runtime: Uint64 | None = None
    deadline: Uint64 | None = None
    period: Uint64 | None = None


class IoPriority(OciModel):
    class_: Literal["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"] = Field(
        alias="class"
    )
    priority: Int64 | None = None


class CpuAffinity(OciModel):
    initial: str | None = None
    final: str | None = None


class Process(OciModel):
    """A container process; also the whole of an ``exec --process`` file.

    ``args`` must be non-empty and ``cwd`` absolute because runc's
    validateProcessSpec refuses anything else (``commandLine`` is Windows-only
    and does not stand in for ``args`` on Linux).
    """

    terminal: bool | None = None
    consoleSize: ConsoleSize | None = None
    user: User | None = None
    args: list[str] = Field(min_length=1)
    commandLine: str | None = None
    env: list[str] | None = None
    cwd: str = Field(pattern="^/")
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] | None = None
    noNewPrivileges: bool | None = None
    apparmorProfile: str | None = None
    oomScoreAdj: Int64 | None = None
    scheduler: Scheduler | None = None
    selinuxLabel: str | None = None
    ioPriority: IoPriority | None = None
    execCPUAffinity: CpuAffinity | None = None


# --- filesystem and hooks ----------------------------------------------------


class Root(OciModel):
    path: str
    readonly: bool | None = None


class Mount(OciModel):
    destination: str
    type: str | None = None
    source: str | None = None
    options: list[str] | None = None


class Hook(OciModel):
    path: str
    args: list[str] | None = None
    env: list[str] | None = None
    timeout: Int64 | None = None


class Hooks(OciModel):
    prestart: list[Hook] | None = None
    createRuntime: list[Hook] | None = None
    createContainer: list[Hook] | None = None
    startContainer: list[Hook] | None = None
    poststart: list[Hook] | None = None
    poststop: list[Hook] | None = None


# --- linux -------------------------------------------------------------------


class IdMapping(OciModel):
    containerID: Uint32
    hostID: Uint32
    size: Uint32


class Namespace(OciModel):
    type: Literal["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]
    path: str | None = None


class Device(OciModel):
    type: Literal["c", "b", "u", "p"]
    path: str
    major: Int64 | None = None
    minor: Int64 | None = None
    fileMode: Uint32 | None = None
    uid: Uint32 | None = None
    gid: Uint32 | None = None


class DeviceCgroup(OciModel):
    """``allow`` is optional as in runc, where a missing one means deny."""

    allow: bool | None = None
    type: str | None = None
    major: Int64 | None = None
    minor: Int64 | None = None
    access: str | None = None


class Memory(OciModel):
    limit: Int64 | None = None
    reservation: Int64 | None = None
    swap: Int64 | None = None
    kernel: Int64 | None = None
    kernelTCP: Int64 | None = None
    swappiness: Uint64 | None = None
    disableOOMKiller: bool | None = None
    useHierarchy: bool | None = None
    checkBeforeUpdate: bool | None = None


class Cpu(OciModel):
    shares: Uint64 | None = None
    quota: Int64 | None = None
    burst: Uint64 | None = None
    period: Uint64 | None = None
    realtimeRuntime: Int64 | None = None
    realtimePeriod: Uint64 | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: Int64 | None = None


class Pids(OciModel):
    """``limit`` is optional as in runc, where a missing one leaves pids alone."""

    limit: Int64 | None = None


class WeightDevice(OciModel):
    major: Int64
    minor: Int64
    weight: Uint16 | None = None
    leafWeight: Uint16 | None = None


class ThrottleDevice(OciModel):
    major: Int64
    minor: Int64
    rate: Uint64


class BlockIO(OciModel):
    weight: Uint16 | None = None
    leafWeight: Uint16 | None = None
    weightDevice: list[WeightDevice] | None = None
    throttleReadBpsDevice: list[ThrottleDevice] | None = None
    throttleWriteBpsDevice: list[ThrottleDevice] | None = None
    throttleReadIOPSDevice: list[ThrottleDevice] | None = None
    throttleWriteIOPSDevice: list[ThrottleDevice] | None = None


class HugepageLimit(OciModel):
    pageSize: str
    limit: Uint64


class InterfacePriority(OciModel):
    name: str
    priority: Uint32 | None = None


class Network(OciModel):
    classID: Uint32 | None = None
    priorities: list[InterfacePriority] | None = None


class Rdma(OciModel):
    hcaHandles: Uint32 | None = None
    hcaObjects: Uint32 | None = None


class Resources(OciModel):
    devices: list[DeviceCgroup] | None = None
    memory: Memory | None = None
    cpu: Cpu | None = None
    pids: Pids | None = None
    blockIO: BlockIO | None = None
    hugepageLimits: list[HugepageLimit] | None = None
    network: Network | None = None
    rdma: dict[str, Rdma] | None = None
    unified: dict[str, str] | None = None


SeccompAction = Literal[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
]


class SyscallArg(OciModel):
    index: Uint64 | None = None
    value: Uint64 | None = None
    valueTwo: Uint64 | None = None
    op: Literal[
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ]


class Syscall(OciModel):
    names: list[str]
    action: SeccompAction
    errnoRet: Uint64 | None = None
    args: list[SyscallArg] | None = None


class Seccomp(OciModel):
    """Architectures and flags stay strings: libseccomp decides what exists."""

    defaultAction: SeccompAction
    defaultErrnoRet: Uint64 | None = None
    architectures: list[str] | None = None
    flags: list[str] | None = None
    listenerPath: str | None = None
    listenerMetadata: str | None = None
    syscalls: list[Syscall] | None = None


class IntelRdt(OciModel):
    closID: str | None = None
    l3CacheSchema: str | None = None
    memBwSchema: str | None = None
    enableCMT: bool | None = None
    enableMBM: bool | None = None


class Personality(OciModel):
    domain: Literal["LINUX", "LINUX32"]
    flags: list[str] | None = None


class Linux(OciModel):
    uidMappings: list[IdMapping] | None = None
    gidMappings: list[IdMapping] | None = None
    sysctl: dict[str, str] | None = None
    resources: Resources | None = None
    cgroupsPath: str | None = None
    namespaces: list[Namespace] | None = None
    devices: list[Device] | None = None
    seccomp: Seccomp | None = None
    rootfsPropagation: str | None = None
    maskedPaths: list[str] | None = None
    readonlyPaths: list[str] | None = None
    mountLabel: str | None = None
    intelRdt: IntelRdt | None = None
    personality: Personality | None = None


# --- documents ---------------------------------------------------------------


class Spec(OciModel):
    """config.json.  ``process`` and ``root`` are required because runc's
    create and run refuse a config without them."""

    ociVersion: str | None = None
    process: Process
    root: Root
    hostname: str | None = None
    domainname: str | None = None
    mounts: list[Mount] | None = None
    hooks: Hooks | None = None
    annotations: dict[str, str] | None = None
    linux: Linux | None = None


class State(OciModel):
    """``status`` stays a string: runc reports ``paused``, which the spec lacks."""

    ociVersion: str
    id: str
    status: str
    pid: Int64 | None = None
    bundle: str
    annotations: dict[str, str] | None = None


# --- loaders -----------------------------------------------------------------


def _load(model: type[OciModel], path: str, exit_code: int) -> dict[str, Any]:
    data = read_json(path, exit_code)
    try:
        validated = model.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        message = format_violation(path, tuple(first["loc"]), first["msg"])
        raise PyruncError(message, exit_code) from None
    dumped: dict[str, Any] = validated.model_dump(by_alias=True, exclude_none=True)
    return dumped


def load_spec(path: str) -> dict[str, Any]:
    """Read and validate a bundle's config.json for create and run.

    The result is the input minus unknown keys and nulls, in the models' field
    order, so the rest of the runtime can trust every key it finds.
    """
    return _load(Spec, path, 1)


def load_process(path: str) -> dict[str, Any]:
    """Read and validate an ``exec --process`` file, as the pydantic reference.

    exec itself uses :func:`runpy_exec.validate.load_process_fast`, which must
    agree with this function; failures carry exec's exit code 255.
    """
    return _load(Process, path, EXEC_EXIT_CODE)


# --- schema export -----------------------------------------------------------

SCHEMA_MODELS: dict[str, type[OciModel]] = {
    "config.schema.json": Spec,
    "process.schema.json": Process,
    "state.schema.json": State,
}
TOP_LEVEL_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
REGENERATE_COMMAND = ".venv/bin/python -m runpy_exec.oci"


def schema_texts() -> dict[str, str]:
    """The schema files' exact contents, so the staleness test compares bytes."""
    texts = {}
    for name, model in SCHEMA_MODELS.items():
        schema: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
        schema.update(model.model_json_schema(by_alias=True))
        texts[name] = json.dumps(schema, indent=2) + "\n"
    return texts


def write_schemas(directory: str | Path) -> None:
    """Write the three schemas into ``directory``, creating it if needed."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    for name, text in schema_texts().items():
        (target / name).write_text(text, encoding="utf-8")


def main() -> None:
    """Regenerate the packaged copy (what exec reads once installed) and, in a
    source checkout, the top-level copy that documents the formats."""
    directories = [Path(PACKAGE_SCHEMA_DIR)]
    if (TOP_LEVEL_SCHEMA_DIR.parent / "pyproject.toml").exists():
        directories.insert(0, TOP_LEVEL_SCHEMA_DIR)
    for directory in directories:
        write_schemas(directory)
        print(f"wrote schemas to {directory}", file=sys.stderr)


if __name__ == "__main__":
    main()
