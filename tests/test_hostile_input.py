"""Files that are no files and numbers no kernel takes: one-line errors, at once.

A ``--process`` file or config.json that is ``/dev/zero``, ``/dev/urandom``, a
FIFO without a writer, a directory, a symlink loop or larger than 16 MiB is
refused before it is read whole (runc refuses ``/dev/zero`` at once too); a
10 MB file of JSON garbage is read and refused as bad JSON.  Every numeric
flag and field is checked against the range its kernel or Go type has
(fds are C ints, durations int64 nanoseconds, ids uint32), so a huge or
negative number names the flag or field instead of ending in an internal
error.  exec's own errors exit 255, the other commands' 1.

Each command runs under a 1 GiB address-space limit and a timeout: reading
or allocating without bound shows up as a failure, never as a host's
memory gone.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Runtime
from tests.exec_support import cgroup_pids
from tests.test_lifecycle import assert_nothing_left, new_id

pytestmark = pytest.mark.root

MEMORY_CAP = 1 << 30
BIG = "9" * 30
HUGE_JSON_INT = "9" * 5000


def capped(rt: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    return subprocess.run([rt.binary, "--root", str(rt.root), *args], text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
                          preexec_fn=limit)


def assert_refused(done: subprocess.CompletedProcess[str], status: int, *needles: str) -> None:
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert done.returncode == status, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def special_file(kind: str, directory: Path) -> str:
    """A path that is not a small regular file."""
    if kind in ("/dev/zero", "/dev/urandom"):
        return kind
    path = directory / kind.replace(" ", "-")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink loop":
        path.symlink_to(path)
    elif kind == "17 MiB":
        path.write_bytes(b" " * (17 << 20))
    return str(path)


SPECIAL = ["/dev/zero", "/dev/urandom", "fifo", "directory", "symlink loop", "17 MiB"]


@pytest.mark.parametrize("kind", SPECIAL)
def test_exec_process_file_that_is_no_small_file(rt: Runtime, ctr: str, init: int,
                                                 tmp_path: Path, kind: str) -> None:
    path = special_file(kind, tmp_path)
    assert_refused(capped(rt, "exec", "-p", path, ctr), 255, path)
    assert cgroup_pids(init) == {init}


@pytest.mark.parametrize("kind", SPECIAL)
def test_create_config_that_is_no_small_file(pyrunc: Runtime, tmp_path: Path,
                                             kind: str) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    target = special_file(kind, tmp_path)
    if kind == "symlink loop":
        (bundle / "config.json").symlink_to(bundle / "config.json")
    else:
        (bundle / "config.json").symlink_to(target)
    container_id = new_id()
    assert_refused(capped(pyrunc, "create", "--bundle", str(bundle), container_id), 1,
                   "config.json")
    assert_nothing_left(pyrunc, container_id)


def test_ten_megabytes_of_json_garbage_is_a_json_error(rt: Runtime, ctr: str,
                                                       tmp_path: Path) -> None:
    garbage = tmp_path / "process.json"
    garbage.write_text('{"args": [' + '"x",' * (10 * 1024 * 1024 // 4) + "}")
    assert_refused(capped(rt, "exec", "-p", str(garbage), ctr), 255, "invalid JSON")


def test_process_from_a_pipe_is_still_read(rt: Runtime, ctr: str) -> None:
    """runc reads ``-p /dev/stdin``; so does pyrunc (pipes are bounded like files)."""
    process = {"args": ["echo", "from-a-pipe"], "cwd": "/", "user": {"uid": 0, "gid": 0},
               "env": ["PATH=/bin:/usr/bin"]}
    done = subprocess.run([rt.binary, "--root", str(rt.root), "exec", "-p", "/dev/stdin", ctr],
                          input=json.dumps(process), capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "from-a-pipe\n", "")


EXEC_FLAGS = [
    (["--preserve-fds", BIG], "--preserve-fds"),
    (["--preserve-fds", "-1"], "--preserve-fds"),
    (["--preserve-fds", "2147483647"], "--preserve-fds"),
    (["--pass-fd", "99999999999:3"], "--pass-fd"),
    (["--pass-fd", "0:2147483648"], "--pass-fd"),
    (["--pass-fd", "0:2147483647"], "--pass-fd"),
    (["--pass-fd", "-1:3"], "--pass-fd"),
    (["--exec-fd", "-1"], "--exec-fd"),
    (["--exec-fd", BIG], "--exec-fd"),
    (["--timeout", "999999999999999999999h"], "duration"),
    (["--timeout", "1" + "0" * 30], "duration"),
    (["--timeout", "9" * 400], "duration"),
    (["--timeout", "-5s"], "duration"),
    (["-d", "--timeout", "1" + "0" * 30], "duration"),
    (["-u", HUGE_JSON_INT], "uid"),
    (["-u", "0:-1"], "gid"),
    (["-g", BIG], "gid"),
]


@pytest.mark.parametrize(("flags", "needle"), EXEC_FLAGS,
                         ids=[" ".join(f)[:40] for f, _ in EXEC_FLAGS])
def test_exec_number_out_of_range_names_the_flag(rt: Runtime, ctr: str, init: int,
                                                 flags: list[str], needle: str) -> None:
    assert_refused(capped(rt, "exec", *flags, ctr, "sleep", "7"), 255, needle)
    assert cgroup_pids(init) == {init}


def test_kill_with_a_huge_signal_number(rt: Runtime, ctr: str) -> None:
    assert_refused(capped(rt, "kill", ctr, HUGE_JSON_INT), 1, "unknown signal")
    assert rt.state(ctr)["status"] == "running"


@pytest.mark.parametrize("flags", [["--preserve-fds", BIG], ["--preserve-fds", "-3"],
                                   ["--preserve-fds", "99999999"]])
def test_create_preserve_fds_out_of_range(pyrunc: Runtime, bundle: Path,
                                          flags: list[str]) -> None:
    container_id = new_id()
    assert_refused(capped(pyrunc, "create", *flags, "--bundle", str(bundle), container_id), 1,
                   "--preserve-fds")
    assert_nothing_left(pyrunc, container_id)


@pytest.mark.parametrize("field", ["user.uid", "user.gid", "user.additionalGids",
                                   "rlimits.hard", "consoleSize.width", "oomScoreAdj"])
@pytest.mark.parametrize("number", [HUGE_JSON_INT, "-" + BIG, str(2**64)])
def test_process_json_number_out_of_range_names_the_field(
        rt: Runtime, ctr: str, init: int, tmp_path: Path, field: str, number: str) -> None:
    process = {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
               "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}],
               "consoleSize": {"height": 1, "width": 1}, "oomScoreAdj": 0}
    head, _, tail = field.partition(".")
    marker = -424242
    if head == "rlimits":
        process["rlimits"][0][tail] = marker  # type: ignore[index]
    elif tail == "additionalGids":
        process["user"]["additionalGids"] = [marker]  # type: ignore[index]
    elif tail:
        process[head][tail] = marker  # type: ignore[index]
    else:
        process[head] = marker
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process).replace(str(marker), number))
    expected = "digits" if number == HUGE_JSON_INT else tail or head
    assert_refused(capped(rt, "exec", "-p", str(path), ctr), 255, str(path), expected)
    assert cgroup_pids(init) == {init}


@pytest.mark.parametrize("field", ["linux.resources.pids.limit", "process.user.uid",
                                   "linux.resources.memory.limit"])
@pytest.mark.parametrize("number", [HUGE_JSON_INT, "-" + "9" * 25, str(2**64)])
def test_config_number_out_of_range_names_the_field(
        pyrunc: Runtime, bundle: Path, field: str, number: str) -> None:
    config = json.loads((bundle / "config.json").read_text())
    node = config
    *parents, last = field.split(".")
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = -424242
    (bundle / "config.json").write_text(json.dumps(config).replace("-424242", number))
    container_id = new_id()
    expected = "digits" if number == HUGE_JSON_INT else field
    assert_refused(capped(pyrunc, "create", "--bundle", str(bundle), container_id), 1,
                   "config.json", expected)
    assert_nothing_left(pyrunc, container_id)


def test_a_closed_stdout_is_one_line_not_a_traceback(pyrunc: Runtime,
                                                      pyrunc_container: str) -> None:
    """With fd 1 closed from the start Python has no sys.stdout at all: a command
    that prints fails in runc's one line, one that prints nothing works."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([pyrunc.binary, "--root", str(pyrunc.root), *args], text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
                              preexec_fn=lambda: os.close(1))

    for printing in (["list"], ["state", pyrunc_container], ["features"]):
        assert_refused(run(*printing), 1, "write /dev/stdout: bad file descriptor")
    for quiet in (["pause", pyrunc_container], ["resume", pyrunc_container]):
        done = run(*quiet)
        assert done.returncode == 0 and done.stderr == "", (quiet, done.stderr)
    assert pyrunc.state(pyrunc_container)["status"] == "running"
