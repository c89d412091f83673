"""--systemd-cgroup: the container's cgroup is a transient scope systemd made.

Beside runc 1.1.5 on a host where systemd is PID 1 and cgroup v2 is pure
(the cgroup v2 guest booted with ``--systemd``): the scope is active, the
init and an exec'd process are in it, the spec's memory limit is in its
file, and delete stops the unit and leaves no directory.  Elsewhere those
skip; the missing-bus refusal runs on any host.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from runpy_exec.linux import systemd
from tests.conftest import Runtime, edit_config

_MEMORY = 64 << 20


def _systemd_on_cgroup2() -> bool:
    try:
        with open("/proc/1/comm", encoding="utf-8") as f:
            pid1 = f.read().strip()
    except OSError:
        return False
    return pid1 == "systemd" and os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _unit_property(unit: str, name: str) -> str:
    return subprocess.run(["systemctl", "show", "-p", name, "--value", unit], check=True,
                          capture_output=True, text=True).stdout.strip()


def _use_scope(bundle: Path, cgroups_path: str) -> None:
    def change(config: dict[str, Any]) -> None:
        linux = config["linux"]
        linux["cgroupsPath"] = cgroups_path
        linux.setdefault("resources", {})["memory"] = {"limit": _MEMORY}
        # Without a cgroup namespace /proc/self/cgroup shows the host's path.
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "cgroup"]

    edit_config(bundle, change)


@pytest.mark.parametrize(("slice_name", "path"), [
    ("system.slice", "/system.slice"),
    ("kubepods-besteffort-pod1.slice",
     "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"),
    ("-.slice", "/"),
])
def test_slice_path_nests_dashed_slices(slice_name: str, path: str) -> None:
    assert systemd.slice_path(slice_name) == path


def test_unit_name_is_runc_s() -> None:
    assert systemd.unit_name("docker", "abc") == "docker-abc.scope"
    assert systemd.unit_name("", "abc") == "-abc.scope"


def test_resource_properties_are_runc_s_mapping() -> None:
    props = dict(systemd.resource_properties({
        "memory": {"limit": 1 << 30}, "cpu": {"shares": 1024, "quota": 12345, "period": 100000},
        "pids": {"limit": 0},
    }))
    assert props == {"MemoryMax": ("t", 1 << 30), "CPUWeight": ("t", 39),
                     # 123450 us per second, rounded up to systemd's 10 ms steps
                     "CPUQuotaPerSecUSec": ("t", 130000), "TasksMax": ("t", 1)}
    unlimited = dict(systemd.resource_properties({"cpu": {"quota": -1}, "pids": {"limit": -1}}))
    assert unlimited == {"CPUQuotaPerSecUSec": ("t", 2**64 - 1), "TasksMax": ("t", 2**64 - 1)}
    assert systemd.resource_properties({}) == []


@pytest.mark.root
@pytest.mark.cgroup2_host
@pytest.mark.skipif(not _systemd_on_cgroup2(), reason="needs systemd as PID 1 on cgroup v2")
@pytest.mark.parametrize("name", ["pyrunc", "runc"])
def test_the_container_is_a_transient_scope(name: str, request: pytest.FixtureRequest,
                                            bundle: Path) -> None:
    runtime: Runtime = request.getfixturevalue(name)
    container_id = f"sd{uuid.uuid4().hex[:8]}"
    unit = f"test-{container_id}.scope"
    scope_dir = Path("/sys/fs/cgroup/system.slice") / unit
    _use_scope(bundle, f"system.slice:test:{container_id}")
    runtime.run_detached("--systemd-cgroup", "run", "-d", "--bundle", str(bundle), container_id)
    try:
        assert _unit_property(unit, "ActiveState") == "active"
        assert _unit_property(unit, "Slice") == "system.slice"
        init = runtime.state(container_id)["pid"]
        cgroup = Path(f"/proc/{init}/cgroup").read_text()
        assert cgroup == f"0::/system.slice/{unit}\n"
        # Only the init: nothing the runtime used to make the scope stayed in it.
        assert (scope_dir / "cgroup.procs").read_text().split() == [str(init)]
        exec_cgroup = runtime("--systemd-cgroup", "exec", container_id, "cat", "/proc/self/cgroup",
                              check=True).stdout
        assert exec_cgroup == f"0::/system.slice/{unit}\n"
        assert int((scope_dir / "memory.max").read_text()) == _MEMORY
        assert _unit_property(unit, "MemoryMax") == str(_MEMORY)
    finally:
        deleted = runtime("--systemd-cgroup", "delete", "--force", container_id)
    assert deleted.returncode == 0, deleted.stderr
    assert _unit_property(unit, "LoadState") == "not-found"
    assert not scope_dir.exists()


@pytest.mark.root
@pytest.mark.cgroup2_host
@pytest.mark.skipif(not _systemd_on_cgroup2(), reason="needs systemd as PID 1 on cgroup v2")
def test_a_failed_create_stops_its_scope(pyrunc: Runtime, bundle: Path) -> None:
    container_id = f"sd{uuid.uuid4().hex[:8]}"
    unit = f"test-{container_id}.scope"
    _use_scope(bundle, f"system.slice:test:{container_id}")
    edit_config(bundle, lambda config: config["process"].update(args=["/no/such/program"]))
    result = pyrunc("--systemd-cgroup", "run", "-d", "--bundle", str(bundle), container_id,
                    stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "/no/such/program" in result.stderr
    assert _unit_property(unit, "LoadState") == "not-found"
    assert not Path("/sys/fs/cgroup/system.slice", unit).exists()
    assert not (pyrunc.root / container_id).exists()


@pytest.mark.root
def test_no_system_bus_is_one_line_and_leaves_nothing(pyrunc: Runtime, bundle: Path,
                                                      tmp_path: Path) -> None:
    """systemd seems to run (/run/systemd/system) but its bus socket is not there."""
    container_id = f"sd{uuid.uuid4().hex[:8]}"
    _use_scope(bundle, f"system.slice:test:{container_id}")
    # A private mount namespace: an empty /run/dbus, and /run/systemd/system present.
    script = ("mount -t tmpfs none /run/dbus && mount -t tmpfs none /run/systemd && "
              "mkdir /run/systemd/system && exec \"$@\"")
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
         pyrunc.binary, "--root", str(pyrunc.root), "--systemd-cgroup", "run", "-d",
         "--bundle", str(bundle), container_id],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no D-Bus system bus at /run/dbus/system_bus_socket" in lines[0]
    assert not (pyrunc.root / container_id).exists()
    assert pyrunc("list", "-q").stdout.split() == []
    for mount in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory"):
        assert not Path(mount, "system.slice", f"test-{container_id}.scope").exists()
