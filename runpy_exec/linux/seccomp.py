"""Build a seccomp filter from an OCI ``linux.seccomp`` profile, and load it.

Building and loading are separate because they belong on different sides of
fork.  :func:`prepare` parses and compiles in the parent, where an error can
still be reported plainly; the child only calls :func:`load`, one syscall.

pyseccomp is imported only here and only when a profile exists: its import
looks libseccomp up with ldconfig, which costs ~25 ms.
"""

from __future__ import annotations

import errno
import os

from runpy_exec.errors import PyruncError
from runpy_exec.linux import syscalls
from runpy_exec.records import NamedTuple

# exec imports this module for every container with a seccomp profile (what
# engines give them all): typing and dataclasses (~10 ms) stay out of it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import pyseccomp

_ARCHES = {
    "SCMP_ARCH_X86": "X86",
    "SCMP_ARCH_X86_64": "X86_64",
    "SCMP_ARCH_X32": "X32",
    "SCMP_ARCH_ARM": "ARM",
    "SCMP_ARCH_AARCH64": "AARCH64",
    "SCMP_ARCH_MIPS": "MIPS",
    "SCMP_ARCH_MIPS64": "MIPS64",
    "SCMP_ARCH_MIPS64N32": "MIPS64N32",
    "SCMP_ARCH_MIPSEL": "MIPSEL",
    "SCMP_ARCH_MIPSEL64": "MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32",
    "SCMP_ARCH_PPC": "PPC",
    "SCMP_ARCH_PPC64": "PPC64",
    "SCMP_ARCH_PPC64LE": "PPC64LE",
    "SCMP_ARCH_S390": "S390",
    "SCMP_ARCH_S390X": "S390X",
    "SCMP_ARCH_PARISC": "PARISC",
    "SCMP_ARCH_PARISC64": "PARISC64",
    "SCMP_ARCH_RISCV64": "RISCV64",
}

_OPS = {
    "SCMP_CMP_NE": "NE",
    "SCMP_CMP_LT": "LT",
    "SCMP_CMP_LE": "LE",
    "SCMP_CMP_EQ": "EQ",
    "SCMP_CMP_GE": "GE",
    "SCMP_CMP_GT": "GT",
    "SCMP_CMP_MASKED_EQ": "MASKED_EQ",
}

# seccomp(2) filter flags, set through the libseccomp attribute that asks for
# them (enum scmp_filter_attr of <seccomp.h>: SCMP_FLTATR_CTL_TSYNC, _LOG, _SSB).
_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 4,
    "SECCOMP_FILTER_FLAG_LOG": 6,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 7,
}
_SCMP_ACT_ALLOW = 0x7FFF0000

_MAX_ARGS = 6

# Syscall numbers this module looks at for the ENOSYS rules; every Linux
# architecture's table ends well below it.
_SYSCALL_NUMBER_CEILING = 1024
# Default actions that let unknown syscalls through: no ENOSYS rules then.
_PERMISSIVE_ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")


# The container's filter as a BPF program, kept in its state directory by
# create so that exec need not compile the profile again (see from_program).
PROGRAM_FILE = "seccomp.bpf"
# The library pyseccomp finds with ldconfig, by the soname the dynamic linker knows.
_LIBSECCOMP = "libseccomp.so.2"

# seccomp(2) flags by OCI name: what libseccomp's load passes for _FLAGS.
KERNEL_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": syscalls.SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": syscalls.SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": syscalls.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}


class Filter(NamedTuple):
    """A compiled filter, ready for :func:`load` in the child.

    ``notify`` is set when some rule hands syscalls to a user-space listener;
    the caller then sends the fd :func:`load` returns to ``listener_path``.
    A filter made by :func:`from_program` has no ``syscall_filter``: its
    ``program`` is loaded with seccomp(2) as it is.
    """

    syscall_filter: pyseccomp.SyscallFilter | None
    notify: bool = False
    listener_path: str = ""
    program: syscalls.BpfProgram | None = None
    flags: int = 0
    cache_path: str = ""  # where create files a program compiled just now


