"""``pyrunc features``: the runtime-spec features.json document for this host.

Engines read it before they create a container: containerd 2 fills the CRI
runtime-handler features from it (user namespaces, recursive read-only
mounts), Docker, CRI-O and nerdctl check options against it.  Everything is
taken from what pyrunc itself implements and what this host offers: the
mount options from pyrunc's own table, the capabilities the kernel knows,
the seccomp lists from the libseccomp pyseccomp compiles with and the seccomp(2)
flags the kernel accepts, the cgroup versions from what is mounted.  A
feature that is not there is left out or reported false, never promised.
What cannot change while the host runs is kept in /var/cache/pyrunc/features
between calls (:func:`_host_part`).
"""

from __future__ import annotations

import os
import sys

from runpy_exec import OCI_VERSION, __version__

# Engines run features as they start (docker, containerd's CRI plugin): ctypes,
# platform, json, typing and pyseccomp (~15 ms) stay out, and so do _ctypes and
# libseccomp once the host part is kept.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runpy_exec.requests import GlobalOptions

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop"]

# The libseccomp API level each action needs (seccomp_api_get(3)).
_ACTION_API = {
    "SCMP_ACT_KILL": 1, "SCMP_ACT_KILL_THREAD": 1, "SCMP_ACT_TRAP": 1, "SCMP_ACT_ERRNO": 1,
    "SCMP_ACT_TRACE": 1, "SCMP_ACT_ALLOW": 1, "SCMP_ACT_KILL_PROCESS": 3, "SCMP_ACT_LOG": 3,
}  # fmt: skip
# SCMP_ACT_NOTIFY is left out: pyrunc compiles it but does not yet send the
# listener fd to listenerPath, so a notified syscall would wait forever.


def seccomp_features() -> tuple[dict[str, Any], str] | None:
    """The seccomp section and libseccomp's version, or None without libseccomp.

    Asked of libseccomp itself, the library pyseccomp compiles with: importing
    pyseccomp to ask would cost ~15 ms (its import runs ldconfig twice).
    """
    from runpy_exec.linux import seccomp, syscalls

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
                           if syscalls.seccomp_filter_flag_known(seccomp.KERNEL_FLAGS[flag])
                           and seccomp.libseccomp_sets_flag(flag)],
    }
    return section, version


def _cgroup_versions() -> tuple[bool, bool]:
    """(v1, v2): v2 only when the unified hierarchy holds controllers, as on a v2 host."""
    from runpy_exec.linux import mountinfo

    mounts = mountinfo.cgroup_hierarchies()
    v1 = any(controller != mountinfo.UNIFIED for controller in mounts
             if controller != "name=systemd")
    v2 = False
    if mountinfo.UNIFIED in mounts:
        try:
            with open(os.path.join(mounts[mountinfo.UNIFIED][0], "cgroup.controllers")) as f:
                v2 = bool(f.read().split())
        except OSError:
            v2 = False
    return v1, v2


def _systemd_bus() -> bool:
    return os.path.isdir("/run/systemd/system") and os.path.exists("/run/dbus/system_bus_socket")


def _own_bounding_set() -> int:
    """pyrunc can only grant what it holds: a capability outside its own bounding
    set (dropped by whoever started it) would make capset(2) fail."""
    from runpy_exec.linux import proc

    return int(proc.status_field("self", "CapBnd") or "0", 16)


def print_features(opts: GlobalOptions) -> None:
    """``pyrunc features``: no global option changes the document."""
    print_document()


def print_document() -> None:
    """The document as JSON, indented as runc prints it."""
    from runpy_exec import jsonio

    sys.stdout.write(jsonio.dumps(features(), indent="    ") + "\n")


# Where the host part of the document is kept between calls (see _host_part).
CACHE_DIR = "/var/cache/pyrunc/features"


def features(cache_dir: str = CACHE_DIR) -> dict[str, Any]:
    """The document: the host part (kept in ``cache_dir``), and what can change while
    the host runs, asked at every call: pyrunc's own bounding set, the cgroup
    mounts, systemd and the LSMs."""
    host = _host_part(cache_dir)
    bounding = _own_bounding_set()
    v1, v2 = _cgroup_versions()
    linux: dict[str, Any] = {
        "namespaces": host["namespaces"],
        "capabilities": [name for number, name in enumerate(host["capabilities"])
                         if bounding >> number & 1],
        # --systemd-cgroup works where systemd runs and its bus is there.
        "cgroup": {"v1": v1, "v2": v2, "systemd": _systemd_bus(), "systemdUser": False,
                   "rdma": False},
    }
    annotations = {"io.github.pyrunc.version": __version__}
    if host["seccomp"] is None:
        linux["seccomp"] = {"enabled": False}
    else:
        linux["seccomp"] = host["seccomp"]
        annotations["io.github.seccomp.libseccomp.version"] = host["libseccompVersion"]
    linux["apparmor"] = {"enabled": os.path.isdir("/sys/kernel/security/apparmor")}
    linux["selinux"] = {"enabled": os.path.isdir("/sys/fs/selinux")}
    linux["intelRdt"] = {"enabled": False}
    linux["mountExtensions"] = {"idmap": {"enabled": False}}
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": HOOKS,
        "mountOptions": host["mountOptions"],
        "linux": linux,
        "annotations": annotations,
        "potentiallyUnsafeConfigAnnotations": [],
    }


