"""What the user asked for, as parsed from the command line, before resolution.

These are named tuples rather than pydantic models (or dataclasses) on
purpose: exec runs for every Kubernetes exec probe, pydantic costs ~150 ms to
import and build, and dataclasses pulls in ``inspect`` (~15 ms); the command
line has already typed every value.  Files the user
hands us (config.json, process.json) are validated against the pydantic
models' schemas instead (see ``oci`` and ``validate``).
"""

from __future__ import annotations

from runpy_exec.records import NamedTuple


class GlobalOptions(NamedTuple):
    root: str = "/run/pyrunc"
    log: str | None = None
    log_format: str = "text"  # "text" or "json"
    debug: bool = False
    net_raw: bool = False
    systemd_cgroup: bool = False


class ExecRequest(NamedTuple):
    container_id: str
    args: tuple[str, ...] = ()
    cwd: str | None = None
    env: tuple[str, ...] = ()
    user: str | None = None  # "uid[:gid]" or "name[:group]"
    additional_gids: tuple[str, ...] = ()
    caps: tuple[str, ...] = ()
    no_new_privs: bool = False
    tty: bool = False
    console_socket: str | None = None
    detach: bool = False
    pid_file: str | None = None
    process_file: str | None = None
    preserve_fds: int = 0
    cgroups: tuple[str, ...] = ()
    ignore_paused: bool = False
    apparmor: str | None = None
    process_label: str | None = None
    internal_pid_file: str | None = None
    pass_fds: tuple[str, ...] = ()  # "M:N", parsed by resolve.parse_pass_fd
    exec_fd: int | None = None
    timeout: str | None = None  # a duration, parsed by resolve.parse_duration
    pidfd_socket: str | None = None
    session: str | None = None  # a reattachable session's name (runpy_exec.sessions)
    session_idle: str | None = None  # a duration: end the session after this long unattached
    size: str | None = None  # the session's terminal size, "ROWSxCOLS"


class CreateRequest(NamedTuple):
    container_id: str
    bundle: str = "."
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    pidfd_socket: str | None = None


class UpdateRequest(NamedTuple):
    """``update``'s options as given, each a string that ``update`` parses as runc
    does (sizes with units, -1 for unlimited); ``resources`` is a linux.resources
    JSON file, or "-" for stdin, and then the other limits are ignored."""

    container_id: str
    resources: str | None = None
    blkio_weight: str | None = None
    cpu_period: str | None = None
    cpu_quota: str | None = None
    cpu_burst: str | None = None
    cpu_share: str | None = None
    cpu_rt_period: str | None = None
    cpu_rt_runtime: str | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    cpu_idle: str | None = None
    kernel_memory: str | None = None
    kernel_memory_tcp: str | None = None
    memory: str | None = None
    memory_reservation: str | None = None
    memory_swap: str | None = None
    pids_limit: str | None = None
    l3_cache_schema: str | None = None
    mem_bw_schema: str | None = None
