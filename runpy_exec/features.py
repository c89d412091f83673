"""``pyrunc features``: the runtime-spec features.json document for this host.

Engines read it before they create a container: containerd 2 fills the CRI
runtime-handler features from it (user namespaces, recursive read-only
mounts), Docker, CRI-O and nerdctl check options against it.  Everything is
taken from what pyrunc itself implements and what this host offers: the
mount options from pyrunc's own table, the capabilities the kernel knows,
the seccomp lists from the libseccomp pyseccomp compiles with and the seccomp(2)
flags the kernel accepts, the cgroup versions from what is mounted.  A
feature that is not there is left out or reported false, never promised.
"""

from __future__ import annotations

import errno
import os
import sys

from runpy_exec import OCI_VERSION, __version__

# Engines run features as they start (docker, containerd's CRI plugin): ctypes,
# platform, json, typing and pyseccomp (~15 ms) stay out.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runpy_exec.requests import GlobalOptions

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop"]

# seccomp(2): SECCOMP_SET_MODE_FILTER, and the syscall's number per machine.
_SECCOMP_SET_MODE_FILTER = 1
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "s390x": 348, "riscv64": 277}
# The libseccomp API level each action needs (seccomp_api_get(3)).
_ACTION_API = {
    "SCMP_ACT_KILL": 1, "SCMP_ACT_KILL_THREAD": 1, "SCMP_ACT_TRAP": 1, "SCMP_ACT_ERRNO": 1,
    "SCMP_ACT_TRACE": 1, "SCMP_ACT_ALLOW": 1, "SCMP_ACT_KILL_PROCESS": 3, "SCMP_ACT_LOG": 3,
}  # fmt: skip
# SCMP_ACT_NOTIFY is left out: pyrunc compiles it but does not yet send the
# listener fd to listenerPath, so a notified syscall would wait forever.


def _kernel_accepts_filter_flag(flag: int) -> bool:
    """Ask seccomp(2) with no program: EFAULT means the flag is known, EINVAL not.

    The probe installs nothing (the program pointer is NULL).
    """
    from runpy_exec.linux import libc

    number = _SYS_SECCOMP.get(os.uname().machine)
    if number is None:
        return False
    result = libc.syscall(number, libc.c_uint(_SECCOMP_SET_MODE_FILTER), libc.c_uint(flag),
                          libc.c_void_p(None))
    return result == -1 and libc.get_errno() == errno.EFAULT


def seccomp_features() -> tuple[dict[str, Any], str] | None:
    """The seccomp section and libseccomp's version, or None without libseccomp.

    Asked of libseccomp itself, the library pyseccomp compiles with: importing
    pyseccomp to ask would cost ~15 ms (its import runs ldconfig twice).
    """
    from runpy_exec.linux import seccomp

    version = seccomp.libseccomp_version()
    if version is None:
        return None
    api = seccomp.libseccomp_api()
    known_flags = list(seccomp._FLAGS)
    section = {
        "enabled": True,
        "actions": sorted(a for a, level in _ACTION_API.items() if api >= level),
        "operators": sorted(seccomp._OPS),
        "archs": sorted(name for name in seccomp._ARCHES if seccomp.libseccomp_knows_arch(name)),
        "knownFlags": known_flags,
        # Loaded only where the kernel takes the flag and libseccomp can ask for it.
        "supportedFlags": [flag for flag in known_flags
                           if _kernel_accepts_filter_flag(seccomp.KERNEL_FLAGS[flag])
                           and seccomp.libseccomp_sets_flag(flag)],
    }
    return section, version


def _cgroup_versions() -> tuple[bool, bool]:
    """(v1, v2): v2 only when the unified hierarchy holds controllers, as on a v2 host."""
    from runpy_exec.linux import cgroups

    mounts = cgroups.mountpoints()
    v1 = any(controller != cgroups.UNIFIED for controller in mounts
             if controller != "name=systemd")
    v2 = False
    if cgroups.UNIFIED in mounts:
        try:
            with open(os.path.join(mounts[cgroups.UNIFIED], "cgroup.controllers")) as f:
                v2 = bool(f.read().split())
        except OSError:
            v2 = False
    return v1, v2


def _systemd_bus() -> bool:
    return os.path.isdir("/run/systemd/system") and os.path.exists("/run/dbus/system_bus_socket")


def _own_bounding_set() -> int:
    """pyrunc can only grant what it holds: a capability outside its own bounding
    set (dropped by whoever started it) would make capset(2) fail."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return 0


def print_features(opts: GlobalOptions) -> None:
    """``pyrunc features``: the document as JSON, indented as runc prints it."""
    from runpy_exec import jsonio

    sys.stdout.write(jsonio.dumps(features(), indent="    ") + "\n")


def features() -> dict[str, Any]:
    from runpy_exec.linux import capabilities, mountopts, namespaces
    from runpy_exec.plan import CAPABILITY_NAMES

    last = capabilities.last_cap()
    bounding = _own_bounding_set()
    v1, v2 = _cgroup_versions()
    linux: dict[str, Any] = {
        "namespaces": [ns.oci_type for ns in namespaces.NAMESPACES
                       if os.path.exists(f"/proc/self/ns/{ns.proc_name}")],
        "capabilities": [f"CAP_{name}" for number, name in enumerate(CAPABILITY_NAMES)
                         if number <= last and bounding >> number & 1],
        # --systemd-cgroup works where systemd runs and its bus is there.
        "cgroup": {"v1": v1, "v2": v2, "systemd": _systemd_bus(), "systemdUser": False,
                   "rdma": False},
    }
    annotations = {"io.github.pyrunc.version": __version__}
    found = seccomp_features()
    if found is None:
        linux["seccomp"] = {"enabled": False}
    else:
        linux["seccomp"], version = found
        annotations["io.github.seccomp.libseccomp.version"] = version
    linux["apparmor"] = {"enabled": os.path.isdir("/sys/kernel/security/apparmor")}
    linux["selinux"] = {"enabled": os.path.isdir("/sys/fs/selinux")}
    linux["intelRdt"] = {"enabled": False}
    linux["mountExtensions"] = {"idmap": {"enabled": False}}
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": HOOKS,
        # "remount" is understood but cannot make a new mount (runc fails the
        # same way), so it is not offered.
        "mountOptions": [o for o in mountopts.known_options() if o != "remount"],
        "linux": linux,
        "annotations": annotations,
        "potentiallyUnsafeConfigAnnotations": [],
    }
