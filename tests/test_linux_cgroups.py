"""Real cgroups on this host: created, joined, limited, frozen and removed by the tests."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runpy_exec.errors import PyruncError
from runpy_exec.linux import cgroups

pytestmark = pytest.mark.root

# Tests of v1 files and semantics (freezer.state, devices.list, per-controller
# hierarchies); on a pure cgroup v2 host test_cgroup_v2.py covers the same ground.
needs_v1 = pytest.mark.skipif(
    "memory" not in cgroups.mountpoints(), reason="needs cgroup v1 controllers (a hybrid host)"
)


class Child:
    """A forked child that waits for "go", then runs ``body`` and exits 0 if it passed."""

    def __init__(self, body: Callable[[], None] = lambda: time.sleep(60)) -> None:
        go_r, self._go_w = os.pipe()
        self._report_r, report_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            status = 0
            try:
                os.read(go_r, 1)
                body()
            except BaseException:
                os.write(report_w, traceback.format_exc().encode())
                status = 1
            os._exit(status)
        os.close(go_r)
        os.close(report_w)

    def go(self) -> None:
        os.write(self._go_w, b"g")

    def finish(self) -> None:
        """Wait for the body to end and fail the test with the child's traceback if it failed."""
        self.go()
        with os.fdopen(self._report_r, "rb") as f:
            report = f.read().decode()
        _, status = os.waitpid(self.pid, 0)
        os.close(self._go_w)
        assert os.waitstatus_to_exitcode(status) == 0, report

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.reap()

    def reap(self) -> None:
        os.waitpid(self.pid, 0)
        os.close(self._go_w)
        os.close(self._report_r)


@pytest.fixture
def paths() -> Iterator[dict[str, str]]:
    """A fresh cgroup in every hierarchy, named like a container; removed afterwards."""
    resolved = cgroups.resolve_paths(None, f"pyrunc-test-{uuid.uuid4().hex[:12]}")
    yield resolved
    for pid in cgroups.pids(resolved):
        os.kill(pid, signal.SIGKILL)
    cgroups.destroy(resolved)
    assert not any(os.path.exists(p) for p in resolved.values())


def cgroup_of(pid: int) -> dict[str, str]:
    return cgroups.own_cgroup_paths(pid)


def read(path: str, name: str) -> str:
    return Path(path, name).read_text().strip()


def test_own_paths_and_mountpoints_cover_every_hierarchy_of_this_process() -> None:
    own = cgroups.own_cgroup_paths()
    mounts = cgroups.mountpoints()
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            assert own[controller] == path
    assert set(mounts) <= set(own)
    for controller, directory in mounts.items():
        assert os.path.ismount(directory), controller
        assert os.path.exists(os.path.join(directory, "cgroup.procs"))


def test_resolve_relative_absolute_and_default() -> None:
    own = cgroups.own_cgroup_paths()
    mounts = cgroups.mountpoints()
    default = cgroups.resolve_paths(None, "abc")
    relative = cgroups.resolve_paths("x//y", "abc")
    absolute = cgroups.resolve_paths("/a/b/c/", "abc")
    assert set(default) == set(mounts)
    for controller, mnt in mounts.items():
        below_own = os.path.normpath(os.path.join(mnt, own[controller].lstrip("/")))
        assert default[controller] == os.path.join(below_own, "abc")
        assert relative[controller] == os.path.join(below_own, "x/y")
        assert absolute[controller] == os.path.join(mnt, "a/b/c")
    for climbing in ("x/../../../y", "/a/b/../c", "./a", ".."):
        with pytest.raises(PyruncError, match=r"^linux\.cgroupsPath .*'\.\.' are not allowed"):
            cgroups.resolve_paths(climbing, "abc")


def test_create_join_and_destroy(paths: dict[str, str]) -> None:
    cgroups.create(paths)
    child = Child()
    try:
        cgroups.join(paths, child.pid)
        mounts = cgroups.mountpoints()
        for controller, path in cgroup_of(child.pid).items():
            if controller in paths:
                assert os.path.join(mounts[controller], path.lstrip("/")) == paths[controller]
        assert cgroups.pids(paths) == [child.pid]
    finally:
        child.kill()
    cgroups.destroy(paths)
    assert not any(os.path.exists(p) for p in paths.values())
    cgroups.destroy(paths)  # a second removal finds nothing to do


