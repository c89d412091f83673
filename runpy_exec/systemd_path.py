"""The systemd driver's cgroupsPath, "slice:prefix:name", checked before anything is made.

With --systemd-cgroup, runc reads cgroupsPath as a slice (empty for the
default), a unit name prefix and a name: "system.slice:docker:abc" is the
scope unit docker-abc.scope in system.slice.  A slice name follows systemd's
rules (ends in ".slice"; dash-separated parts, each non-empty; "-.slice" is
the root slice).  Pure functions: no systemd is needed to check a path.
"""

from __future__ import annotations

from runpy_exec.errors import PyruncError

_FORMAT = 'expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups'


def check_slice(name: str) -> None:
    if name == "-.slice":
        return
    stem = name.removesuffix(".slice")
    if stem == name or not stem or "/" in name or any(not part for part in stem.split("-")):
        raise PyruncError(f"cgroupsPath: invalid slice name {name!r}: a slice is "
                          "dash-separated non-empty words ending in .slice (e.g. "
                          "system.slice, kubepods-besteffort.slice)")


def parse(cgroups_path: str) -> tuple[str, str, str]:
    """(slice, prefix, name) of a "slice:prefix:name" path, or a one-line error."""
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise PyruncError(f"{_FORMAT}, got {cgroups_path!r} instead")
    slice_name, prefix, name = parts
    if slice_name:
        check_slice(slice_name)
    if not name:
        raise PyruncError(f"{_FORMAT}, got {cgroups_path!r}: the name is empty")
    if "/" in prefix or "/" in name:
        raise PyruncError(f"{_FORMAT}, got {cgroups_path!r}: a unit name cannot hold '/'")
    return slice_name, prefix, name