def _action(name: str, errno_ret: int | None) -> int:
    """The libseccomp action value for an OCI SCMP_ACT_* name.

    An ERRNO or TRACE action without errnoRet returns EPERM, as runc does.
    """
    import pyseccomp

    ret = errno.EPERM if errno_ret is None else errno_ret
    actions: dict[str, int] = {
        "SCMP_ACT_KILL": pyseccomp.KILL,
        "SCMP_ACT_KILL_THREAD": pyseccomp.KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": pyseccomp.KILL_PROCESS,
        "SCMP_ACT_TRAP": pyseccomp.TRAP,
        "SCMP_ACT_ALLOW": pyseccomp.ALLOW,
        "SCMP_ACT_LOG": pyseccomp.LOG,
        "SCMP_ACT_NOTIFY": pyseccomp.NOTIFY,
        "SCMP_ACT_ERRNO": pyseccomp.ERRNO(ret),
        "SCMP_ACT_TRACE": pyseccomp.TRACE(ret),
    }
    try:
        return actions[name]
    except KeyError:
        raise PyruncError(f"seccomp: {name!r} is not a valid action") from None


def _condition(syscall: str, arg: dict[str, Any]) -> pyseccomp.Arg:
    """One argument comparison; for SCMP_CMP_MASKED_EQ, value is the mask."""
    import pyseccomp

    index = arg.get("index", 0)
    op = _OPS.get(arg.get("op", ""))
    if op is None:
        raise PyruncError(f"seccomp: {syscall}: {arg.get('op')!r} is not a valid operator")
    if not 0 <= index < _MAX_ARGS:
        raise PyruncError(f"seccomp: {syscall}: argument index {index} is out of range")
    return pyseccomp.Arg(index, getattr(pyseccomp, op), arg.get("value", 0), arg.get("valueTwo", 0))


def _add_rules(flt: pyseccomp.SyscallFilter, default: int, rule: dict[str, Any]) -> bool:
    """Add one ``syscalls[]`` entry; return whether its action is NOTIFY."""
    import pyseccomp

    action_name: str = rule.get("action", "")
    action = _action(action_name, rule.get("errnoRet"))
    if action == default:
        # libseccomp refuses a rule that repeats the default action, and it
        # would change nothing.
        return False
    args = rule.get("args") or []
    indexes = [a.get("index", 0) for a in args]
    for name in rule.get("names") or []:
        number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
        if number < 0:
            # A name this libseccomp does not know: the profile may be newer
            # than the library, and runc skips such names too.
            continue
        conditions = [_condition(name, a) for a in args]
        try:
            if len(set(indexes)) == len(indexes):
                # Conditions on distinct arguments must all hold (AND).
                flt.add_rule(action, number, *conditions)
            else:
                # Several conditions on one argument cannot all hold at once;
                # OCI (after runc) reads them as alternatives, one rule each.
                for cond in conditions:
                    flt.add_rule(action, number, cond)
        except OSError as err:
            raise PyruncError(f"seccomp: add rule for {name}: {err.strerror}") from err
    return action_name == "SCMP_ACT_NOTIFY"


def _wants_enosys(profile: dict[str, Any]) -> bool:
    """Whether syscalls newer than the profile should fail with ENOSYS, as runc arranges:
    not when the default already lets them through or already says ENOSYS."""
    if profile.get("defaultAction") in _PERMISSIVE_ACTIONS:
        return False
    return profile.get("defaultErrnoRet") != errno.ENOSYS