def _probe_host() -> dict[str, Any]:
    """What stays true of this host while it runs this boot, with this pyrunc and
    this libseccomp: the namespaces and capabilities the kernel has, the seccomp
    section, and pyrunc's mount options."""
    from runpy_exec.linux import capabilities, mountopts, namespaces
    from runpy_exec.plan import CAPABILITY_NAMES

    found = seccomp_features()
    return {
        "namespaces": [ns.oci_type for ns in namespaces.NAMESPACES
                       if os.path.exists(f"/proc/self/ns/{ns.proc_name}")],
        # Every one the kernel knows, in its numbering: features() keeps those
        # in pyrunc's bounding set.
        "capabilities": [f"CAP_{name}"
                         for name in CAPABILITY_NAMES[:capabilities.last_cap() + 1]],
        "seccomp": found[0] if found else None,
        "libseccompVersion": found[1] if found else None,
        # "remount" is understood but cannot make a new mount (runc fails the
        # same way), so it is not offered.
        "mountOptions": [o for o in mountopts.known_options() if o != "remount"],
    }


def _host_part(cache_dir: str) -> dict[str, Any]:
    """The host part as this install's entry in ``cache_dir`` holds it, while nothing
    it came from has changed; else probed afresh, and filed there.

    Probing loads libseccomp through _ctypes, asks it and seccomp(2) about each
    architecture and flag, and imports the modules that hold pyrunc's tables:
    about a third of a features call, which engines make as they start.  An
    entry is named after, and records, the pyrunc that probed (its package
    directory: two installs on one host each have their own tables, and their
    own entry), the boot it was probed in (a new
    kernel, or LSM, comes with a reboot), the dynamic loader's environment,
    and the identity of every file the answers came from: pyrunc's modules,
    every library the probe mapped (libseccomp's among them) and ld.so.cache,
    through which the loader found it.  Upgrading pyrunc or libseccomp
    replaces files, which changes their identities.  A cache that cannot be
    read or written only costs the probe.
    """
    from binascii import crc32  # built into CPython, as json's _json is not

    from runpy_exec import jsonio

    package = _install()
    cache = os.path.join(cache_dir, f"{crc32(package.encode()):08x}.json")
    boot = _boot_id()
    loader_env = [os.environ.get("LD_LIBRARY_PATH"), os.environ.get("LD_PRELOAD")]
    try:
        with open(cache, "rb") as f:
            entry = jsonio.loads(f.read())
        if (entry["package"] == package and entry["boot"] == boot
                and entry["loaderEnv"] == loader_env
                and all(_identity(path) == identity for path, *identity in entry["files"])):
            kept: dict[str, Any] = entry["host"]
            return kept
    except (OSError, ValueError, KeyError, TypeError):
        pass
    host = _probe_host()
    try:
        files = [[path, *_identity(path)] for path in sorted(_sources())]
        data = jsonio.dumps({"package": package, "boot": boot, "loaderEnv": loader_env,
                             "files": files, "host": host}).encode()
    except (OSError, ValueError):  # a file that is gone (upgraded meanwhile)
        return host
    from runpy_exec import state

    state.write_cache_entry(cache, data)
    return host


def _install() -> str:
    """This pyrunc's package directory: what tells two installs on one host apart."""
    return os.path.dirname(os.path.abspath(__file__))


def _boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as f:
        return f.read().strip()


def _identity(path: str) -> list[int]:
    """What changes when a file is replaced or rewritten."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _sources() -> set[str]:
    """The files the probe's answers came from: pyrunc's modules loaded so far,
    every file mapped into this process (libseccomp, libc, the extensions), and
    the loader's cache."""
    files: set[str] = set()
    for name, module in list(sys.modules.items()):
        source = getattr(module, "__file__", None)
        if name.split(".")[0] == "runpy_exec" and source:
            files.add(source)
    with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/"):
                files.add(fields[5].rstrip("\n"))  # " (deleted)" then fails its stat
    if os.path.exists("/etc/ld.so.cache"):
        files.add("/etc/ld.so.cache")
    return files
