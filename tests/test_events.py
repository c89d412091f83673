"""pyrunc events on real containers: runc's line format, the numbers the cgroup
holds, OOM kills, and a stream that ends when the container or the caller does."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime, edit_config, running

pytestmark = pytest.mark.root

MiB = 1024 * 1024


@pytest.fixture
def limited(pyrunc: Runtime, bundle: Path) -> Iterator[str]:
    def limits(config: dict[str, Any]) -> None:
        config["linux"]["resources"] = {**config["linux"].get("resources", {}),
                                        "memory": {"limit": 32 * MiB, "swap": 32 * MiB},
                                        "pids": {"limit": 20}}
        config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})

    edit_config(bundle, limits)
    with running(pyrunc, bundle) as container_id:
        yield container_id


def _stream(runtime: Runtime, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([runtime.binary, "--root", str(runtime.root), "events", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_stats_once_in_runcs_shape_with_the_cgroups_numbers(pyrunc: Runtime,
                                                             limited: str) -> None:
    quiet_sleep = "sleep 100 >/dev/null 2>&1"
    pyrunc("exec", limited, "sh", "-c", f"{quiet_sleep} & {quiet_sleep} & true", check=True)
    result = pyrunc("events", "--stats", limited, check=True)
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f'{{"type":"stats","id":"{limited}","data":{{')
    data = json.loads(lines[0])["data"]
    assert {"cpu", "memory", "pids", "blkio", "hugetlb"} <= set(data)
    assert data["memory"]["usage"]["limit"] == 32 * MiB
    assert 0 < data["memory"]["usage"]["usage"] <= 32 * MiB
    assert data["pids"] == {"current": 3, "limit": 20}  # sleep 3600 and two sleeps
    assert data["cpu"]["usage"]["total"] > 0


def test_stream_ends_when_the_container_stops(pyrunc: Runtime, limited: str) -> None:
    stream = _stream(pyrunc, "--interval", "100ms", limited)
    assert stream.stdout is not None
    first = stream.stdout.readline()
    assert json.loads(first)["type"] == "stats"
    time.sleep(0.5)
    pyrunc("kill", limited, "KILL", check=True)
    out, err = stream.communicate(timeout=10)
    assert stream.returncode == 0, err
    lines = [first, *out.splitlines()]
    assert len(lines) >= 3  # 100 ms apart
    assert all(json.loads(line)["id"] == limited for line in lines)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stream_ends_cleanly_on_a_signal(pyrunc: Runtime, limited: str, signum: int) -> None:
    stream = _stream(pyrunc, limited)  # the default interval, 5 s: the first line comes at once
    assert stream.stdout is not None
    assert json.loads(stream.stdout.readline())["type"] == "stats"
    stream.send_signal(signum)
    _, err = stream.communicate(timeout=10)
    assert stream.returncode == 0 and err == ""


def test_oom_kill_is_an_oom_event(pyrunc: Runtime, limited: str) -> None:
    stream = _stream(pyrunc, "--interval", "1s", limited)
    assert stream.stdout is not None
    stream.stdout.readline()
    # 64 MiB into a 32 MiB tmpfs-charged cgroup: the kernel kills the writer.
    pyrunc("exec", limited, "sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=64")
    deadline = time.monotonic() + 20
    seen = []
    while time.monotonic() < deadline:
        line = stream.stdout.readline()
        seen.append(line)
        if json.loads(line)["type"] == "oom":
            break
    stream.send_signal(signal.SIGTERM)
    stream.communicate(timeout=10)
    assert f'{{"type":"oom","id":"{limited}"}}\n' in seen


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "greater than 0"),
        (["--interval", "-1s"], "not a duration"),
        (["--interval", "soon"], "not a duration"),
    ],
)
def test_bad_intervals(pyrunc: Runtime, limited: str, args: list[str], message: str) -> None:
    result = pyrunc("events", *args, limited)
    assert result.returncode == 1 and result.stdout == ""
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unknown_container(pyrunc: Runtime) -> None:
    result = pyrunc("events", "--stats", "no-such-container")
    assert result.returncode == 1 and "does not exist" in result.stderr