def _add_enosys_rules(flt: pyseccomp.SyscallFilter, profile: dict[str, Any],
                      raw_numbers: bool) -> None:
    """Make every syscall newer than the newest one the profile names fail with ENOSYS.

    A profile written before a syscall existed (Docker's before close_range,
    clone3 or faccessat2) denies it with its default errno, usually EPERM;
    programs and libcs that probe a new syscall fall back to the old one
    only on ENOSYS, "not implemented", so under such a profile they would
    fail where the kernel lacking the syscall would have let them work.
    runc prepends a BPF stub for this; here the same cut-off becomes
    ordinary libseccomp rules: every syscall number above the largest one
    the profile names (on the native architecture) gets ERRNO(ENOSYS).  In
    the native filter (``raw_numbers``) that is every number up to the
    ceiling, named by libseccomp or not (syscalls newer than libseccomp
    itself too); in the filter of the other architectures, where
    libseccomp carries rules over by name, the syscalls it can name.
    """
    import pyseccomp

    native = pyseccomp.Arch.NATIVE
    newest = -1
    for rule in profile.get("syscalls") or []:
        for name in rule.get("names") or []:
            number = pyseccomp.resolve_syscall(native, name)
            newest = max(newest, number)
    if newest < 0:
        return  # nothing named: no notion of "newer than the profile"
    action = pyseccomp.ERRNO(errno.ENOSYS)
    for number in range(newest + 1, _SYSCALL_NUMBER_CEILING):
        if not raw_numbers:
            try:
                pyseccomp.resolve_syscall(native, number)
            except ValueError:
                continue  # a hole in the table, or beyond libseccomp's knowledge
        try:
            flt.add_rule(action, number)
        except OSError as err:
            raise PyruncError(f"seccomp: add ENOSYS rule for syscall {number}: "
                              f"{err.strerror}") from err


def prepare(profile: dict[str, Any]) -> Filter:
    """Compile an OCI seccomp profile (the ``linux.seccomp`` object) into a filter.

    The filter does not set no_new_privs itself: whether the process gets it
    is the caller's decision (process.noNewPrivileges).  Without it, loading
    requires CAP_SYS_ADMIN, so the caller loads before dropping capabilities.

    The native architecture and the profile's others are built as two
    filters and merged: libseccomp takes a rule for a raw syscall number
    (one it has no name for, see :func:`_add_enosys_rules`) only in a filter
    of one architecture.
    """
    import pyseccomp

    default = _action(profile.get("defaultAction", ""), profile.get("defaultErrnoRet"))
    if profile.get("defaultAction") == "SCMP_ACT_NOTIFY":
        raise PyruncError("seccomp: SCMP_ACT_NOTIFY cannot be the default action")
    try:
        flt = _new_filter(default, profile)
        others = _new_filter(default, profile)
        others.remove_arch(pyseccomp.Arch.NATIVE)
        other_arches = 0
        for arch_name in profile.get("architectures") or []:
            arch_attr = _ARCHES.get(arch_name)
            if arch_attr is None:
                raise PyruncError(f"seccomp: {arch_name!r} is not a valid architecture")
            arch = getattr(pyseccomp.Arch, arch_attr)
            if arch != pyseccomp.system_arch() and not others.exist_arch(arch):
                others.add_arch(arch)
                other_arches += 1
    except OSError as err:
        raise PyruncError(f"seccomp: {err.strerror}") from err
    filters = [flt, others] if other_arches else [flt]
    notify = False
    for rule in profile.get("syscalls") or []:
        for target in filters:
            notify |= _add_rules(target, default, rule)
    if _wants_enosys(profile):
        for target in filters:
            _add_enosys_rules(target, profile, raw_numbers=target is flt)
    if other_arches:
        try:
            flt.merge(others)
        except OSError as err:
            raise PyruncError(f"seccomp: merge architectures: {err.strerror}") from err
    listener = profile.get("listenerPath") or ""
    if notify and not listener:
        raise PyruncError("seccomp: SCMP_ACT_NOTIFY needs listenerPath, which is not set")
    return Filter(flt, notify, listener)


