"""linux.mountinfo: the one reader of /proc/self/mountinfo (rootfs, cgroups, features)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runpy_exec.linux import mountinfo


@pytest.mark.parametrize(("field", "text"), [
    ("/plain", "/plain"),
    ("/with\\040space", "/with space"),
    ("/tab\\011and\\012newline", "/tab\tand\nnewline"),
    ("/back\\134slash", "/back\\slash"),
    ("/not\\9octal", "/not\\9octal"),
])  # fmt: skip
def test_unescape_undoes_the_kernels_octal_escapes(field: str, text: str) -> None:
    assert mountinfo.unescape(field) == text


@pytest.mark.root
def test_a_mount_whose_path_has_a_space_is_read_back_as_it_was_made(tmp_path: Path) -> None:
    target = tmp_path / "a mount point"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nosuid", "pyrunc-test", str(target)],
                   check=True)
    try:
        found = [m for m in mountinfo.entries() if m.mountpoint == str(target)]
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert len(found) == 1, found
    assert found[0].fstype == "tmpfs" and found[0].root == "/"
    assert "size=1024k" in found[0].super_options


def test_cgroup_hierarchies_are_the_cgroup_mounts() -> None:
    """Every hierarchy named is a cgroup or cgroup2 mount at that place."""
    hierarchies = mountinfo.cgroup_hierarchies()
    assert hierarchies, "no cgroup hierarchy mounted"
    by_point = {m.mountpoint: m for m in mountinfo.entries()}
    for controller, (mountpoint, root) in hierarchies.items():
        info = by_point[mountpoint]
        if controller == mountinfo.UNIFIED:
            assert info.fstype == "cgroup2"
        else:
            assert info.fstype == "cgroup" and controller in info.super_options
        assert root == info.root
