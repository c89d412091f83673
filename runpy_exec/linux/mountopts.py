"""OCI mount entries turned into what mount(2) and mount_setattr(2) take.

Kept apart from rootfs.py because it is pure: it can be tested without root,
and the config validator can reuse it to reject a bad entry before any
process is forked.
"""

from __future__ import annotations

import os

from runpy_exec.errors import PyruncError
from runpy_exec.linux import syscalls as sc
from runpy_exec.records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

MS_POSIXACL = 1 << 16
MS_I_VERSION = 1 << 23

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# option -> (clears the flag?, flag); runc's table, so that a config.json
# means the same mount under either runtime.
_FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, MS_POSIXACL),
    "async": (True, sc.MS_SYNCHRONOUS),
    "atime": (True, sc.MS_NOATIME),
    "bind": (False, sc.MS_BIND),
    "dev": (True, sc.MS_NODEV),
    "diratime": (True, sc.MS_NODIRATIME),
    "dirsync": (False, sc.MS_DIRSYNC),
    "exec": (True, sc.MS_NOEXEC),
    "iversion": (False, MS_I_VERSION),
    "lazytime": (False, sc.MS_LAZYTIME),
    "loud": (True, sc.MS_SILENT),
    "mand": (False, sc.MS_MANDLOCK),
    "noacl": (True, MS_POSIXACL),
    "noatime": (False, sc.MS_NOATIME),
    "nodev": (False, sc.MS_NODEV),
    "nodiratime": (False, sc.MS_NODIRATIME),
    "noexec": (False, sc.MS_NOEXEC),
    "noiversion": (True, MS_I_VERSION),
    "nolazytime": (True, sc.MS_LAZYTIME),
    "nomand": (True, sc.MS_MANDLOCK),
    "norelatime": (True, sc.MS_RELATIME),
    "nostrictatime": (True, sc.MS_STRICTATIME),
    "nosuid": (False, sc.MS_NOSUID),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
    "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "relatime": (False, sc.MS_RELATIME),
    "remount": (False, sc.MS_REMOUNT),
    "ro": (False, sc.MS_RDONLY),
    "rw": (True, sc.MS_RDONLY),
    "silent": (False, sc.MS_SILENT),
    "strictatime": (False, sc.MS_STRICTATIME),
    "suid": (True, sc.MS_NOSUID),
    "symfollow": (True, sc.MS_NOSYMFOLLOW),
    "sync": (False, sc.MS_SYNCHRONOUS),
}

PROPAGATION: dict[str, int] = {
    "private": sc.MS_PRIVATE,
    "shared": sc.MS_SHARED,
    "slave": sc.MS_SLAVE,
    "unbindable": sc.MS_UNBINDABLE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}

# Recursive attributes, applied to a whole bind tree with mount_setattr(2):
# plain "ro" on an rbind only makes the top mount read-only.
_REC_ATTRS: dict[str, tuple[bool, int]] = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, MOUNT_ATTR_RELATIME),
    "rnoatime": (False, MOUNT_ATTR_NOATIME),
    "ratime": (True, MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}


class MountOptions(NamedTuple):
    """One entry's options, split the way the kernel wants them.

    Propagation changes cannot ride along with a mount(2) call that creates a
    mount, so they are kept as a list of separate calls to make afterwards.
    """

    flags: int = 0
    propagation: tuple[int, ...] = ()
    data: str = ""
    attr_set: int = 0
    attr_clr: int = 0
    copy_up: bool = False


class Mount(NamedTuple):
    """A config.json mount entry, normalised as runc normalises it."""

    destination: str
    source: str
    device: str
    options: MountOptions

    @property
    def flags(self) -> int:
        return self.options.flags


def known_options() -> list[str]:
    """Every mount option word pyrunc understands (what ``features`` advertises)."""
    return sorted({*_FLAGS, *PROPAGATION, *_REC_ATTRS, "tmpcopyup"})


def parse_mount_options(options: Iterable[str]) -> MountOptions:
    """Split options; whatever is not a known flag is filesystem data, in order."""
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    attr_set = attr_clr = 0
    copy_up = False
    for option in options:
        if option in _FLAGS:
            clear, flag = _FLAGS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option in PROPAGATION:
            propagation.append(PROPAGATION[option])
        elif option in _REC_ATTRS:
            clear, attr = _REC_ATTRS[option]
            if clear and attr & MOUNT_ATTR__ATIME == attr:
                # Leaving an atime mode means the kernel's default (relatime):
                # mount_setattr(2) takes atime changes only as the whole field.
                attr_set &= ~MOUNT_ATTR__ATIME
                attr_clr |= MOUNT_ATTR__ATIME
            elif clear:
                attr_clr |= attr
            else:
                attr_set |= attr
                if attr & MOUNT_ATTR__ATIME == attr:
                    # mount_setattr(2) only changes the atime mode when the
                    # whole atime field is also named in attr_clr.
                    attr_clr |= MOUNT_ATTR__ATIME
        elif option == "tmpcopyup":
            copy_up = True
        elif option != "defaults":  # a no-op word, not filesystem data
            data.append(option)
    return MountOptions(flags, tuple(propagation), ",".join(data), attr_set, attr_clr, copy_up)


def mount_from_spec(entry: Mapping[str, Any], bundle: str) -> Mount:
    """Normalise one ``mounts[]`` entry.

    Any entry with bind/rbind is a bind mount whatever its ``type`` says, and
    a relative bind source is taken from the bundle directory, as runc does
    (it runs from the bundle).
    """
    destination = entry.get("destination")
    if not isinstance(destination, str) or not destination:
        raise PyruncError(f"invalid mount {dict(entry)!r}: destination is required")
    options = parse_mount_options(entry.get("options") or [])
    source = str(entry.get("source") or "")
    device = str(entry.get("type") or "")
    if options.flags & sc.MS_BIND:
        device = "bind"
        if not os.path.isabs(source):
            source = os.path.join(bundle, source)
    return Mount(destination, source, device, options)


def root_propagation(value: str | None) -> int:
    """``linux.rootfsPropagation`` as mount flags; 0 means runc's default (rslave)."""
    if not value:
        return 0
    if value not in PROPAGATION:
        raise PyruncError(f"rootfsPropagation={value} is not supported")
    return PROPAGATION[value]