def _new_filter(default: int, profile: dict[str, Any]) -> pyseccomp.SyscallFilter:
    """An empty filter (native architecture) with the profile's default and flags."""
    import pyseccomp

    flt = pyseccomp.SyscallFilter(default)
    flt.set_attr(pyseccomp.Attr.CTL_NNP, 0)
    for flag in _profile_flags(profile):
        flt.set_attr(_FLAGS[flag], 1)
    return flt


def _profile_flags(profile: dict[str, Any]) -> list[str]:
    """The profile's filter flags, each one pyrunc knows, or a one-line error."""
    flags: list[str] = profile.get("flags") or []
    for flag in flags:
        if flag not in _FLAGS:
            raise PyruncError(f"seccomp: flag {flag!r} is not supported")
    return flags


def program_of(flt: Filter) -> bytes | None:
    """The BPF program libseccomp would load for ``flt``, or None for a filter
    with a user-space listener (only libseccomp's own load hands back its fd)."""
    if flt.notify or flt.syscall_filter is None:
        return None
    fd = os.memfd_create("pyrunc-seccomp", os.MFD_CLOEXEC)
    try:
        flt.syscall_filter.export_bpf(_FileNumber(fd))
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0)
    except OSError as err:
        raise PyruncError(f"seccomp: export BPF: {err.strerror}") from err
    finally:
        os.close(fd)


class _FileNumber:
    """What pyseccomp's export_bpf asks of a file: its fileno()."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


def program_code(flt: Filter) -> bytes | None:
    """The program ``flt`` loads, for create to keep for later execs (and to cache
    when :func:`compiled` just compiled it); None for a filter with a listener."""
    return flt.program.code if flt.program is not None else program_of(flt)


def kept_program(directory: str) -> bytes | None:
    """The program create kept in ``directory`` (see :func:`program_code`), if it did.

    One that is not whole instructions (none is written so; a damaged disk)
    is not used: the profile is compiled again instead.
    """
    return _read_program(os.path.join(directory, PROGRAM_FILE))


def _read_program(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            code = f.read()
    except FileNotFoundError:
        return None
    return code if code and len(code) % syscalls.BPF_INSTRUCTION_SIZE == 0 else None


def compiled(profile: dict[str, Any], cache_dir: str) -> Filter:
    """create's filter for ``profile``: libseccomp's program, loaded with seccomp(2).

    Engines give every container a profile, most of them the same one, and
    compiling it costs more than the rest of create: importing pyseccomp
    (~15 ms, see :func:`from_program`), adding the rules (~8 ms for docker's
    profile) and exporting the program (~10 ms).  So each program is kept in
    ``cache_dir`` under a digest of all that shapes it (:func:`_cache_key`),
    and later creates with the same profile load it from there (the filter
    says where, for create to file a program compiled just now).  The init
    loads the program with seccomp(2) as exec does, rather than have
    libseccomp generate it again during ``start``.

    A profile with a user-space listener is compiled every time, and its
    filter is libseccomp's own: only libseccomp's load hands back the
    listener's fd.
    """
    key = _cache_key(profile)
    path = os.path.join(cache_dir, f"{key}.bpf") if key else ""
    code = _read_program(path) if path else None
    if code is not None:
        return from_program(code, profile)
    flt = prepare(profile)
    code = program_of(flt)
    if code is None:
        return flt
    return from_program(code, profile)._replace(cache_path=path)


def _cache_key(profile: dict[str, Any]) -> str | None:
    """A digest of what the program depends on: the profile, the code that compiles
    it (this file), the libseccomp that does (its version) and the machine and
    kernel it is for; None when libseccomp is not there (compiling fails then)."""
    try:
        from _sha256 import sha256  # CPython 3.11's, built in: hashlib loads OpenSSL
    except ImportError:  # 3.12 renamed it
        from hashlib import sha256

    from runpy_exec import jsonio

    version = libseccomp_version()
    if version is None:
        return None
    with open(__file__, "rb") as f:
        source = f.read()
    machine = os.uname()
    digest = sha256(source)
    for part in (version, machine.machine, machine.release,
                 jsonio.dumps(profile)):
        digest.update(b"\0" + part.encode())
    key: str = digest.hexdigest()
    return key


# What create's cache and features ask of libseccomp itself, through _ctypes:
# importing pyseccomp for it would cost ~15 ms.  Each function is looked up
# once: features asks seccomp_arch_resolve_name about every architecture.
_libseccomp_functions: dict[str, Any] = {}


def _libseccomp(name: str, restype: Any = None) -> Any:
    """A libseccomp function (C int result by default); OSError without the library."""
    found = _libseccomp_functions.get(name)
    if found is None:
        from runpy_exec.linux import libc

        found = libc.library_function(_LIBSECCOMP, name, restype or libc.c_int)
        _libseccomp_functions[name] = found
    return found


def libseccomp_version() -> str | None:
    """libseccomp's version ("2.5.4"), or None when the library is not there."""
    from runpy_exec.linux import libc

    try:
        version = _libseccomp("seccomp_version", libc.c_void_p)
    except OSError:
        return None
    # const struct scmp_version *: three unsigned ints, major, minor and micro.
    address = version()
    size = libc.sizeof(libc.c_uint)
    return ".".join(str(libc.c_uint.from_address(address + i * size).value) for i in range(3))


