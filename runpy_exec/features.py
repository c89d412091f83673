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
between calls (:func:`_host_part`), and so is the document as printed, while
everything it was made from reads the same (:func:`document`).
"""

from __future__ import annotations

import os
import sys

from runpy_exec import OCI_VERSION, __version__

# Engines run features as they start (docker, containerd's CRI plugin): ctypes,
# platform, json, typing and pyseccomp (~15 ms) stay out, and so do _ctypes and
# libseccomp once the host part is kept, _json and the linux modules once the
# document is.
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


def _cgroup_versions(mounts: list[str]) -> tuple[bool, bool, str | None, str | None]:
    """(v1, v2, the unified hierarchy's cgroup.controllers file, what it read) from
    ``mounts``, the cgroup lines of /proc/self/mountinfo: v2 only when the unified
    hierarchy holds controllers, as on a v2 host.  The file is None without a
    unified mount, what it read None when it could not be read."""
    from runpy_exec.linux import mountinfo

    hierarchies = mountinfo.cgroup_hierarchies(mounts)
    v1 = any(controller != mountinfo.UNIFIED for controller in hierarchies
             if controller != "name=systemd")
    if mountinfo.UNIFIED not in hierarchies:
        return v1, False, None, None
    controllers = os.path.join(hierarchies[mountinfo.UNIFIED][0], "cgroup.controllers")
    read = _read_text(controllers)
    return v1, bool(read and read.split()), controllers, read


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError:
        return None


class _Live:
    """What can change while the host runs, read at every call: pyrunc's own
    bounding set, the cgroup mounts, systemd's bus and the LSMs.

    Read raw, without linux.proc or linux.mountinfo (each module is ~0.2 ms
    of a call whose document is kept): a kept document is served only while
    these read the same, and a new one is made from these very reads.
    """

    def __init__(self) -> None:
        # pyrunc can only grant what it holds: a capability outside its own
        # bounding set (dropped by whoever started it) would make capset(2) fail.
        status = _read_text("/proc/self/status") or ""
        self.bounding = next((line[len("CapBnd:"):].strip() for line in status.splitlines()
                              if line.startswith("CapBnd:")), "0")
        # A mountinfo line's filesystem type follows its " - " (paths escape spaces).
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            self.cgroup_mounts = [line for line in f
                                  if line.partition(" - ")[2].startswith("cgroup")]
        # --systemd-cgroup works where systemd runs and its bus is there.
        self.systemd = (os.path.isdir("/run/systemd/system")
                        and os.path.exists("/run/dbus/system_bus_socket"))
        self.apparmor = os.path.isdir("/sys/kernel/security/apparmor")
        self.selinux = os.path.isdir("/sys/fs/selinux")

    def key(self) -> list[str]:
        """Lines that tell these reads apart, for a kept document's entry."""
        flags = "".join("1" if on else "0" for on in (self.systemd, self.apparmor, self.selinux))
        return [_hex(self.bounding), flags, str(len(self.cgroup_mounts)),
                *(_hex(line) for line in self.cgroup_mounts)]


def print_features(opts: GlobalOptions) -> None:
    """``pyrunc features``: no global option changes the document."""
    print_document()


# Where the host part of the document, and the document as last printed, are
# kept between calls (see _host_part and document).
CACHE_DIR = "/var/cache/pyrunc/features"


def print_document() -> None:
    """The document as JSON, indented as runc prints it (see :func:`document`)."""
    sys.stdout.write(document())


def document(cache_dir: str = CACHE_DIR) -> str:
    """The document as printed: this install's ``.document`` entry in ``cache_dir``
    while everything it was made from reads the same, else made and filed anew.

    The entry records what the document was made from, line by line: the
    install, the boot and the loader's environment, the per-call reads
    (:class:`_Live`), what the unified hierarchy's controllers file held, and
    the identity of every file the host part came from (see :func:`_host_part`).
    Checking those, rather than making the document, keeps JSON, the linux
    modules and their parsing out of the call engines make as they start
    (0.6 ms of its 7.4 here).
    """
    live = _Live()
    key = [*_fixed_key(), *live.key()]
    entry = _entry_path(cache_dir, "document")
    kept = _kept_document(entry, key)
    if kept is not None:
        return kept
    host, files = _host_part(cache_dir)
    made, controllers, read = _document(host, live)
    from runpy_exec import jsonio

    text = jsonio.dumps(made, indent="    ") + "\n"
    if files is not None:
        from runpy_exec import state

        head = [*key, _controllers_key(controllers, read),
                *(_file_key(path, identity) for path, *identity in files)]
        state.write_cache_entry(entry, ("\n".join(head) + "\n\n" + text).encode(
            "utf-8", "surrogateescape"))
    return text


def _kept_document(entry: str, key: list[str]) -> str | None:
    """The document filed in ``entry``, if it was filed under ``key`` (what this call
    read) and its controllers file and sources still read as they did."""
    text = _read_text(entry)
    head, blank, kept = (text or "").partition("\n\n")
    if not blank:
        return None
    lines = head.split("\n")
    if len(lines) <= len(key) or lines[:len(key)] != key:
        return None  # another install's, boot's or reads' document, or a torn entry
    controllers = lines[len(key)]
    try:
        path = controllers.partition(" ")[0]
        if path != "-" and _controllers_key(_unhex(path),
                                            _read_text(_unhex(path))) != controllers:
            return None
        for line in lines[len(key) + 1:]:
            path = _unhex(line.partition(" ")[0])
            if _file_key(path, _identity(path)) != line:
                return None
    except (OSError, ValueError):
        return None
    return kept


def _fixed_key() -> list[str]:
    """The install, the boot and the loader's environment, as key lines."""
    return [_hex(_install()), _hex(_boot_id()),
            *("-" if value is None else _hex(value) for value in _loader_env())]


def _controllers_key(path: str | None, read: str | None) -> str:
    if path is None:
        return "-"
    return f"{_hex(path)} {'-' if read is None else _hex(read)}"


def _file_key(path: str, identity: list[int]) -> str:
    return f"{_hex(path)} {' '.join(map(str, identity))}"


def _hex(text: str) -> str:
    """One non-empty line for any text: paths and mount lines may hold newlines,
    and an empty line ends the entry's key."""
    return "x" + text.encode("utf-8", "surrogateescape").hex()


def _unhex(line: str) -> str:
    if not line.startswith("x"):
        raise ValueError(f"not a key line: {line!r}")
    return bytes.fromhex(line[1:]).decode("utf-8", "surrogateescape")


def features(cache_dir: str = CACHE_DIR) -> dict[str, Any]:
    """The document: the host part (kept in ``cache_dir``), and what can change while
    the host runs, read at this call (:class:`_Live`)."""
    host, _ = _host_part(cache_dir)
    return _document(host, _Live())[0]


def _document(host: dict[str, Any], live: _Live) -> tuple[dict[str, Any], str | None, str | None]:
    """The document made from ``host`` and ``live``, with the controllers file it
    read and what that read (see :func:`_cgroup_versions`)."""
    bounding = int(live.bounding, 16)
    v1, v2, controllers, read = _cgroup_versions(live.cgroup_mounts)
    linux: dict[str, Any] = {
        "namespaces": host["namespaces"],
        "capabilities": [name for number, name in enumerate(host["capabilities"])
                         if bounding >> number & 1],
        "cgroup": {"v1": v1, "v2": v2, "systemd": live.systemd, "systemdUser": False,
                   "rdma": False},
    }
    annotations = {"io.github.pyrunc.version": __version__}
    if host["seccomp"] is None:
        linux["seccomp"] = {"enabled": False}
    else:
        linux["seccomp"] = host["seccomp"]
        annotations["io.github.seccomp.libseccomp.version"] = host["libseccompVersion"]
    linux["apparmor"] = {"enabled": live.apparmor}
    linux["selinux"] = {"enabled": live.selinux}
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
    }, controllers, read


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


