"""--systemd-cgroup's "slice:prefix:name": malformed paths and a host without
systemd fail create with one line, before anything is made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runpy_exec import systemd_path
from runpy_exec.errors import PyruncError
from tests.conftest import Runtime, edit_config


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("system.slice:docker:abc", ("system.slice", "docker", "abc")),
        (":runc:abc", ("", "runc", "abc")),
        ("kubepods-besteffort-pod1.slice:cri-containerd:x", ("kubepods-besteffort-pod1.slice",
                                                            "cri-containerd", "x")),
        ("-.slice::abc", ("-.slice", "", "abc")),
    ],
)
def test_well_formed_paths(path: str, parts: tuple[str, str, str]) -> None:
    assert systemd_path.parse(path) == parts


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/plain/cgroupfs/path", "slice:prefix:name"),
        ("system.slice:docker", "slice:prefix:name"),
        ("a:b:c:d", "slice:prefix:name"),
        ("system:docker:abc", "invalid slice name"),
        ("kube--pods.slice:p:x", "invalid slice name"),
        ("-kube.slice:p:x", "invalid slice name"),
        ("a/b.slice:p:x", "invalid slice name"),
        ("system.slice:docker:", "name is empty"),
        ("system.slice:dock/er:abc", "cannot hold '/'"),
    ],
)
def test_malformed_paths(path: str, message: str) -> None:
    with pytest.raises(PyruncError, match=message):
        systemd_path.parse(path)


@pytest.mark.root
@pytest.mark.parametrize(
    ("cgroups_path", "message"),
    [
        ("system.slice:docker", "slice:prefix:name"),
        ("system.slice:pyrunc:sd1", "systemd is not running"),
    ],
)
def test_create_refuses_before_making_anything(pyrunc: Runtime, bundle: Path,
                                               cgroups_path: str, message: str) -> None:
    if message == "systemd is not running" and os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs here")
    edit_config(bundle, lambda c: c["linux"].update(cgroupsPath=cgroups_path))
    before = set(os.listdir("/sys/fs/cgroup/memory")) if os.path.isdir(
        "/sys/fs/cgroup/memory") else set()
    result = pyrunc("--systemd-cgroup", "create", "--bundle", str(bundle), "sd1")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert not (pyrunc.root / "sd1").exists()
    if before:
        assert set(os.listdir("/sys/fs/cgroup/memory")) == before
