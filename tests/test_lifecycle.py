"""A container's life through pyrunc's commands, checked from outside.

spec, create, start, run, state, list, kill, delete, ps, pause and resume act
on real containers; the tests read the host's view of them (/proc/<pid>,
the cgroup directories, the state directory under --root, exit statuses)
and, where runc 1.1.5 has an answer, compare with what runc does on the same
bundle.  The helpers at the top are shared with test_create and
test_bad_input.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runpy_exec.linux import cgroups
from tests.conftest import Runtime, edit_config, imported_modules, pyrunc_binary
from tests.exec_support import make_bundle, status_fields

pytestmark = pytest.mark.root

# --- helpers shared with test_create and test_bad_input ---------------------------------


def new_id() -> str:
    """Unique across runs and runtimes: cgroup paths are derived from the id alone."""
    return f"lc{uuid.uuid4().hex[:12]}"


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def proc_status(pid: int) -> dict[str, str]:
    return status_fields(Path(f"/proc/{pid}/status").read_text())


def is_gone(pid: int) -> bool:
    """No such process, or only its zombie (waiting for whoever reaps it)."""
    try:
        return proc_status(pid)["State"].startswith("Z")
    except (FileNotFoundError, ProcessLookupError):
        return True


def cgroup_dirs(container_id: str) -> dict[str, str]:
    """Where a container without cgroupsPath lives: <our own cgroup>/<id> in each hierarchy."""
    return cgroups.resolve_paths(None, container_id)


def processes_in_cgroup_of(container_id: str) -> list[int]:
    """Every live process on the host that is in a cgroup named after the container."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            lines = Path(f"/proc/{entry}/cgroup").read_text().splitlines()
            if is_gone(int(entry)):
                continue
        except (FileNotFoundError, ProcessLookupError):
            continue
        if any(container_id in line.split(":", 2)[2].split("/") for line in lines):
            found.append(int(entry))
    return found


def host_mount_points() -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]


def assert_nothing_left(rt: Runtime, container_id: str, *paths: Path) -> None:
    """No state directory, process, cgroup or host mount (below ``paths``) of the container."""
    assert not (rt.root / container_id).exists(), os.listdir(rt.root / container_id)
    assert processes_in_cgroup_of(container_id) == []
    left = [d for d in cgroup_dirs(container_id).values() if os.path.exists(d)]
    assert left == []
    mounts = [m for m in host_mount_points()
              if container_id in m or any(m.startswith(str(p)) for p in paths)]
    assert mounts == []


def init_pid(rt: Runtime, container_id: str) -> int:
    pid: int = rt.state(container_id)["pid"]
    return pid


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]


def set_args(bundle: Path, *args: str) -> None:
    def change(config: dict[str, Any]) -> None:
        config["process"]["args"] = list(args)

    edit_config(bundle, change)


# --- spec -------------------------------------------------------------------------------