@needs_v1
def test_memory_and_pids_limits_are_written_and_enforced(paths: dict[str, str]) -> None:
    cgroups.create(paths)

    def fork_twice() -> None:
        first = os.fork()
        if first == 0:
            time.sleep(60)
        try:
            with pytest.raises(BlockingIOError):  # pids.max reached: fork fails with EAGAIN
                os.fork()
        finally:
            os.kill(first, signal.SIGKILL)
            os.waitpid(first, 0)

    child = Child(fork_twice)
    cgroups.join(paths, child.pid)
    cgroups.apply_resources(
        paths,
        {
            "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
            "pids": {"limit": 2},
        },
    )
    assert read(paths["memory"], "memory.limit_in_bytes") == str(64 << 20)
    assert read(paths["memory"], "memory.memsw.limit_in_bytes") == str(96 << 20)
    assert read(paths["memory"], "memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(paths["pids"], "pids.max") == "2"
    child.finish()

    # Lowering below the current memsw limit must reorder the writes.
    cgroups.apply_resources(paths, {"memory": {"limit": 16 << 20, "swap": 32 << 20}})
    assert read(paths["memory"], "memory.limit_in_bytes") == str(16 << 20)
    assert read(paths["memory"], "memory.memsw.limit_in_bytes") == str(32 << 20)
    cgroups.apply_resources(paths, {"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1}})
    assert read(paths["pids"], "pids.max") == "max"


@needs_v1
def test_cpu_limits_and_cpuset_in_a_nested_cgroup() -> None:
    top = f"pyrunc-test-{uuid.uuid4().hex[:12]}"
    nested = cgroups.resolve_paths(f"{top}/inner", "ignored")
    parents = {c: os.path.dirname(p) for c, p in nested.items()}
    try:
        cgroups.create(nested)
        # A new v1 cpuset cgroup starts empty; create() filled in every level.
        for level in (parents["cpuset"], nested["cpuset"]):
            assert read(level, "cpuset.cpus") and read(level, "cpuset.mems")
        cgroups.apply_resources(
            nested,
            {"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}},
        )
        assert read(nested["cpu"], "cpu.shares") == "512"
        assert read(nested["cpu"], "cpu.cfs_quota_us") == "50000"
        assert read(nested["cpu"], "cpu.cfs_period_us") == "100000"
        child = Child(lambda: None)
        try:
            cgroups.join(nested, child.pid)
            assert os.sched_getaffinity(child.pid) == {0}
        finally:
            child.finish()
    finally:
        cgroups.destroy(nested)
        cgroups.destroy(parents)
    assert not any(os.path.exists(p) for p in parents.values())


@needs_v1
def test_device_rules_deny_everything_not_allowed(paths: dict[str, str]) -> None:
    cgroups.create(paths)

    def open_devices() -> None:
        os.close(os.open("/dev/null", os.O_RDWR))
        with pytest.raises(PermissionError):
            os.open("/dev/zero", os.O_RDONLY)

    child = Child(open_devices)
    cgroups.join(paths, child.pid)
    cgroups.apply_resources(
        paths,
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "r"},
            ]
        },
    )
    assert read(paths["devices"], "devices.list").splitlines() == ["c 1:3 rwm", "c 1:5 wm"]
    child.finish()


@needs_v1
def test_freeze_and_thaw(paths: dict[str, str]) -> None:
    cgroups.create(paths)
    child = Child()
    try:
        cgroups.join(paths, child.pid)
        assert cgroups.freezer_state(paths) == "THAWED"
        cgroups.freeze(paths)
        assert cgroups.freezer_state(paths) == "FROZEN"
        # A task frozen by the v1 freezer shows as in uninterruptible sleep.
        assert Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "D"
        cgroups.thaw(paths)
        assert cgroups.freezer_state(paths) == "THAWED"
        deadline = time.monotonic() + 5
        state = "D"
        while state == "D" and time.monotonic() < deadline:
            state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state in ("S", "R")
    finally:
        child.kill()


def test_unified_hierarchy_alone_freezes_through_cgroup_freeze(paths: dict[str, str]) -> None:
    if cgroups.UNIFIED not in paths:
        pytest.skip("no cgroup2 hierarchy mounted")
    unified = {cgroups.UNIFIED: paths[cgroups.UNIFIED]}
    cgroups.create(unified)
    child = Child()
    try:
        cgroups.join(unified, child.pid)
        assert cgroups.freezer_state(unified) == "THAWED"
        cgroups.freeze(unified)
        assert cgroups.freezer_state(unified) == "FROZEN"
        assert "frozen 1" in read(unified[cgroups.UNIFIED], "cgroup.events").splitlines()
        cgroups.thaw(unified)
        assert cgroups.freezer_state(unified) == "THAWED"
        deadline = time.monotonic() + 5
        while "frozen 0" not in read(unified[cgroups.UNIFIED], "cgroup.events").splitlines():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        child.kill()
    with pytest.raises(PyruncError, match="memory\\+swap limit must be at least"):
        cgroups.apply_resources(unified, {"memory": {"limit": 100, "swap": 50}})


@needs_v1
def test_sub_cgroups_are_listed_and_removed(paths: dict[str, str]) -> None:
    cgroups.create(paths)
    sub = cgroups.sub_paths(paths, ("memory", "pids"), "side")
    assert sub["memory"] == os.path.join(paths["memory"], "side")
    assert sub["cpu"] == paths["cpu"]
    assert cgroups.sub_paths(paths, (), "side") == {
        c: os.path.join(p, "side") for c, p in paths.items()
    }
    cgroups.create(sub)
    main, side = Child(), Child()
    try:
        cgroups.join(paths, main.pid)
        cgroups.join(sub, side.pid)
        assert cgroups.pids(paths) == sorted([main.pid, side.pid])
    finally:
        main.kill()
        side.kill()
    cgroups.destroy(paths)
    assert not os.path.exists(sub["memory"]) and not os.path.exists(paths["memory"])
    with pytest.raises(PyruncError, match="'hugetlb'"):
        cgroups.sub_paths(paths, ("hugetlb",), "side")


def test_destroy_never_removes_a_hierarchys_mount_root() -> None:
    """A config whose cgroupsPath is "/" names the roots: delete must leave them be,
    even where the hierarchy is reached through a symlink (/sys/fs/cgroup/cpu)."""
    roots = cgroups.mountpoints()
    cgroups.destroy(roots)  # would be EBUSY (or worse) were any root removed
    assert all(os.path.isdir(root) for root in roots.values())
    via_links = {name: f"/sys/fs/cgroup/{name}" for name in ("cpu", "cpuacct")
                 if os.path.islink(f"/sys/fs/cgroup/{name}")}
    cgroups.destroy(via_links)
    assert all(os.path.isdir(link) for link in via_links.values())


def test_destroy_waits_for_killed_tasks_to_leave(paths: dict[str, str]) -> None:
    cgroups.create(paths)
    child = Child()
    cgroups.join(paths, child.pid)
    os.kill(child.pid, signal.SIGKILL)
    try:
        cgroups.destroy(paths)
    finally:
        child.reap()
    assert not any(os.path.exists(p) for p in paths.values())


@needs_v1
def test_errors_name_the_controller_and_the_file(paths: dict[str, str]) -> None:
    cgroups.create(paths)
    with pytest.raises(cgroups.CgroupError, match=r"cgroup pids: write 'max' to .*/pids\.max") as e:
        cgroups.apply_resources({"pids": paths["pids"] + "-missing"}, {"pids": {"limit": -1}})
    assert e.value.errno == errno.ENOENT
    with pytest.raises(PyruncError, match="cgroup hugetlb: controller is not mounted"):
        cgroups.apply_resources(paths, {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]})
    with pytest.raises(PyruncError, match="swappiness 101"):
        cgroups.apply_resources(paths, {"memory": {"swappiness": 101}})
    with pytest.raises(PyruncError, match="unified"):
        cgroups.apply_resources(paths, {"unified": {"memory.max": "1"}})
    child = Child()
    try:
        cgroups.join(paths, child.pid)
        with pytest.raises(cgroups.CgroupError, match="cgroup memory: rmdir") as busy:
            cgroups.destroy({"memory": paths["memory"]}, timeout=0.05)
        assert busy.value.errno == errno.EBUSY
    finally:
        child.kill()


@pytest.mark.slow
@pytest.mark.parametrize("cgroups_path", [None, "pyrunc-test-rel/sub", "/pyrunc-test-abs/sub"])
def test_paths_match_what_runc_creates(
    runc: Any, bundle: Path, tmp_path: Path, cgroups_path: str | None
) -> None:
    config = json.loads((bundle / "config.json").read_text())
    if cgroups_path:
        config["linux"]["cgroupsPath"] = cgroups_path
    (bundle / "config.json").write_text(json.dumps(config))
    container_id = f"pyrunc-test-{uuid.uuid4().hex[:12]}"
    # Not through runc(...): a detached container keeps its stdio, so captured
    # output would never reach EOF.
    subprocess.run(
        ["runc", "--root", str(runc.root), "run", "-d", "--bundle", str(bundle), container_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=60,
    )
    try:
        runc_state = json.loads((runc.root / container_id / "state.json").read_text())
        assert cgroups.resolve_paths(cgroups_path, container_id) == runc_state["cgroup_paths"]
    finally:
        runc("delete", "--force", container_id, check=True)
        if cgroups_path:
            # runc removes only the container's own cgroup, not the parents it made.
            cgroups.destroy(cgroups.resolve_paths(os.path.dirname(cgroups_path), container_id))
