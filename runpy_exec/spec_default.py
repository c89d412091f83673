"""The starter config.json that ``pyrunc spec`` writes.

It reproduces runc 1.1.5's ``runc spec`` byte for byte, values included
(``hostname`` stays ``runc``): runc's integration suite edits this file with
jq and expects every key where runc puts it.  Key order follows runc's Go
structs, and the text is tab-indented without a trailing newline, as Go's
``json.MarshalIndent`` writes it.

No pydantic here: ``spec`` should start as fast as ``exec``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from runpy_exec.errors import PyruncError, os_reason

SPEC_OCI_VERSION = "1.0.2-dev"
CONFIG_NAME = "config.json"

_DEFAULT_CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
_MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]
_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]


def _mount(destination: str, kind: str, source: str, options: list[str] | None) -> dict[str, Any]:
    mount: dict[str, Any] = {"destination": destination, "type": kind, "source": source}
    if options is not None:
        mount["options"] = options
    return mount


def _mounts(rootless: bool) -> list[dict[str, Any]]:
    """Rootless differs twice: a fresh sysfs needs a network namespace the
    container does not own, so /sys is bind-mounted; and ``gid=5`` names a
    group that is unmapped in a one-ID user namespace."""
    devpts_options = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not rootless:
        devpts_options.append("gid=5")
    sys_mount = (
        _mount("/sys", "none", "/sys", ["rbind", *_NOSUID_NOEXEC_NODEV, "ro"])
        if rootless
        else _mount("/sys", "sysfs", "sysfs", [*_NOSUID_NOEXEC_NODEV, "ro"])
    )
    return [
        _mount("/proc", "proc", "proc", None),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount("/dev/pts", "devpts", "devpts", devpts_options),
        _mount("/dev/shm", "tmpfs", "shm", [*_NOSUID_NOEXEC_NODEV, "mode=1777", "size=65536k"]),
        _mount("/dev/mqueue", "mqueue", "mqueue", list(_NOSUID_NOEXEC_NODEV)),
        sys_mount,
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", [*_NOSUID_NOEXEC_NODEV, "relatime", "ro"]),
    ]


def _pure_cgroup2() -> bool:
    """Whether /sys/fs/cgroup is the v2 hierarchy itself (not v1 or hybrid): only
    the root of a cgroup2 mount has cgroup.controllers."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _linux(rootless: bool) -> dict[str, Any]:
    """Rootless maps only the caller's own IDs, drops the network namespace
    (it could not be configured) and drops cgroup limits (it cannot set them)."""
    linux: dict[str, Any] = {}
    if rootless:
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
        kinds = ["pid", "ipc", "uts", "mount"]
    else:
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        kinds = ["pid", "network", "ipc", "uts", "mount"]
    if _pure_cgroup2():
        kinds.append("cgroup")  # as runc does where /sys/fs/cgroup is cgroup v2
    if rootless:
        kinds.append("user")
    linux["namespaces"] = [{"type": kind} for kind in kinds]
    linux["maskedPaths"] = list(_MASKED_PATHS)
    linux["readonlyPaths"] = list(_READONLY_PATHS)
    return linux


def default_spec(rootless: bool = False) -> dict[str, Any]:
    """runc 1.1.5's default spec; ``rootless`` as ``runc spec --rootless``."""
    return {
        "ociVersion": SPEC_OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                name: list(_DEFAULT_CAPABILITIES)
                for name in ("bounding", "effective", "permitted", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": _mounts(rootless),
        "linux": _linux(rootless),
    }


def spec_text(spec: dict[str, Any]) -> str:
    """Go's MarshalIndent layout, so a diff against runc's file is empty."""
    return json.dumps(spec, indent="\t", ensure_ascii=False)



def write_spec(bundle: str, rootless: bool) -> None:
    """Create ``bundle/config.json``, never overwriting one, mode 0666 & ~umask.

    O_EXCL makes the existence check and the creation one step, so a file
    appearing in between is refused rather than truncated.
    """
    target = os.path.join(bundle, CONFIG_NAME)
    try:
        bundle_fd = os.open(bundle, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise PyruncError(f"bundle {bundle}: {os_reason(error)}") from None
    try:
        fd = os.open(
            CONFIG_NAME,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
            0o666,
            dir_fd=bundle_fd,
        )
    except FileExistsError:
        raise PyruncError(f"File {CONFIG_NAME} exists. Remove it first") from None
    except OSError as error:
        raise PyruncError(f"{target}: {os_reason(error)}") from None
    finally:
        os.close(bundle_fd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(spec_text(default_spec(rootless)))
    except OSError as error:
        raise PyruncError(f"{target}: {os_reason(error)}") from None
