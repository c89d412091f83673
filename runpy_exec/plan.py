"""What a container process must become, fully resolved.

A :class:`ProcessPlan` is the contract between resolution (pure code that
knows OCI, users and flags) and process setup (the child-side code that makes
syscalls).  Everything in it is already a number or a final string, so the
child does no parsing and no lookups after ``fork``.
"""

from __future__ import annotations

from runpy_exec.records import NamedTuple

# The kernel's numbering (include/uapi/linux/capability.h): the index is the number.
CAPABILITY_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)


class CapabilitySets(NamedTuple):
    """The five Linux capability sets, as capability numbers (CAPABILITY_NAMES' indexes)."""

    bounding: frozenset[int] = frozenset()
    effective: frozenset[int] = frozenset()
    inheritable: frozenset[int] = frozenset()
    permitted: frozenset[int] = frozenset()
    ambient: frozenset[int] = frozenset()


class Rlimit(NamedTuple):
    resource: int  # resource.RLIMIT_* number
    soft: int
    hard: int


class Scheduler(NamedTuple):
    policy: int  # os.SCHED_* number
    nice: int = 0
    priority: int = 0


class IoPriority(NamedTuple):
    ioprio_class: int  # IOPRIO_CLASS_RT=1, BE=2, IDLE=3
    priority: int


class ProcessPlan(NamedTuple):
    args: list[str]
    env: list[str]
    cwd: str
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    umask: int | None = None
    capabilities: CapabilitySets | None = None  # None: keep what the process has
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str | None = None
    selinux_label: str | None = None
    scheduler: Scheduler | None = None
    io_priority: IoPriority | None = None
    cpu_affinity_initial: frozenset[int] | None = None
    cpu_affinity_final: frozenset[int] | None = None
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (rows, columns)