def test_spec_writes_runc_s_default_and_keeps_an_existing_one(
        pyrunc: Runtime, runc: Runtime, tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    pyrunc("spec", "--bundle", str(ours), check=True)
    runc("spec", "--bundle", str(theirs), check=True)
    assert (ours / "config.json").read_bytes() == (theirs / "config.json").read_bytes()

    (ours / "config.json").write_text("{}")
    again = pyrunc("spec", cwd=ours)
    assert again.returncode == 1
    assert "config.json" in again.stderr
    assert (ours / "config.json").read_text() == "{}"


# --- create and start -------------------------------------------------------------------


@pytest.mark.parametrize("flags", [("--bundle",), ("-b",), ("--no-pivot", "--bundle")])
def test_create_leaves_the_init_waiting_until_start(
        pyrunc: Runtime, bundle: Path, tmp_path: Path, flags: tuple[str, ...]) -> None:
    container_id = new_id()
    pid_file = tmp_path / "init.pid"
    pyrunc.run_detached("create", *flags, str(bundle), "--pid-file", str(pid_file),
                        container_id)
    try:
        state = pyrunc.state(container_id)
        assert state["status"] == "created"
        pid = state["pid"]
        assert pid_file.read_text() == str(pid)  # no newline: engines read it as is
        assert (pyrunc.root / container_id / "exec.fifo").exists()
        assert cmdline(pid) != ["sleep", "3600"]  # still pyrunc, waiting for start
        assert proc_status(pid)["State"].startswith("S")

        pyrunc("start", container_id, check=True)
        assert pyrunc.state(container_id)["status"] == "running"
        assert init_pid(pyrunc, container_id) == pid
        wait_until(lambda: cmdline(pid) == ["sleep", "3600"], "the init to exec sleep")
        assert not (pyrunc.root / container_id / "exec.fifo").exists()

        again = pyrunc("start", container_id)
        assert again.returncode == 1
        assert "running" in again.stderr
    finally:
        pyrunc("delete", "--force", container_id)


def test_start_of_a_stopped_container_is_refused(pyrunc: Runtime, bundle: Path) -> None:
    container_id = new_id()
    pyrunc.run_detached("create", "--bundle", str(bundle), container_id)
    try:
        pid = init_pid(pyrunc, container_id)
        pyrunc("kill", container_id, "KILL", check=True)
        wait_until(lambda: is_gone(pid), "the init to die")
        done = pyrunc("start", container_id, timeout=10)
        assert done.returncode == 1
        assert "stopped" in done.stderr
    finally:
        pyrunc("delete", "--force", container_id)


def test_run_detached_runs_the_process(pyrunc: Runtime, bundle: Path, tmp_path: Path) -> None:
    container_id = new_id()
    pid_file = tmp_path / "pid"
    pyrunc.run_detached("run", "-d", "--pid-file", str(pid_file), "--bundle", str(bundle),
                        container_id)
    try:
        state = pyrunc.state(container_id)
        assert state["status"] == "running"
        assert pid_file.read_text() == str(state["pid"])
        wait_until(lambda: cmdline(state["pid"]) == ["sleep", "3600"], "sleep to run")
    finally:
        pyrunc("delete", "--force", container_id)


@pytest.mark.parametrize(("script", "status"), [("exit 0", 0), ("exit 3", 3),
                                                ("echo out; echo err >&2; exit 42", 42)])
def test_run_in_the_foreground_exits_with_the_process_s_status(
        pyrunc: Runtime, runc: Runtime, bundle: Path, script: str, status: int) -> None:
    set_args(bundle, "sh", "-c", script)
    ours, theirs = new_id(), new_id()
    done = pyrunc("run", "--bundle", str(bundle), ours, stdin=subprocess.DEVNULL, timeout=30)
    reference = runc("run", "--bundle", str(bundle), theirs, stdin=subprocess.DEVNULL,
                     timeout=30)
    assert reference.returncode == status
    assert (done.returncode, done.stdout, done.stderr) == (status, reference.stdout,
                                                          reference.stderr)
    assert_nothing_left(pyrunc, ours)


def test_run_in_the_foreground_reports_a_signal_as_128_plus_n(
        pyrunc: Runtime, bundle: Path) -> None:
    container_id = new_id()
    with subprocess.Popen([pyrunc.binary, "--root", str(pyrunc.root), "run", "--bundle",
                           str(bundle), container_id], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as run:
        try:
            wait_until(lambda: (pyrunc.root / container_id / "state.json").exists()
                       and pyrunc("state", container_id).returncode == 0
                       and pyrunc.state(container_id)["status"] == "running",
                       "the container to run")
            pyrunc("kill", container_id, "KILL", check=True)
            assert run.wait(timeout=20) == 128 + signal.SIGKILL
        finally:
            run.kill()
            pyrunc("delete", "--force", container_id)
    assert_nothing_left(pyrunc, container_id)


def test_run_keep_leaves_the_stopped_container(pyrunc: Runtime, bundle: Path) -> None:
    set_args(bundle, "true")
    container_id = new_id()
    done = pyrunc("run", "--keep", "--bundle", str(bundle), container_id,
                  stdin=subprocess.DEVNULL, timeout=30)
    try:
        assert done.returncode == 0, done.stderr
        state = pyrunc.state(container_id)
        assert (state["status"], state["pid"]) == ("stopped", 0)
        assert all(os.path.isdir(d) for d in cgroup_dirs(container_id).values())
    finally:
        pyrunc("delete", container_id)
    assert_nothing_left(pyrunc, container_id)


# --- state, list and ps on one running container of each runtime --------------------------


class Pair:
    """The same bundle running under pyrunc and under runc."""

    def __init__(self, ours: Runtime, theirs: Runtime, bundle: Path) -> None:
        self.ours, self.theirs, self.bundle = ours, theirs, bundle
        self.ours_id, self.theirs_id = new_id(), new_id()


@pytest.fixture(scope="module")
def pair(busybox_bundle_template: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Pair]:
    bundle = make_bundle(busybox_bundle_template, tmp_path_factory.mktemp("pair-bundle"))
    pair = Pair(Runtime(pyrunc_binary(), tmp_path_factory.mktemp("pyrunc-root")),
                Runtime("runc", tmp_path_factory.mktemp("runc-root")), bundle)
    try:
        pair.ours.run_detached("run", "-d", "--bundle", str(bundle), pair.ours_id)
        pair.theirs.run_detached("run", "-d", "--bundle", str(bundle), pair.theirs_id)
        yield pair
    finally:
        pair.ours("delete", "--force", pair.ours_id)
        pair.theirs("delete", "--force", pair.theirs_id)


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def test_state_fields(pair: Pair) -> None:
    ours = pair.ours.state(pair.ours_id)
    theirs = pair.theirs.state(pair.theirs_id)
    assert sorted(ours) == sorted(theirs)
    assert ours["id"] == pair.ours_id
    assert ours["status"] == "running"
    assert ours["bundle"] == theirs["bundle"] == str(pair.bundle)
    assert ours["rootfs"] == theirs["rootfs"]
    assert ours["ociVersion"].startswith("1.")
    assert RFC3339.match(ours["created"]), ours["created"]
    assert cmdline(ours["pid"]) == ["sleep", "3600"]


def test_list_table_quiet_and_json(pair: Pair) -> None:
    table = pair.ours("list", check=True).stdout.splitlines()
    header = table[0].split()
    assert header == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert len(table) == 2
    state = pair.ours.state(pair.ours_id)
    row = table[1].split()
    assert row[:5] == [pair.ours_id, str(state["pid"]), "running", str(pair.bundle),
                       state["created"]]
    # Columns are aligned: each cell starts where its heading does.
    assert [table[1].index(cell) for cell in row[:5]] == [table[0].index(h)
                                                           for h in header[:5]]

    assert pair.ours("list", "-q", check=True).stdout == f"{pair.ours_id}\n"
    assert pair.ours("list", "--quiet", check=True).stdout == f"{pair.ours_id}\n"

    ours = json.loads(pair.ours("list", "--format", "json", check=True).stdout)
    theirs = json.loads(pair.theirs("list", "--format", "json", check=True).stdout)
    assert [sorted(c) for c in ours] == [sorted(c) for c in theirs]
    assert [(c["id"], c["pid"], c["status"]) for c in ours] == [
        (pair.ours_id, state["pid"], "running")]


def test_ps_table_json_and_ps_options(pair: Pair) -> None:
    pid = init_pid(pair.ours, pair.ours_id)
    assert json.loads(pair.ours("ps", "--format", "json", pair.ours_id, check=True).stdout) \
        == [pid]

    table = pair.ours("ps", pair.ours_id, check=True).stdout.splitlines()
    column = table[0].split().index("PID")
    assert [int(line.split()[column]) for line in table[1:]] == [pid]

    custom = pair.ours("ps", pair.ours_id, "-o", "pid,comm", check=True).stdout.split()
    assert custom == ["PID", "COMMAND", str(pid), "sleep"]


def test_ps_failing_says_why_in_one_line_as_runc_does(pair: Pair) -> None:
    """ps(1) is spawned without subprocess; its complaint still reaches the caller."""
    ours = pair.ours("ps", pair.ours_id, "--bogus")
    theirs = pair.theirs("ps", pair.theirs_id, "--bogus")
    assert ours.returncode == theirs.returncode == 1
    assert "unknown gnu long option" in theirs.stderr
    assert ours.stdout == "" and ours.stderr.strip().splitlines() == [
        "ps --bogus: exit status 1: error: unknown gnu long option"]


# --- kill -------------------------------------------------------------------------------


def test_signal_names_are_those_of_signal_signals() -> None:
    """The table read from _signal (no enum import) is signal.Signals', aliases included."""
    from runpy_exec import lifecycle

    expected = {name: int(number) for name, number in signal.Signals.__members__.items()}
    assert lifecycle.signal_numbers() == expected
    for name, number in expected.items():
        assert lifecycle.parse_signal(name) == number
        assert lifecycle.parse_signal(name[3:].lower()) == number
    for number in [0, *expected.values(), *range(signal.SIGRTMIN, signal.SIGRTMAX + 1)]:
        assert lifecycle.parse_signal(str(number)) == number


@pytest.mark.parametrize("name", ["KILL", "SIGKILL", "9", "kill"])
def test_kill_names_a_signal_three_ways(pyrunc: Runtime, pyrunc_container: str,
                                        name: str) -> None:
    pid = init_pid(pyrunc, pyrunc_container)
    pyrunc("kill", pyrunc_container, name, check=True)
    wait_until(lambda: is_gone(pid), f"kill {name} to end the init")
    assert pyrunc.state(pyrunc_container)["status"] == "stopped"
    again = pyrunc("kill", pyrunc_container, "KILL")
    assert again.returncode == 1
    assert "Traceback" not in again.stderr


def test_kill_sends_sigterm_by_default(pyrunc: Runtime, bundle: Path) -> None:
    set_args(bundle, "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done")
    container_id = new_id()
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    try:
        pid = init_pid(pyrunc, container_id)
        time.sleep(0.3)  # let sh set its trap
        pyrunc("kill", container_id, check=True)
        wait_until(lambda: is_gone(pid), "the TERM trap to end sh")
    finally:
        pyrunc("delete", "--force", container_id)


def test_kill_all_signals_every_process(pyrunc: Runtime, bundle: Path) -> None:
    # sleep as pid 1 ignores TERM (no handler); the background one does not.
    set_args(bundle, "sh", "-c", "sleep 3600 & exec sleep 3601")
    container_id = new_id()
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    try:
        pid = init_pid(pyrunc, container_id)
        wait_until(lambda: len(processes_in_cgroup_of(container_id)) == 2,
                   "two processes in the container")
        child = next(p for p in processes_in_cgroup_of(container_id) if p != pid)

        pyrunc("kill", container_id, "TERM", check=True)  # only the init, which ignores it
        time.sleep(0.2)
        assert not is_gone(child)

        pyrunc("kill", "--all", container_id, "TERM", check=True)
        wait_until(lambda: is_gone(child), "kill --all to reach the background sleep")
        assert not is_gone(pid)

        pyrunc("kill", "-a", container_id, "KILL", check=True)
        wait_until(lambda: processes_in_cgroup_of(container_id) == [], "every process to die")
    finally:
        pyrunc("delete", "--force", container_id)


# --- delete -----------------------------------------------------------------------------


def test_delete_of_a_running_container_needs_force(pyrunc: Runtime, bundle: Path) -> None:
    container_id = new_id()
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    pid = init_pid(pyrunc, container_id)
    dirs = cgroup_dirs(container_id)
    assert all(os.path.isdir(d) for d in dirs.values())

    refused = pyrunc("delete", container_id)
    assert refused.returncode == 1
    assert container_id in refused.stderr
    assert pyrunc.state(container_id)["status"] == "running"
    assert not is_gone(pid)

    pyrunc("delete", "--force", container_id, check=True)
    assert is_gone(pid)
    assert_nothing_left(pyrunc, container_id, bundle)
    assert pyrunc("state", container_id).returncode == 1


def test_delete_of_a_stopped_container(pyrunc: Runtime, bundle: Path) -> None:
    container_id = new_id()
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    pid = init_pid(pyrunc, container_id)
    pyrunc("kill", container_id, "KILL", check=True)
    wait_until(lambda: is_gone(pid), "the init to die")
    pyrunc("delete", container_id, check=True)
    assert_nothing_left(pyrunc, container_id, bundle)


def test_delete_of_a_created_container_kills_its_init_as_runc_does(
        pyrunc: Runtime, runc: Runtime, bundle: Path) -> None:
    for rt in (runc, pyrunc):
        container_id = new_id()
        rt.run_detached("create", "--bundle", str(bundle), container_id)
        pid = init_pid(rt, container_id)
        done = rt("delete", container_id)
        assert done.returncode == 0, f"{rt.binary}: {done.stderr}"
        wait_until(lambda: is_gone(pid), f"{rt.binary}'s init to die")  # noqa: B023
        assert_nothing_left(rt, container_id, bundle)


def test_delete_force_of_an_unknown_container_succeeds(pyrunc: Runtime) -> None:
    done = pyrunc("delete", "--force", new_id())
    assert (done.returncode, done.stderr) == (0, "")


# --- pause and resume -------------------------------------------------------------------


def test_pause_freezes_and_resume_thaws(pyrunc: Runtime, pyrunc_container: str) -> None:
    pid = init_pid(pyrunc, pyrunc_container)
    dirs = cgroup_dirs(pyrunc_container)
    v1 = "freezer" in dirs  # else cgroup v2's cgroup.freeze and cgroup.events

    def frozen() -> bool:
        if v1:
            return Path(dirs["freezer"], "freezer.state").read_text().strip() == "FROZEN"
        events = Path(dirs[cgroups.UNIFIED], "cgroup.events").read_text().split("\n")
        return Path(dirs[cgroups.UNIFIED], "cgroup.freeze").read_text().strip() == "1" \
            and "frozen 1" in events

    pyrunc("pause", pyrunc_container, check=True)
    assert pyrunc.state(pyrunc_container)["status"] == "paused"
    assert frozen()
    if v1:
        assert proc_status(pid)["State"].startswith("D")  # how v1's freezer shows a frozen task
    refused = pyrunc("exec", pyrunc_container, "true", timeout=10)
    assert refused.returncode != 0
    assert "paused" in refused.stderr
    again = pyrunc("pause", pyrunc_container)
    assert again.returncode == 1

    # --ignore-paused is not refused: its process waits, frozen, until resume.
    with subprocess.Popen([pyrunc.binary, "--root", str(pyrunc.root), "exec", "--ignore-paused",
                           pyrunc_container, "true"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as exec_:
        time.sleep(0.5)
        pyrunc("resume", pyrunc_container, check=True)
        assert exec_.wait(timeout=20) == 0
    assert pyrunc.state(pyrunc_container)["status"] == "running"
    assert not frozen()
    wait_until(lambda: proc_status(pid)["State"].startswith("S"), "the thawed sleep to sleep")
    assert pyrunc("resume", pyrunc_container).returncode == 1


def test_kill_all_reaches_a_paused_container(pyrunc: Runtime, pyrunc_container: str) -> None:
    pid = init_pid(pyrunc, pyrunc_container)
    pyrunc("pause", pyrunc_container, check=True)
    pyrunc("kill", "--all", pyrunc_container, "KILL", check=True)
    wait_until(lambda: is_gone(pid), "the frozen init to die")
    assert pyrunc.state(pyrunc_container)["status"] == "stopped"


def test_delete_force_of_a_paused_container(pyrunc: Runtime, bundle: Path) -> None:
    container_id = new_id()
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    pid = init_pid(pyrunc, container_id)
    pyrunc("pause", container_id, check=True)
    refused = pyrunc("delete", container_id)
    assert refused.returncode == 1
    assert "paused" in refused.stderr
    pyrunc("delete", "--force", container_id, check=True)
    assert is_gone(pid)
    assert_nothing_left(pyrunc, container_id, bundle)


# --- hooks ------------------------------------------------------------------------------

HOOK_POINTS = ("prestart", "createRuntime", "poststart", "poststop")


def test_hooks_get_the_state_on_stdin(pyrunc: Runtime, bundle: Path, tmp_path: Path) -> None:
    hook = tmp_path / "hook.sh"
    hook.write_text('#!/bin/sh\ncat > "$1"\n')
    hook.chmod(0o755)
    out = tmp_path / "hooks"
    out.mkdir()

    def change(config: dict[str, Any]) -> None:
        config["hooks"] = {point: [{"path": str(hook), "args": ["hook.sh", str(out / point)]}]
                           for point in HOOK_POINTS}

    edit_config(bundle, change)
    container_id = new_id()

    def seen(point: str) -> dict[str, Any]:
        assert (out / point).exists(), f"{point} hook did not run"
        state: dict[str, Any] = json.loads((out / point).read_text())
        return state

    pyrunc.run_detached("create", "--bundle", str(bundle), container_id)
    try:
        pid = init_pid(pyrunc, container_id)
        assert sorted(os.listdir(out)) == ["createRuntime", "prestart"]
        for point in ("prestart", "createRuntime"):
            state = seen(point)
            assert (state["id"], state["pid"], state["status"], state["bundle"]) == (
                container_id, pid, "created", str(bundle))
        pyrunc("start", container_id, check=True)
        state = seen("poststart")
        assert (state["id"], state["pid"], state["status"]) == (container_id, pid, "running")
        assert not (out / "poststop").exists()
    finally:
        pyrunc("delete", "--force", container_id, check=True)
    state = seen("poststop")
    assert (state["id"], state["status"], state["bundle"]) == (container_id, "stopped",
                                                               str(bundle))


@pytest.mark.parametrize("point", ["prestart", "createRuntime", "createContainer",
                                   "startContainer"])
def test_a_failing_hook_is_named_as_runc_names_it(pyrunc: Runtime, bundle: Path,
                                                  point: str) -> None:
    """runc v1.5.1 hooks.bats: the second of two hooks fails; run fails with
    "error running <point> hook #1:" and leaves nothing, and the process never runs."""
    def change(config: dict[str, Any]) -> None:
        config["process"]["args"] = ["/bin/echo", "Hello World"]
        config["hooks"] = {point: [{"path": "/bin/true"}, {"path": "/bin/false"}]}

    edit_config(bundle, change)
    container_id = new_id()
    result = pyrunc("run", "--bundle", str(bundle), container_id, stdin=subprocess.DEVNULL)
    assert result.returncode != 0 and "Hello World" not in result.stdout
    assert f"error running {point} hook #1: /bin/false exited with status 1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert_nothing_left(pyrunc, container_id, bundle)


def _imports_of(rt: Runtime, *args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", rt.binary, "--root",
                           str(rt.root), *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return imported_modules(done.stderr)


def test_start_and_delete_import_hooks_only_for_a_bundle_with_hooks(
        pyrunc: Runtime, bundle: Path, tmp_path: Path) -> None:
    """start and delete run for every container; hooks (and what running one
    needs) is loaded only when the bundle has a hook for that point."""
    container_id = new_id()
    pyrunc.run_detached("create", "--bundle", str(bundle), container_id)
    try:
        started = _imports_of(pyrunc, "start", container_id)
        assert "runpy_exec.lifecycle" in started and "runpy_exec.hooks" not in started
        pyrunc("kill", container_id, "KILL", check=True)
        wait_until(lambda: pyrunc.state(container_id)["status"] == "stopped", "the init's end")
        deleted = _imports_of(pyrunc, "delete", container_id)
        assert "runpy_exec.lifecycle" in deleted and "runpy_exec.hooks" not in deleted
    finally:
        pyrunc("delete", "--force", container_id)
    marker = tmp_path / "poststop"
    edit_config(bundle, lambda c: c.update(hooks={"poststop": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {marker}"]}]}))
    container_id = new_id()
    pyrunc.run_detached("create", "--bundle", str(bundle), container_id)
    assert "runpy_exec.hooks" in _imports_of(pyrunc, "delete", "--force", container_id)
    assert json.loads(marker.read_text())["id"] == container_id


def test_a_create_killed_midway_leaves_no_process(pyrunc: Runtime, bundle: Path,
                                                  tmp_path: Path) -> None:
    """If create dies (SIGKILL) before the init is ready, the init must not wait for
    it forever: its end of the pipes is an EOF, and it exits."""
    hook = tmp_path / "kill-parent.sh"
    hook.write_text("#!/bin/sh\nkill -9 $PPID\n")
    hook.chmod(0o755)
    edit_config(bundle, lambda c: c.update(hooks={"createRuntime": [{"path": str(hook)}]}))
    container_id = f"k{uuid.uuid4().hex[:10]}"
    done = pyrunc("create", "--bundle", str(bundle), container_id, stdin=subprocess.DEVNULL)
    assert done.returncode == -signal.SIGKILL
    paths = cgroups.resolve_paths(None, container_id)
    procs = Path(paths.get("pids") or paths[cgroups.UNIFIED]) / "cgroup.procs"
    deadline = time.monotonic() + 5
    while procs.exists() and procs.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not procs.exists() or procs.read_text().split() == []
    assert pyrunc("delete", "--force", container_id).returncode == 0
    assert not procs.parent.exists()