def libseccomp_api() -> int:
    """seccomp_api_get(3): the API level this libseccomp finds on this kernel."""
    level: int = _libseccomp("seccomp_api_get")()
    return level


def libseccomp_knows_arch(name: str) -> bool:
    """Whether libseccomp has the architecture an OCI name (SCMP_ARCH_X86_64) names."""
    token: int = _libseccomp("seccomp_arch_resolve_name")(_ARCHES[name].lower().encode())
    return token != 0


def libseccomp_sets_flag(flag: str) -> bool:
    """Whether libseccomp sets the attribute that asks for the filter flag ``flag``."""
    from runpy_exec.linux import libc

    context = _libseccomp("seccomp_init", libc.c_void_p)(libc.c_uint(_SCMP_ACT_ALLOW))
    if not context:
        return False
    try:
        done: int = _libseccomp("seccomp_attr_set")(libc.c_void_p(context), _FLAGS[flag],
                                                     libc.c_uint(1))
        return done == 0
    finally:
        _libseccomp("seccomp_release", libc.c_void_p)(libc.c_void_p(context))


def from_program(code: bytes, profile: dict[str, Any]) -> Filter:
    """A filter from a program :func:`program_of` made for this same profile.

    exec runs for every probe, and importing pyseccomp alone costs ~30 ms
    (its import runs ``ldconfig -p`` twice to find the libraries), more than
    the rest of an exec; the program create kept is what libseccomp compiled
    from the container's profile, and the flags are the profile's.
    """
    flags = 0
    for flag in _profile_flags(profile):
        flags |= KERNEL_FLAGS[flag]
    return Filter(None, program=syscalls.BpfProgram(code), flags=flags)


def load(flt: Filter) -> int | None:
    """Install the filter on the calling thread; return the notify fd if it has one.

    Everything the process does after this runs under the filter, so the
    caller loads it as late as it can: just before execve when it may set
    no_new_privs, or else while it still holds CAP_SYS_ADMIN.
    """
    if flt.program is not None:
        syscalls.seccomp_set_mode_filter(flt.program, flt.flags)
        return None
    import pyseccomp

    assert flt.syscall_filter is not None
    try:
        flt.syscall_filter.load()
    except OSError as err:
        raise OSError(err.errno, f"seccomp load: {err.strerror}") from err
    if not flt.notify:
        return None
    # pyseccomp has no public call for the listener fd that libseccomp keeps.
    fd: int = pyseccomp._libseccomp.seccomp_notify_fd(flt.syscall_filter._filter)
    if fd < 0:
        raise OSError(-fd, f"seccomp_notify_fd: {os.strerror(-fd)}")
    return fd
