"""Turn an OCI ``process`` object plus exec's flags into a :class:`ProcessPlan`.

Everything here is pure: the caller reads the container's /etc/passwd and
/etc/group (see :mod:`runpy_exec.containerfs`) and the kernel's last
capability, and hands them in as values.  That keeps every rule testable
without root and keeps lookups out of the forked child.

This module is imported by every ``exec`` (one per Kubernetes probe), so it
only uses modules that :mod:`runpy_exec.plan` has already loaded, plus
``resource``; ``typing`` is left for the type checker alone.

The rules follow runc 1.1.5 (observed by running it), with the differences
called out where they are made: names in ``--user`` and ``--additional-gids``,
ids up to the kernel's 2^32-2, unknown resources refused before fork, and
gVisor's rule that CAP_NET_RAW needs the global ``--net-raw``.
"""

from __future__ import annotations

import os
import posixpath
import resource

from runpy_exec.errors import PyruncError
from runpy_exec.plan import (
    CAPABILITY_NAMES,
    CapabilitySets,
    IoPriority,
    ProcessPlan,
    Rlimit,
    Scheduler,
)
from runpy_exec.records import NamedTuple
from runpy_exec.requests import ExecRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    JsonObject = Mapping[str, Any]

EXEC_ERROR = 255
MAX_ID = (1 << 32) - 2  # (uid_t)-1 means "no change" to the kernel, so it is never an id.
DEFAULT_HOME = "/"
_MAX_CPU = 1 << 16

if TYPE_CHECKING:
    Warn = Callable[[str], None]


class ResolveError(PyruncError):
    """A process that cannot be built; worded and coded as one of exec's own errors.

    ``detail`` is kept apart so that create, which shares these rules for
    the container's init, can report the same problem as its own (exit 1,
    no "exec failed" prefix).
    """

    def __init__(self, detail: str) -> None:
        super().__init__(f"exec failed: {detail}", EXEC_ERROR)
        self.detail = detail


def _quote(text: str) -> str:
    """Quote like Go's ``%q``, so messages that runc quotes read the same."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    out.append('"')
    return "".join(out)


def _is_decimal(text: str) -> bool:
    """ASCII digits only: ``int()`` would also take "+1", " 1", "1_0" and other scripts' digits."""
    return text.isascii() and text.isdigit()


def _check_id(value: int, what: str) -> int:
    if not 0 <= value <= MAX_ID:
        raise ResolveError(f"{what} {value} is out of range: ids must be in 0-{MAX_ID}")
    return value


def _parse_id(text: str, what: str) -> int | None:
    """A numeric id, or None for a name; "-1" is a number (out of range), not a name."""
    digits = text[1:] if text[:1] in "+-" else text
    if not _is_decimal(digits):
        return None
    if len(digits) > len(str(MAX_ID)):  # and int() refuses more than 4300 digits
        shown = text if len(text) <= 24 else text[:20] + "..."
        raise ResolveError(f"{what} {shown} is out of range: ids must be in 0-{MAX_ID}")
    return _check_id(int(text), what)


# --- /etc/passwd and /etc/group ------------------------------------------------


class PasswdEntry(NamedTuple):
    name: str
    uid: int
    gid: int
    home: str


class GroupEntry(NamedTuple):
    name: str
    gid: int
    members: tuple[str, ...]


def _records(text: str, min_fields: int) -> Iterable[list[str]]:
    """The colon-separated records of a passwd-style file, skipping what libc skips.

    glibc ignores blank lines, ``#`` comments and lines it cannot parse, and
    NIS ``+``/``-`` compat lines name no local entry.  runc's parser instead
    reads a bad number as 0, which would turn a garbled line into root; we
    side with libc.
    """
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#+-":
            continue
        fields = line.split(":")
        if len(fields) >= min_fields and fields[0]:
            yield fields


