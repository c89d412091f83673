"""pyrunc update on real containers: the cgroup files, what the process inside
reads, what is recorded, and the old limits kept when anything is refused."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime, edit_config, running

pytestmark = pytest.mark.root

MiB = 1024 * 1024


def _limits(config: dict[str, Any]) -> None:
    config["linux"]["resources"] = {
        **config["linux"].get("resources", {}),
        "memory": {"limit": 32 * MiB, "reservation": 24 * MiB},
        "cpu": {"shares": 100, "quota": 500000, "period": 1000000},
        "pids": {"limit": 20},
    }


@pytest.fixture
def limited(pyrunc: Runtime, bundle: Path) -> Iterator[str]:
    edit_config(bundle, _limits)
    with running(pyrunc, bundle) as container_id:
        yield container_id


def _paths(runtime: Runtime, container_id: str) -> dict[str, str]:
    record = json.loads((runtime.root / container_id / "state.json").read_text())
    paths: dict[str, str] = record["cgroup_paths"]
    return paths


def _recorded(runtime: Runtime, container_id: str) -> dict[str, Any]:
    record = json.loads((runtime.root / container_id / "state.json").read_text())
    resources: dict[str, Any] = record["config"]["linux"]["resources"]
    return resources


def _unified(paths: dict[str, str]) -> bool:
    return set(paths) == {""}


def _file(paths: dict[str, str], v1: tuple[str, str], v2: str) -> str:
    controller, name = v1
    path = os.path.join(paths[""], v2) if _unified(paths) else os.path.join(
        paths[controller], name)
    return Path(path).read_text().strip()


def memory_limit(paths: dict[str, str]) -> str:
    return _file(paths, ("memory", "memory.limit_in_bytes"), "memory.max")


def pids_max(paths: dict[str, str]) -> str:
    return _file(paths, ("pids", "pids.max"), "pids.max")


def cpu_quota(paths: dict[str, str]) -> str:
    if _unified(paths):
        return _file(paths, ("cpu", ""), "cpu.max")
    quota = _file(paths, ("cpu", "cpu.cfs_quota_us"), "")
    period = _file(paths, ("cpu", "cpu.cfs_period_us"), "")
    return f"{quota} {period}"


def test_update_flags_reach_the_cgroup_and_the_process_inside(pyrunc: Runtime,
                                                             limited: str) -> None:
    paths = _paths(pyrunc, limited)
    assert memory_limit(paths) == str(32 * MiB)
    pyrunc("update", "--memory", "64M", "--memory-reservation", "48M", "--pids-limit", "30",
           "--cpu-quota", "300000", "--cpu-share", "200", "--cpuset-cpus", "0", limited,
           check=True)
    assert memory_limit(paths) == str(64 * MiB)
    assert pids_max(paths) == "30"
    assert cpu_quota(paths) == ("300000 1000000")
    # v1: the container's memory cgroup is mounted at /sys/fs/cgroup/memory;
    # v2 without a cgroup namespace shows the whole tree: go to our own cgroup.
    inside = ('"/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)/memory.max"'
              if _unified(paths) else "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    seen = pyrunc("exec", limited, "sh", "-c", f"cat {inside}", check=True).stdout
    assert seen.strip() == str(64 * MiB)
    recorded = _recorded(pyrunc, limited)
    assert recorded["memory"] == {"limit": 64 * MiB, "reservation": 48 * MiB}
    assert recorded["cpu"] == {"shares": 200, "quota": 300000, "period": 1000000, "cpus": "0"}
    assert recorded["pids"] == {"limit": 30}


def test_flags_after_the_id_as_runc_accepts_them(pyrunc: Runtime, limited: str) -> None:
    pyrunc("update", limited, "--pids-limit", "-1", check=True)
    assert pids_max(_paths(pyrunc, limited)) == "max"


def test_period_alone_keeps_the_recorded_quota(pyrunc: Runtime, limited: str) -> None:
    pyrunc("update", "--cpu-period", "900000", limited, check=True)
    pyrunc("update", "--cpu-quota", "600000", limited, check=True)
    assert cpu_quota(_paths(pyrunc, limited)) == "600000 900000"


def test_resources_json_on_stdin_and_in_a_file(pyrunc: Runtime, limited: str,
                                               tmp_path: Path) -> None:
    paths = _paths(pyrunc, limited)
    pyrunc("update", "-r", "-", limited, check=True,
           input=json.dumps({"memory": {"limit": 40 * MiB}, "pids": {"limit": 25},
                             "devices": [{"allow": True, "access": "rwm"}]}))
    assert memory_limit(paths) == str(40 * MiB)
    assert pids_max(paths) == "25"
    source = tmp_path / "resources.json"
    source.write_text(json.dumps({"memory": {"limit": 50 * MiB}}))
    pyrunc("update", "--resources", str(source), limited, check=True)
    assert memory_limit(paths) == str(50 * MiB)
    if not _unified(paths):
        # Device rules are never changed by update: "c 1:3 rwm" is not all.
        devices = Path(paths["devices"], "devices.list").read_text()
        assert "a *:* rwm" not in devices


@pytest.mark.parametrize("refused", [["--cpuset-cpus", "4095"], ["--memory", "1k"]])
def test_a_refused_value_leaves_every_old_limit_in_place(pyrunc: Runtime, limited: str,
                                                         refused: list[str]) -> None:
    """Limits written before the refused one must be put back too.

    A CPU the machine lacks is refused on v1 and v2; a memory limit below the
    usage only on v1 (v2 reclaims, then OOM-kills, instead of refusing).
    """
    paths = _paths(pyrunc, limited)
    if refused[0] == "--memory" and _unified(paths):
        pytest.skip("cgroup v2 takes a memory.max below the usage")
    before = (memory_limit(paths), pids_max(paths), cpu_quota(paths))
    recorded = _recorded(pyrunc, limited)
    result = pyrunc("update", "--pids-limit", "50", "--cpu-quota", "200000",
                    "--memory", "48M", *refused, limited)
    assert result.returncode == 1
    assert "previous limits are kept" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (memory_limit(paths), pids_max(paths), cpu_quota(paths)) == before
    assert _recorded(pyrunc, limited) == recorded


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--memory", "-5"], None, "--memory"),
        (["--memory", "12parsecs"], None, "--memory"),
        (["--memory", "99999999999999999999"], None, "out of range"),
        (["--cpu-share", "-1"], None, "out of range"),
        (["--pids-limit", "-7"], None, "pids.limit"),
        (["--blkio-weight", "5000"], None, "blockIO.weight"),
        (["--bogus", "1"], None, "--bogus"),
        (["-r", "-"], '{"memory": {"limit": "64M"}}', "memory.limit"),
        (["-r", "-"], '{"cpu": {"shares": -3}}', "cpu.shares"),
        (["-r", "-"], '{"memory": [1]}', "memory"),
        (["-r", "-"], "not json", "not JSON"),
        (["-r", "/nonexistent/r.json"], None, "/nonexistent/r.json"),
        (["--l3-cache-schema", "L3:0=f"], None, "Intel RDT"),
        (["--mem-bw-schema", "MB:0=50"], None, "Intel RDT"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(pyrunc: Runtime, limited: str,
                                                   args: list[str], stdin: str | None,
                                                   message: str) -> None:
    paths = _paths(pyrunc, limited)
    before = (memory_limit(paths), pids_max(paths), cpu_quota(paths))
    result = pyrunc("update", *args, limited, input=stdin or "")
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert (memory_limit(paths), pids_max(paths), cpu_quota(paths)) == before


def test_kernel_memory_is_ignored_with_a_warning_as_runc_does(pyrunc: Runtime,
                                                              limited: str) -> None:
    result = pyrunc("update", "--kernel-memory", "64M", limited)
    assert result.returncode == 0
    assert "kernel memory" in result.stderr


def test_unknown_and_stopped_containers_are_refused(pyrunc: Runtime, bundle: Path) -> None:
    result = pyrunc("update", "--memory", "64M", "no-such-container")
    assert result.returncode == 1 and "does not exist" in result.stderr
    with running(pyrunc, bundle) as container_id:
        pyrunc("kill", container_id, "KILL", check=True)
        deadline = time.monotonic() + 10
        while pyrunc.state(container_id)["status"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        result = pyrunc("update", "--memory", "64M", container_id)
        assert result.returncode == 1 and "not running" in result.stderr
