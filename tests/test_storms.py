"""Load and faults on real containers: concurrent commands, and pyrunc killed mid-way.

- 100 concurrent ``exec`` and 50 concurrent ``exec -d --pid-file`` into one
  container all succeed; no zombie and no stray process is left, and the
  detached waiters hold none of their caller's files.
- 20 concurrent ``create`` of one id: exactly one wins, the others fail in one
  line, and only the winner's init exists.
- ``exec``, ``create`` and ``run -d`` killed with SIGKILL at seeded random
  moments: ``state``, ``list`` and ``delete --force`` still work, and nothing
  is left (process, cgroup, mount, state directory, half-written pid file).

Each storm prints its figures (wall time, successes): ``pytest -s`` shows them.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime, pyrunc_binary
from tests.exec_support import cgroup_pids
from tests.test_bad_input import call
from tests.test_lifecycle import assert_nothing_left, init_pid, is_gone, new_id

pytestmark = pytest.mark.root

SEED = 20251203

# Runs the detached execs as their subreaper: the waiters become its children
# once pyrunc exits, so it can wait for each (their status is the process's)
# and see that no zombie is left, whatever the host's pid 1 does.
DETACHED_STORM = r'''
import ctypes, json, os, subprocess, sys, time

libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
count, directory = int(sys.argv[1]), sys.argv[2]
argv = sys.argv[4:]
started = time.monotonic()
calls = []
for i in range(count):
    out = open(f"{directory}/out.{i}", "wb")
    err = open(f"{directory}/err.{i}", "wb")
    command = [a.replace("{i}", str(i)) for a in argv]
    calls.append((subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err),
                  out, err))
rcs = []
for popen, out, err in calls:
    rcs.append(popen.wait())
    out.close()
    err.close()
wall = time.monotonic() - started
waiters, fds = [], {}
for i in range(count):
    path = f"{directory}/pid.{i}"
    text = open(path).read() if os.path.exists(path) else ""
    waiters.append(int(text) if text.isdigit() else 0)
    if waiters[-1]:
        fd_dir = f"/proc/{waiters[-1]}/fd"
        try:
            fds[str(i)] = sorted(os.readlink(f"{fd_dir}/{n}") for n in os.listdir(fd_dir))
        except FileNotFoundError:
            fds[str(i)] = None
statuses = []
for pid in waiters:
    if pid:
        statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
others = 0
while True:
    try:
        pid, _ = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    others += 1
print(json.dumps({"rcs": rcs, "wall": wall, "waiters": waiters, "fds": fds,
                  "statuses": statuses, "other_children": others}))
'''


def zombies_in(pids: set[int]) -> list[int]:
    found = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            found.append(pid)
    return found


def wait_for_only_init(init: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while cgroup_pids(init) != {init}:
        if time.monotonic() > deadline:
            raise AssertionError(f"left in the container: {sorted(cgroup_pids(init) - {init})}")
        time.sleep(0.05)


def concurrently(argvs: list[list[str]]) -> tuple[list[int], list[str], float]:
    """Start every command at once; their exit statuses, outputs (stdout and stderr
    in one file each, never a pipe a container could hold) and the wall time."""
    started = time.monotonic()
    with ExitStack() as stack:
        outs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in argvs]
        calls = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT)
                 for argv, out in zip(argvs, outs, strict=True)]
        rcs = [c.wait(timeout=300) for c in calls]
        wall = time.monotonic() - started
        texts = []
        for out in outs:
            out.seek(0)
            texts.append(out.read())
    return rcs, texts, wall


def test_100_concurrent_execs_all_succeed_and_leave_nothing(rt: Runtime, ctr: str,
                                                            init: int) -> None:
    rcs, texts, wall = concurrently(
        [[rt.binary, "--root", str(rt.root), "exec", ctr, "sh", "-c", f"echo exec-{i}"]
         for i in range(100)])
    print(f"\nstorm: 100 concurrent exec: {rcs.count(0)}/100 succeeded in {wall:.1f}s")
    assert rcs == [0] * 100, [t for t in texts if not t.startswith("exec-")]
    assert texts == [f"exec-{i}\n" for i in range(100)]
    wait_for_only_init(init)
    assert zombies_in(cgroup_pids(init)) == []
    assert rt.state(ctr)["status"] == "running"


def test_50_concurrent_detached_execs_hold_nothing_of_their_caller(
        rt: Runtime, ctr: str, init: int, tmp_path: Path) -> None:
    helper = tmp_path / "storm.py"
    helper.write_text(DETACHED_STORM)
    argv = [pyrunc_binary(), "--root", str(rt.root), "exec", "-d", "--pid-file",
            f"{tmp_path}/pid.{{i}}", ctr, "sh", "-c", "sleep 4; exit 7"]
    done = subprocess.run([sys.executable, str(helper), "50", str(tmp_path), "--", *argv],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    print(f"\nstorm: 50 concurrent exec -d: {report['rcs'].count(0)}/50 succeeded in "
          f"{report['wall']:.1f}s")
    errors = [(tmp_path / f"err.{i}").read_text() for i, rc in enumerate(report["rcs"]) if rc]
    assert report["rcs"] == [0] * 50, errors
    assert all(report["waiters"]), "every pid file names its waiter"
    # Each waiter exits with its process's status, and nothing else was left to reap.
    assert report["statuses"] == [7] * 50
    assert report["other_children"] == 0
    for i, fds in report["fds"].items():
        if fds is None:
            continue  # already gone: nothing held
        caller_files = {str(tmp_path / f"out.{i}"), str(tmp_path / f"err.{i}")}
        assert not caller_files & set(fds), (i, fds)
        assert not any(str(tmp_path) in fd for fd in fds), (i, fds)
    wait_for_only_init(init)
    assert zombies_in(cgroup_pids(init)) == []
    assert rt.state(ctr)["status"] == "running"


def test_20_concurrent_creates_of_one_id_exactly_one_wins(pyrunc: Runtime,
                                                          bundle: Path) -> None:
    container_id = new_id()
    rcs, messages, wall = concurrently(
        [[pyrunc.binary, "--root", str(pyrunc.root), "create", "--bundle", str(bundle),
          container_id]] * 20)
    print(f"\nstorm: 20 concurrent create of one id: {rcs.count(0)} won, "
          f"{rcs.count(1)} refused in {wall:.1f}s")
    try:
        assert sorted(rcs) == [0] + [1] * 19, messages
        for rc, message in zip(rcs, messages, strict=True):
            if rc:
                assert len(message.strip().splitlines()) == 1, message
                assert "already exists" in message, message
        state = pyrunc.state(container_id)
        assert state["status"] == "created"
        assert cgroup_pids(state["pid"]) == {state["pid"]}
    finally:
        pyrunc("delete", "--force", container_id)
    assert_nothing_left(pyrunc, container_id)


def _kill_at(argv: list[str], delay: float) -> bool:
    """Start ``argv``, SIGKILL it after ``delay`` s; whether it was still running."""
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=err)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        status = process.wait(timeout=60)
    return status == -signal.SIGKILL


def _assert_pid_file_whole(path: Path) -> None:
    if path.exists():
        text = path.read_text()
        assert text.isdigit(), f"half-written pid file: {text!r}"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}")]


def _time_of(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60, check=True)
    return time.monotonic() - started


@pytest.mark.parametrize("command", ["create", "run -d"])
def test_create_killed_at_random_moments_leaves_nothing_stuck(
        pyrunc: Runtime, bundle: Path, tmp_path: Path, command: str) -> None:
    """Each kill lands somewhere in the command's run (seeded, spread over its duration);
    then state, list and delete --force work and the id is usable again."""
    rng = random.Random(f"{SEED}-{command}")
    base = [pyrunc.binary, "--root", str(pyrunc.root), *command.split(), "--bundle", str(bundle)]
    probe = new_id()
    duration = _time_of([*base, probe])
    pyrunc("delete", "--force", probe, check=True)
    killed = 0
    trials = 12
    for trial in range(trials):
        container_id = new_id()
        pid_file = tmp_path / f"init.{trial}.pid"
        delay = rng.uniform(0, duration * 0.9)
        if _kill_at([*base, "--pid-file", str(pid_file), container_id], delay):
            killed += 1
        else:
            # It had ended before the kill: a run can take half the probe's time
            # (0.03 s against 0.06 s on one host, likely a cgroup write that did
            # or did not wait for an RCU grace period), so aim within this one.
            duration = min(duration, delay)
        _assert_pid_file_whole(pid_file)
        state = call(pyrunc, "state", container_id)
        assert "Traceback" not in state.stderr and "internal error" not in state.stderr
        if (pyrunc.root / container_id).exists():
            assert "does not exist" not in state.stderr, state.stderr
            assert state.returncode == 0 or len(state.stderr.strip().splitlines()) == 1
        listed = call(pyrunc, "list")
        assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
        deleted = call(pyrunc, "delete", "--force", container_id)
        assert (deleted.returncode, deleted.stderr) == (0, "")
        assert_nothing_left(pyrunc, container_id)
        pyrunc.run_detached("create", "--bundle", str(bundle), container_id)
        pyrunc("delete", "--force", container_id, check=True)
        assert_nothing_left(pyrunc, container_id)
    print(f"\nfaults: {command} killed {killed}/{trials} times mid-way "
          f"(typical run {duration:.2f}s): every id freed")
    assert killed >= trials // 3, "the kills should land while the command runs"


@pytest.mark.parametrize("detach", [False, True], ids=["exec", "exec -d"])
def test_exec_killed_at_random_moments_leaves_nothing(
        pyrunc: Runtime, bundle: Path, tmp_path: Path, detach: bool) -> None:
    rng = random.Random(f"{SEED}-exec-{detach}")
    container_id = new_id()
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    init = init_pid(pyrunc, container_id)
    base = [pyrunc.binary, "--root", str(pyrunc.root), "exec"]
    duration = _time_of([*base, container_id, "true"])
    killed = 0
    trials = 12
    try:
        for trial in range(trials):
            pid_file = tmp_path / f"exec.{trial}.pid"
            flags = ["-d", "--pid-file", str(pid_file)] if detach else []
            killed += _kill_at([*base, *flags, container_id, "sleep", "600"],
                               rng.uniform(0, duration * 0.9))
            _assert_pid_file_whole(pid_file)
            assert pyrunc.state(container_id)["status"] == "running"
            listed = call(pyrunc, "list")
            assert listed.returncode == 0 and listed.stderr == "", listed.stderr
            assert zombies_in(cgroup_pids(init)) == []
    finally:
        deleted = call(pyrunc, "delete", "--force", container_id)
    print(f"\nfaults: {'exec -d' if detach else 'exec'} killed {killed}/{trials} times "
          f"mid-way (typical run {duration:.2f}s)")
    assert (deleted.returncode, deleted.stderr) == (0, "")
    assert is_gone(init)
    assert_nothing_left(pyrunc, container_id)
    assert killed >= trials // 3