def parse_passwd(text: str) -> list[PasswdEntry]:
    entries = []
    for fields in _records(text, 4):
        if _is_decimal(fields[2]) and _is_decimal(fields[3]):
            home = fields[5] if len(fields) > 5 else ""
            entries.append(PasswdEntry(fields[0], int(fields[2]), int(fields[3]), home))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    entries = []
    for fields in _records(text, 3):
        if _is_decimal(fields[2]):
            listed = fields[3].split(",") if len(fields) > 3 else []
            members = tuple(m.strip() for m in listed if m.strip())
            entries.append(GroupEntry(fields[0], int(fields[2]), members))
    return entries


# --- users and groups ----------------------------------------------------------


class ExecUser(NamedTuple):
    uid: int
    gid: int
    home: str
    supplementary: tuple[int, ...] = ()  # from /etc/group membership, named users only


def _home_of(uid: int, passwd: Sequence[PasswdEntry]) -> str:
    """The first matching entry wins, as in libc and runc; no entry means "/"."""
    for entry in passwd:
        if entry.uid == uid:
            return entry.home
    return DEFAULT_HOME


def _lookup_group(text: str, group: Sequence[GroupEntry]) -> int:
    gid = _parse_id(text, "gid")
    if gid is not None:
        return gid
    for entry in group:
        if entry.name == text:
            return entry.gid
    raise ResolveError(f"unable to find group {text}: no matching entries in group file")


def resolve_user(
    spec: str | None,
    default_uid: int,
    default_gid: int,
    passwd: Sequence[PasswdEntry],
    group: Sequence[GroupEntry],
) -> ExecUser:
    """Resolve ``--user`` (``uid``, ``name``, either with ``:gid`` or ``:group``).

    Numbers follow runc 1.1.5, which only takes numbers: a uid alone keeps
    the process's gid (not the passwd one), and no /etc/group membership is
    added, because runc always hands libcontainer an explicit ``uid:gid``.
    Names are our extension and follow Docker's lookup (libcontainer's
    ``GetExecUser``): a user name brings its passwd gid and, when no group is
    given, the groups that list it as a member.  A number is always an id,
    even when a user or group carries that number as its name.
    """
    _check_id(default_uid, "uid")
    _check_id(default_gid, "gid")
    if not spec:
        return ExecUser(default_uid, default_gid, _home_of(default_uid, passwd))
    user_text, sep, group_text = spec.partition(":")
    if not user_text or (sep and not group_text):
        raise ResolveError(f"invalid --user value {_quote(spec)}: want uid[:gid] or name[:group]")
    uid = _parse_id(user_text, "uid")
    if uid is not None:
        gid = _lookup_group(group_text, group) if sep else default_gid
        return ExecUser(uid, gid, _home_of(uid, passwd))
    entry = next((e for e in passwd if e.name == user_text), None)
    if entry is None:
        raise ResolveError(f"unable to find user {user_text}: no matching entries in passwd file")
    uid, gid = _check_id(entry.uid, "uid"), _check_id(entry.gid, "gid")
    if sep:
        return ExecUser(uid, _lookup_group(group_text, group), entry.home)
    member_of = tuple(g.gid for g in group if entry.name in g.members)
    return ExecUser(uid, gid, entry.home, member_of)


def resolve_additional_gids(values: Iterable[str], group: Sequence[GroupEntry]) -> tuple[int, ...]:
    """``--additional-gids``: numbers, or (our extension to runc) group names.

    runc 1.1.5 rejects a negative number with the message kept below; it
    also collapses duplicates, which we do keeping the order given.
    """
    gids: list[int] = []
    for value in values:
        if value.startswith("-") and _is_decimal(value[1:]):
            raise ResolveError(f"additional-gids must be a positive number {value}")
        gid = _lookup_group(value, group)
        if gid not in gids:
            gids.append(gid)
    return tuple(gids)