def _host_part(cache_dir: str) -> tuple[dict[str, Any], list[list[Any]] | None]:
    """The host part as this install's entry in ``cache_dir`` holds it, while nothing
    it came from has changed; else probed afresh, and filed there.  With it, the
    files it came from and their identities (None when they could not be read).

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
    from runpy_exec import jsonio

    package = _install()
    cache = _entry_path(cache_dir, "json")
    boot = _boot_id()
    loader_env = _loader_env()
    try:
        with open(cache, "rb") as f:
            entry = jsonio.loads(f.read())
        if (entry["package"] == package and entry["boot"] == boot
                and entry["loaderEnv"] == loader_env
                and all(_identity(path) == identity for path, *identity in entry["files"])):
            return entry["host"], entry["files"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    host = _probe_host()
    try:
        files = [[path, *_identity(path)] for path in sorted(_sources())]
        data = jsonio.dumps({"package": package, "boot": boot, "loaderEnv": loader_env,
                             "files": files, "host": host}).encode()
    except (OSError, ValueError):  # a file that is gone (upgraded meanwhile)
        return host, None
    from runpy_exec import state

    state.write_cache_entry(cache, data)
    return host, files


def _entry_path(cache_dir: str, kind: str) -> str:
    """This install's entry of ``kind`` ("json": the host part; "document")."""
    from binascii import crc32  # built into CPython, as json's _json is not

    return os.path.join(cache_dir, f"{crc32(_install().encode()):08x}.{kind}")


def _loader_env() -> list[str | None]:
    """What tells the dynamic loader where else to find libraries (libseccomp)."""
    return [os.environ.get("LD_LIBRARY_PATH"), os.environ.get("LD_PRELOAD")]


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
