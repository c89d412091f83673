"""Which containers exec refuses: stopped, paused (unless --ignore-paused), a reused init pid.

These change their container, so each gets its own (conftest's
function-scoped ``pyrunc_container``).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import Runtime
from tests.exec_support import cgroup_pids, wait_gone

pytestmark = pytest.mark.root


def test_paused_container_is_refused(pyrunc: Runtime, pyrunc_container: str) -> None:
    pyrunc("pause", pyrunc_container, check=True)
    try:
        done = pyrunc("exec", pyrunc_container, "true")
        assert done.returncode == 255
        assert done.stderr.strip() == ("cannot exec in a paused container "
                                       "(use --ignore-paused to override)")
    finally:
        pyrunc("resume", pyrunc_container, check=True)


def test_ignore_paused_runs_once_resumed(pyrunc: Runtime, pyrunc_container: str) -> None:
    pyrunc("pause", pyrunc_container, check=True)
    resumer = threading.Timer(1.0, lambda: pyrunc("resume", pyrunc_container, check=True))
    resumer.start()
    try:
        started = time.monotonic()
        done = pyrunc("exec", "--ignore-paused", pyrunc_container, "echo", "ok", timeout=30)
        assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
        assert time.monotonic() - started >= 0.5  # it ran only after the thaw
    finally:
        resumer.join()


def test_stopped_container_is_refused(pyrunc: Runtime, pyrunc_container: str,
                                      tmp_path: Path) -> None:
    pid = pyrunc.state(pyrunc_container)["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    done = pyrunc("exec", "--pid-file", str(tmp_path / "pid"), pyrunc_container, "true")
    assert done.returncode == 255
    assert done.stderr.strip() == "cannot exec in a stopped container"
    assert not (tmp_path / "pid").exists()


def test_init_start_time_mismatch_is_a_stopped_container(pyrunc: Runtime,
                                                         pyrunc_container: str) -> None:
    """The init's pid alone could name another process once reused: its start time must match."""
    pid = pyrunc.state(pyrunc_container)["pid"]
    state_file = pyrunc.root / pyrunc_container / "state.json"
    saved = state_file.read_text()
    record = json.loads(saved)
    record["init_start_time"] += 1
    state_file.write_text(json.dumps(record))
    try:
        done = pyrunc("exec", pyrunc_container, "true")
        assert done.returncode == 255
        assert done.stderr.strip() == "cannot exec in a stopped container"
        assert cgroup_pids(pid) == {pid}
    finally:
        state_file.write_text(saved)  # so that the fixture's delete finds its init