def _unique(*parts: Iterable[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(gid for part in parts for gid in part))


# --- environment ---------------------------------------------------------------


def _check_env_entry(entry: str) -> str:
    """The name of a valid ``NAME=value`` entry, else runc's error for it."""
    name, sep, value = entry.partition("=")
    if not sep:
        raise ResolveError(f"invalid environment variable: {_quote(entry)}")
    if not name:
        raise ResolveError(f"environment variable name can't be empty: {_quote(entry)}")
    if "\0" in name:
        raise ResolveError(f"environment variable name can't contain null(\\x00): {_quote(entry)}")
    if "\0" in value:
        raise ResolveError(f"environment variable value can't contain null(\\x00): {_quote(entry)}")
    return name


def merge_env(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Apply ``--env`` on top of the spec's env, one variable per name.

    runc sets each entry with setenv(3) in order, so a name keeps the place
    of its first appearance and the value of its last; values are taken
    verbatim (commas and further ``=`` included).
    """
    merged: dict[str, str] = {}
    for entry in (*base, *overrides):
        merged[_check_env_entry(entry)] = entry
    return list(merged.values())


def ensure_home(env: Sequence[str], home: str) -> list[str]:
    """Set HOME from passwd unless the env already has a non-empty one (runc's rule)."""
    out = list(env)
    for index, entry in enumerate(out):
        if entry.startswith("HOME="):
            if entry != "HOME=":
                return out
            out[index] = f"HOME={home}"
            return out
    out.append(f"HOME={home}")
    return out


# --- capabilities --------------------------------------------------------------

_CAP_NUMBERS = {f"CAP_{name}": number for number, name in enumerate(CAPABILITY_NAMES)}
CAP_NET_RAW = _CAP_NUMBERS["CAP_NET_RAW"]
_CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def cap_number(name: str) -> int | None:
    """The number of ``CAP_X``, or None; runc takes only the exact upper-case name."""
    return _CAP_NUMBERS.get(name)


def resolve_capabilities(
    spec_caps: JsonObject | None,
    extra_caps: Sequence[str],
    net_raw: bool,
    last_cap: int,
) -> tuple[CapabilitySets, list[str]]:
    """The five sets for the process, and the warnings to log about them.

    - No ``capabilities`` object at all means no capabilities, as in runc
      (which then drops every set; it is not "keep the runtime's").
    - ``--cap`` goes into bounding, effective, permitted and ambient, as in
      runc 1.1.5 (later runcs skip ambient when the spec has no inheritable
      list); never into inheritable.
    - A name runc would not know, or one the running kernel lacks, is
      skipped with runc's warning, from the spec and from ``--cap`` alike:
      runc 1.1.5 only warns about ``exec --cap CAP_FOO``.
    - Without ``--net-raw`` CAP_NET_RAW leaves every set (gVisor's rule),
      with a warning when ``--cap`` asked for it.
    - Ambient keeps only what is also inheritable and permitted: the kernel
      refuses anything else, and runc ignores that refusal, so the default
      spec (ambient caps, no inheritable list) must not fail the exec.
    """
    unknown: set[str] = set()

    def numbers(names: Iterable[str] | None) -> set[int]:
        found = set()
        for name in names or ():
            number = cap_number(name)
            if number is None or number > last_cap:
                unknown.add(name)
            else:
                found.add(number)
        return found

    spec = spec_caps or {}
    sets = {key: numbers(spec.get(key)) for key in _CAP_SETS}
    extra = numbers(extra_caps)
    for key in ("bounding", "effective", "permitted", "ambient"):
        sets[key] |= extra
    warnings = []
    if unknown:
        listed = " ".join(sorted(unknown))
        warnings.append(f"ignoring unknown or unavailable capabilities: [{listed}]")
    if not net_raw:
        for found in sets.values():
            found.discard(CAP_NET_RAW)
        if CAP_NET_RAW in extra:
            warnings.append("ignoring --cap CAP_NET_RAW: raw sockets need the global --net-raw")
    sets["ambient"] &= sets["inheritable"] & sets["permitted"]
    caps = CapabilitySets(**{key: frozenset(found) for key, found in sets.items()})
    return caps, warnings


# --- rlimits, scheduling, cpus -------------------------------------------------

# resource.RLIMIT_LOCKS is missing from Python; 10 is its number on every Linux arch.
_RLIMITS = {
    name: getattr(resource, name, 10)
    for name in (
        "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
        "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
        "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
    )
}


def _rlimit_value(value: int) -> int:
    """OCI limits are uint64; Python's resource module takes C longs, -1 meaning infinity.

    Anything from 2^63 up is beyond any real limit, so it becomes infinity.
    """
    return resource.RLIM_INFINITY if value >= 1 << 63 else value


def parse_rlimits(items: Iterable[JsonObject]) -> tuple[Rlimit, ...]:
    """Refuse an unknown type or soft > hard now, where runc fails in the child."""
    limits = []
    for item in items:
        kind = item.get("type", "")
        if kind not in _RLIMITS:
            raise ResolveError(f"wrong rlimit value: {kind}")
        soft, hard = int(item.get("soft", 0)), int(item.get("hard", 0))
        if soft > hard:
            raise ResolveError(f"rlimit {kind}: soft limit {soft} is above hard limit {hard}")
        limits.append(Rlimit(_RLIMITS[kind], _rlimit_value(soft), _rlimit_value(hard)))
    return tuple(limits)


_SCHED_POLICIES = {
    "SCHED_OTHER": os.SCHED_OTHER,
    "SCHED_FIFO": os.SCHED_FIFO,
    "SCHED_RR": os.SCHED_RR,
    "SCHED_BATCH": os.SCHED_BATCH,
    "SCHED_IDLE": os.SCHED_IDLE,
}
_REALTIME = (os.SCHED_FIFO, os.SCHED_RR)


def scheduler_policy(name: str) -> int:
    """SCHED_DEADLINE needs sched_setattr and SCHED_ISO is not in mainline Linux: refused."""
    if name not in _SCHED_POLICIES:
        raise ResolveError(f"scheduler policy {name!r} is not supported")
    return _SCHED_POLICIES[name]


def parse_scheduler(spec: JsonObject) -> Scheduler:
    """Check what the kernel would refuse after fork; fold in SCHED_RESET_ON_FORK.

    SCHED_FLAG_RESET_ON_FORK is the one flag sched_setscheduler(2) can carry
    (OR-ed into the policy); the others need sched_setattr and are refused
    rather than dropped.
    """
    policy = scheduler_policy(spec.get("policy", ""))
    nice, priority = int(spec.get("nice", 0)), int(spec.get("priority", 0))
    if not -20 <= nice <= 19:
        raise ResolveError(f"invalid scheduler.nice: {nice} (want -20..19)")
    if policy in _REALTIME and not 1 <= priority <= 99:
        raise ResolveError(f"invalid scheduler.priority: {priority} (want 1..99 for "
                           "SCHED_FIFO and SCHED_RR)")
    if policy not in _REALTIME and priority:
        raise ResolveError("scheduler.priority can only be specified for SCHED_FIFO or SCHED_RR")
    if any(spec.get(key) for key in ("runtime", "deadline", "period")):
        raise ResolveError("scheduler.runtime/deadline/period are only for SCHED_DEADLINE")
    for flag in spec.get("flags") or ():
        if flag != "SCHED_FLAG_RESET_ON_FORK":
            raise ResolveError(f"scheduler flag {flag!r} is not supported")
        policy |= os.SCHED_RESET_ON_FORK
    return Scheduler(policy, nice, priority)


_IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


def ioprio_class(name: str) -> int:
    if name not in _IOPRIO_CLASSES:
        raise ResolveError(f"unknown ioPriority class {name!r}")
    return _IOPRIO_CLASSES[name]


def parse_io_priority(spec: JsonObject) -> IoPriority:
    priority = int(spec.get("priority", 0))
    if not 0 <= priority <= 7:
        raise ResolveError(f"invalid ioPriority.priority: {priority} (want 0..7)")
    return IoPriority(ioprio_class(spec.get("class", "")), priority)


def _cpu(text: str, whole: str) -> int:
    if not _is_decimal(text) or int(text) >= _MAX_CPU:
        raise ResolveError(f"invalid cpu list {_quote(whole)}: bad cpu number {_quote(text)}")
    return int(text)


def parse_cpu_list(text: str) -> frozenset[int]:
    """The kernel's list format, ``0-3,7``; surrounding whitespace (as in sysfs) is fine.

    An empty list is refused: affinity to no cpu cannot be set.  Numbers are
    bounded so that a typo cannot build a set of billions of cpus.
    """
    cpus: set[int] = set()
    for item in text.strip().split(","):
        first, dash, last = item.partition("-")
        low = _cpu(first, text)
        high = _cpu(last, text) if dash else low
        if high < low:
            raise ResolveError(f"invalid cpu list {_quote(text)}: range {item} is reversed")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def _cpu_affinity(spec: JsonObject | None, key: str) -> frozenset[int] | None:
    value = (spec or {}).get(key)
    return parse_cpu_list(value) if value else None


# --- exec flags ----------------------------------------------------------------


MAX_FD = 2**31 - 1  # fds are C ints


def parse_pass_fd(value: str) -> tuple[int, int]:
    """``--pass-fd M:N``: pyrunc's fd M becomes fd N in the process."""
    source, sep, target = value.partition(":")
    if not (sep and _is_decimal(source) and _is_decimal(target)
            and len(source) <= 10 and len(target) <= 10
            and int(source) <= MAX_FD and int(target) <= MAX_FD):
        raise ResolveError(f"invalid --pass-fd value {_quote(value)}: "
                           f"want M:N, two fd numbers in 0-{MAX_FD}")
    return int(source), int(target)


def check_preserve_fds(count: int, open_limit: int) -> None:
    """``--preserve-fds N`` hands over fds 3..N+2: each must be able to be open.

    Checked before anything is built from the count, so a huge N is an error,
    never a set of billions of fds.
    """
    if count > max(open_limit - 3, 0):
        raise ResolveError(f"--preserve-fds {count}: more fds than the open-file limit "
                           f"({open_limit}) allows")


def check_fd_target(value: str, target: int, open_limit: int) -> None:
    """``--pass-fd M:N``: the process can hold fd N only below its open-file limit."""
    if target >= open_limit:
        raise ResolveError(f"--pass-fd {value}: fd {target} is not below the open-file "
                           f"limit ({open_limit})")


_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
    "s": 1.0, "m": 60.0, "h": 3600.0,
}


def _split_number(text: str) -> tuple[str, str]:
    """Split ``digits[.digits]`` off the front of ``text``."""
    end, seen_dot = 0, False
    while end < len(text):
        ch = text[end]
        if ch == "." and not seen_dot:
            seen_dot = True
        elif not (ch.isascii() and ch.isdigit()):
            break
        end += 1
    return text[:end], text[end:]


def _split_unit(text: str) -> tuple[str, str]:
    end = 0
    while end < len(text) and not (text[end].isascii() and text[end].isdigit()) \
            and text[end] != ".":
        end += 1
    return text[:end], text[end:]


def parse_duration(value: str) -> float:
    """Seconds from a Go duration (``1m30s``, ``250ms``) or a bare number of seconds.

    Go's syntax is what runsc's and every Go runtime's flags take; the bare
    number is for people and scripts that mean seconds.  A sign is refused:
    a negative timeout has no meaning.
    """
    invalid = ResolveError(f"invalid duration {_quote(value)}: want e.g. 30, 5s, 1m30s or 250ms")
    number, rest = _split_number(value)
    if not rest and number.strip("."):
        return _bounded_duration(float(number), value)
    total, rest = 0.0, value
    while rest:
        number, rest = _split_number(rest)
        unit, rest = _split_unit(rest)
        if not number.strip(".") or unit not in _DURATION_UNITS:
            raise invalid
        total += float(number) * _DURATION_UNITS[unit]
    if not value:
        raise invalid
    return _bounded_duration(total, value)


# Go's time.Duration is int64 nanoseconds: ~292 years, as runsc's --timeout allows.
MAX_DURATION = (2**63 - 1) / 1e9


def _bounded_duration(seconds: float, value: str) -> float:
    if not seconds <= MAX_DURATION:  # also catches inf and nan from 400 digits
        raise ResolveError(f"invalid duration {_quote(value)}: more than the largest "
                           f"duration ({int(MAX_DURATION)}s, about 292 years)")
    return seconds


def validate_cgroup_subpath(value: str) -> tuple[tuple[str, ...], str]:
    """``--cgroup [ctrl[,ctrl]:]path`` as (controllers, path below the container's cgroup).

    The path is cleaned lexically and returned relative: "" is the
    container's own cgroup, and a leading "/" means that cgroup, not the
    host's root.  ``a/../b`` is accepted as runc accepts it; a path that
    climbs out is refused with runc's message.  Controllers () means every
    hierarchy (and is the only form on cgroup v2).
    """
    parts = value.split(":")
    if len(parts) > 2:
        raise ResolveError(f"invalid --cgroup argument: {value}")
    controllers = tuple(parts[0].split(",")) if len(parts) == 2 else ()
    if any(not name for name in controllers):
        raise ResolveError(f"invalid --cgroup argument: {value} (empty controller name)")
    path = parts[-1]
    cleaned = posixpath.normpath(path.lstrip("/") or ".")
    if cleaned == ".." or cleaned.startswith("../"):
        raise ResolveError(f"{path} is not a sub cgroup path")
    return controllers, "" if cleaned == "." else cleaned


def validate_cgroup_args(values: Sequence[str]) -> list[tuple[tuple[str, ...], str]]:
    """All ``--cgroup`` values; a path without controllers must come alone, as in runc."""
    parsed = [validate_cgroup_subpath(value) for value in values]
    if len(parsed) > 1:
        for value, (controllers, _) in zip(values, parsed, strict=True):
            if not controllers:
                raise ResolveError(
                    f"invalid --cgroup argument: {value} (missing <controller>: prefix)")
    return parsed


def check_cwd(cwd: str) -> None:
    if not cwd:
        raise ResolveError("Cwd property must not be empty")
    if not cwd.startswith("/"):
        raise ResolveError("Cwd must be an absolute path")
    if "\0" in cwd:
        raise ResolveError(f"cwd {_quote(cwd)} contains a NUL byte")


def _check_args(args: Sequence[str], empty_message: str) -> list[str]:
    """execve cannot take a NUL; finding it here beats a ValueError in the child."""
    if not args:
        raise ResolveError(empty_message)
    for arg in args:
        if "\0" in arg:
            raise ResolveError(f"argument {_quote(arg)} contains a NUL byte")
    return list(args)


# --- whole processes -----------------------------------------------------------


def _spec_user(process: JsonObject, override: str | None, passwd: list[PasswdEntry],
               group: list[GroupEntry]) -> tuple[ExecUser, list[int]]:
    """The process's user (``override`` is --user, if any) and its spec's additionalGids."""
    user_spec: JsonObject = process.get("user") or {}
    user = resolve_user(override, int(user_spec.get("uid", 0)), int(user_spec.get("gid", 0)),
                        passwd, group)
    spec_gids = [_check_id(int(gid), "additional gid") for gid in
                 user_spec.get("additionalGids") or ()]
    return user, spec_gids


def _users(passwd_text: str | None, group_text: str | None) -> tuple[
        list[PasswdEntry], list[GroupEntry]]:
    return parse_passwd(passwd_text or ""), parse_group(group_text or "")


def _console_size(process: JsonObject) -> tuple[int, int] | None:
    size = process.get("consoleSize")
    return (int(size.get("height", 0)), int(size.get("width", 0))) if size else None


def _optional(process: JsonObject, fallback: JsonObject, key: str) -> Any:
    """The process file's value, else the container's.

    That is what runc does for labels when ``--process`` leaves them out,
    and what later runcs do for the scheduler and I/O priority.
    """
    value = process.get(key)
    return value if value else fallback.get(key) or None


def _scheduling(
    scheduler: JsonObject | None, io_priority: JsonObject | None, affinity: JsonObject | None
) -> dict[str, Any]:
    return {
        "scheduler": parse_scheduler(scheduler) if scheduler else None,
        "io_priority": parse_io_priority(io_priority) if io_priority else None,
        "cpu_affinity_initial": _cpu_affinity(affinity, "initial"),
        "cpu_affinity_final": _cpu_affinity(affinity, "final"),
    }


def _report(warnings: Iterable[str], warn: Warn | None) -> None:
    """Without a ``warn``, pyrunc's log: where runc's own warnings would appear."""
    if warn is None:
        from runpy_exec import log

        warn = log.warning
    for message in warnings:
        warn(message)


def resolve_exec(
    process: JsonObject,
    request: ExecRequest,
    passwd_text: str | None,
    group_text: str | None,
    net_raw: bool,
    last_cap: int,
    warn: Warn | None = None,
) -> ProcessPlan:
    """``exec ID CMD...``: the container's config.json process, adjusted by the flags.

    As in runc 1.1.5: args, ``--cwd``, ``--apparmor``, ``--process-label``
    replace; ``--env`` and ``--additional-gids`` add; ``--no-new-privs`` can
    only turn the flag on; the spec's ``terminal`` is ignored (only ``--tty``
    gives one).  oomScoreAdj is the container's, which every runc exec
    inherits; umask is left alone, since runc applies it to init only.
    ``warn`` receives warnings (default: pyrunc's log).
    """
    args = _check_args(request.args, "process args cannot be empty")
    passwd, group = _users(passwd_text, group_text)
    user, spec_gids = _spec_user(process, request.user, passwd, group)
    extra_gids = resolve_additional_gids(request.additional_gids, group)
    cwd = request.cwd or process.get("cwd", "")
    check_cwd(cwd)
    rlimits = parse_rlimits(process.get("rlimits") or ())
    env = ensure_home(merge_env(process.get("env") or (), request.env), user.home)
    caps, warnings = resolve_capabilities(process.get("capabilities"), request.caps, net_raw,
                                          last_cap)
    _report(warnings, warn)
    return ProcessPlan(
        args=args,
        env=env,
        cwd=cwd,
        uid=user.uid,
        gid=user.gid,
        additional_gids=_unique(user.supplementary, spec_gids, extra_gids),
        capabilities=caps,
        rlimits=rlimits,
        no_new_privileges=bool(process.get("noNewPrivileges")) or request.no_new_privs,
        oom_score_adj=process.get("oomScoreAdj"),
        apparmor_profile=request.apparmor or process.get("apparmorProfile") or None,
        selinux_label=request.process_label or process.get("selinuxLabel") or None,
        terminal=request.tty,
        console_size=_console_size(process),
        **_scheduling(process.get("scheduler"), process.get("ioPriority"),
                      process.get("execCPUAffinity")),
    )


# --tty is left out: the file's "terminal" decides, and callers (runc's own
# tests among them) habitually pass -t along with -p; warning would only add
# a line to output that they parse.
_IGNORED_WITH_PROCESS = (
    ("cwd", "--cwd"), ("env", "--env"), ("user", "--user"),
    ("additional_gids", "--additional-gids"), ("caps", "--cap"),
    ("no_new_privs", "--no-new-privs"), ("apparmor", "--apparmor"),
    ("process_label", "--process-label"),
)


def resolve_process_file(
    process: JsonObject,
    container_process: JsonObject,
    passwd_text: str | None,
    group_text: str | None,
    net_raw: bool,
    last_cap: int,
    request: ExecRequest,
    warn: Warn | None = None,
) -> ProcessPlan:
    """``exec --process FILE``: the file is the whole process, as in runc 1.1.5.

    runc ignores every process flag then (``--cwd``, ``--env``, ``--tty``,
    ``--user``, ``--cap``, ...); we do too, but say so in a warning.  What
    the file leaves out: capabilities (absent or null), apparmorProfile and
    selinuxLabel come from the container, as in runc; so do the scheduler,
    ioPriority and execCPUAffinity, as in later runcs.  Env and rlimits are
    the file's only (runc sets no rlimit then), noNewPrivileges is the
    file's even when false, oomScoreAdj is always the container's.  The
    HOME rule and CAP_NET_RAW filter are the same as without the file.
    """
    ignored = [flag for field, flag in _IGNORED_WITH_PROCESS if getattr(request, field)]
    check_cwd(process.get("cwd", ""))
    args = _check_args(process.get("args") or (), "args must not be empty")
    passwd, group = _users(passwd_text, group_text)
    user, spec_gids = _spec_user(process, None, passwd, group)
    gids = _unique(spec_gids)
    rlimits = parse_rlimits(process.get("rlimits") or ())
    env = ensure_home(merge_env(process.get("env") or (), ()), user.home)
    spec_caps = process.get("capabilities")
    if spec_caps is None:
        spec_caps = container_process.get("capabilities")
    caps, warnings = resolve_capabilities(spec_caps, (), net_raw, last_cap)
    if ignored:
        warnings.append(f"ignoring {', '.join(ignored)}: --process replaces the whole process")
    _report(warnings, warn)
    return ProcessPlan(
        args=args,
        env=env,
        cwd=process["cwd"],
        uid=user.uid,
        gid=user.gid,
        additional_gids=gids,
        capabilities=caps,
        rlimits=rlimits,
        no_new_privileges=bool(process.get("noNewPrivileges")),
        oom_score_adj=container_process.get("oomScoreAdj"),
        apparmor_profile=_optional(process, container_process, "apparmorProfile"),
        selinux_label=_optional(process, container_process, "selinuxLabel"),
        terminal=bool(process.get("terminal")),
        console_size=_console_size(process),
        **_scheduling(_optional(process, container_process, "scheduler"),
                      _optional(process, container_process, "ioPriority"),
                      _optional(process, container_process, "execCPUAffinity")),
    )


def resolve_container_process(
    process: JsonObject,
    passwd_text: str | None,
    group_text: str | None,
    net_raw: bool,
    last_cap: int,
    warn: Warn | None = None,
) -> ProcessPlan:
    """The container's init (create/run): config.json's process as written.

    Unlike an exec, init gets the spec's umask and terminal, and no
    execCPUAffinity (the runtime spec says it is not for init).  Errors are
    create's own: exit 1, without exec's prefix.
    """
    try:
        return _init_plan(process, passwd_text, group_text, net_raw, last_cap, warn)
    except ResolveError as err:
        raise PyruncError(err.detail) from None


def _init_plan(
    process: JsonObject,
    passwd_text: str | None,
    group_text: str | None,
    net_raw: bool,
    last_cap: int,
    warn: Warn | None,
) -> ProcessPlan:
    check_cwd(process.get("cwd", ""))
    args = _check_args(process.get("args") or (), "args must not be empty")
    passwd, group = _users(passwd_text, group_text)
    user, spec_gids = _spec_user(process, None, passwd, group)
    gids = _unique(spec_gids)
    umask = (process.get("user") or {}).get("umask")
    caps, warnings = resolve_capabilities(process.get("capabilities"), (), net_raw, last_cap)
    _report(warnings, warn)
    scheduling = _scheduling(process.get("scheduler"), process.get("ioPriority"), None)
    return ProcessPlan(
        args=args,
        env=ensure_home(merge_env(process.get("env") or (), ()), user.home),
        cwd=process["cwd"],
        uid=user.uid,
        gid=user.gid,
        additional_gids=gids,
        umask=None if umask is None else int(umask),
        capabilities=caps,
        rlimits=parse_rlimits(process.get("rlimits") or ()),
        no_new_privileges=bool(process.get("noNewPrivileges")),
        oom_score_adj=process.get("oomScoreAdj"),
        apparmor_profile=process.get("apparmorProfile") or None,
        selinux_label=process.get("selinuxLabel") or None,
        terminal=bool(process.get("terminal")),
        console_size=_console_size(process),
        **scheduling,
    )
