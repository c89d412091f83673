"""A broken container directory never strands its id nor hides the other containers.

What a killed create or a corrupted ``state.json`` leaves is still a
container to pyrunc: ``state`` and ``exec`` say what is wrong in one line
(never "does not exist" while the id is taken), ``list`` shows every healthy
container beside it, and ``delete --force`` removes the directory, the
cgroups and any process left, after which the id can be created again.
(runc 1.1.5 skips a broken container in ``list`` with a warning, and its
``delete -f`` removes a directory without state.json but fails on an empty
one.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Runtime
from tests.test_bad_input import assert_one_line_error, call
from tests.test_lifecycle import assert_nothing_left, init_pid, is_gone, new_id

pytestmark = pytest.mark.root


@pytest.fixture
def healthy(pyrunc: Runtime, bundle: Path) -> Iterator[str]:
    """A running container that must stay listed, whatever its neighbour's state."""
    container_id = new_id()
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    try:
        yield container_id
    finally:
        pyrunc("delete", "--force", container_id)


def _truncated(text: str) -> str:
    return text[: len(text) // 2]


def _replace(value: object) -> Callable[[str], str]:
    return lambda _text: json.dumps(value)


def _retype(field: str, value: object) -> Callable[[str], str]:
    def change(text: str) -> str:
        record = json.loads(text)
        record[field] = value
        return json.dumps(record)
    return change


CORRUPTIONS: dict[str, Callable[[str], str]] = {
    "empty object": _replace({}),
    "array": _replace([]),
    "null": _replace(None),
    "id is a number": _replace({"id": 5}),
    "empty file": lambda _text: "",
    "truncated": _truncated,
    "init_pid a string": _retype("init_pid", "12"),
    "init_pid a bool": _retype("init_pid", True),
    "init_pid huge": _retype("init_pid", 10**30),
    "cgroup_paths a list": _retype("cgroup_paths", ["/sys/fs/cgroup/pids"]),
    "namespace_paths of numbers": _retype("namespace_paths", {"pid": 1}),
    "config a string": _retype("config", "x"),
    "another container's id": _retype("id", "someone-else"),
    "not UTF-8": lambda _text: "\udcff",
    "deeply nested": lambda _text: "[" * 100_000,
}


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_broken_state_json_is_one_line_and_delete_force_removes_it(
        pyrunc: Runtime, bundle: Path, healthy: str, corruption: str) -> None:
    container_id = new_id()
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    pid = init_pid(pyrunc, container_id)
    state_file = pyrunc.root / container_id / "state.json"
    text = CORRUPTIONS[corruption](state_file.read_text())
    state_file.write_bytes(text.encode("utf-8", "surrogateescape"))

    listed = call(pyrunc, "list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[1:]}
    assert rows == {healthy: "running", container_id: "broken"}
    assert "Traceback" not in listed.stderr
    assert len(listed.stderr.strip().splitlines()) == 1, listed.stderr
    as_json = call(pyrunc, "list", "--format", "json")
    assert [c["id"] for c in json.loads(as_json.stdout)] == [healthy]
    assert call(pyrunc, "list", "-q").stdout.split() == [healthy]

    assert_one_line_error(call(pyrunc, "state", container_id), container_id, "delete --force")
    assert_one_line_error(call(pyrunc, "exec", container_id, "true"), container_id, status=255)
    assert_one_line_error(call(pyrunc, "delete", container_id), container_id, "delete --force")
    assert_one_line_error(call(pyrunc, "kill", container_id, "KILL"), container_id)

    deleted = call(pyrunc, "delete", "--force", container_id)
    assert (deleted.returncode, deleted.stderr) == (0, "")
    assert is_gone(pid)
    assert_nothing_left(pyrunc, container_id)
    assert pyrunc.state(healthy)["status"] == "running"
    if corruption not in ("empty file", "truncated", "empty object"):
        return
    # The id is free again.
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    assert pyrunc.state(container_id)["status"] == "running"
    pyrunc("delete", "--force", container_id, check=True)
    assert_nothing_left(pyrunc, container_id)


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory", "symlink loop"])
def test_state_json_that_is_no_file_is_refused_at_once(
        pyrunc: Runtime, bundle: Path, kind: str) -> None:
    container_id = new_id()
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    pid = init_pid(pyrunc, container_id)
    state_file = pyrunc.root / container_id / "state.json"
    state_file.unlink()
    if kind == "/dev/zero":
        state_file.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(state_file)
    elif kind == "directory":
        state_file.mkdir()
    else:
        state_file.symlink_to(state_file)
    assert_one_line_error(call(pyrunc, "state", container_id), container_id, "state.json")
    assert call(pyrunc, "list").returncode == 0
    deleted = call(pyrunc, "delete", "--force", container_id)
    assert (deleted.returncode, deleted.stderr) == (0, "")
    assert is_gone(pid)
    assert_nothing_left(pyrunc, container_id)


def test_directory_without_state_json_is_taken_until_delete_force(
        pyrunc: Runtime, bundle: Path) -> None:
    """What a create killed between its mkdir and its first record leaves."""
    container_id = new_id()
    (pyrunc.root / container_id).mkdir(parents=True)
    (pyrunc.root / container_id / f".state.json.{os.getpid()}.tmp").write_text("{")
    done = call(pyrunc, "state", container_id)
    assert_one_line_error(done, container_id, "no state.json", "delete --force")
    assert "does not exist" not in done.stderr
    assert_one_line_error(call(pyrunc, "create", "--bundle", str(bundle), container_id),
                          "already exists")
    listed = call(pyrunc, "list")
    assert listed.stdout.split()[6:9] == [container_id, "0", "broken"]
    deleted = call(pyrunc, "delete", "--force", container_id)
    assert (deleted.returncode, deleted.stderr) == (0, "")
    assert_nothing_left(pyrunc, container_id)
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    pyrunc("delete", "--force", container_id, check=True)


def test_creating_container_is_reported_as_creating_and_refuses_exec(
        pyrunc: Runtime, bundle: Path) -> None:
    """The record create writes before it has an init: "creating" while its
    create lives (here: this test's own process stands in for it), "stopped" after."""
    from runpy_exec.linux import proc

    container_id = new_id()
    record = {
        "pyrunc": 1, "id": container_id, "init_pid": 0, "init_start_time": 0,
        "bundle": str(bundle), "rootfs": str(bundle / "rootfs"), "created": "now",
        "creator_pid": os.getpid(), "creator_start_time": proc.start_time("self"),
    }
    (pyrunc.root / container_id).mkdir(parents=True)
    (pyrunc.root / container_id / "state.json").write_text(json.dumps(record))
    state = pyrunc.state(container_id)
    assert (state["status"], state["pid"]) == ("creating", 0)
    assert_one_line_error(call(pyrunc, "exec", container_id, "true"), "being created",
                          status=255)
    assert_one_line_error(call(pyrunc, "kill", container_id, "KILL"), "not running")
    assert_one_line_error(call(pyrunc, "start", container_id), "being created")
    assert_one_line_error(call(pyrunc, "delete", container_id), "being created")

    record["creator_pid"] = 999_999_999  # the create died
    (pyrunc.root / container_id / "state.json").write_text(json.dumps(record))
    assert pyrunc.state(container_id)["status"] == "stopped"
    pyrunc("delete", container_id, check=True)
    assert_nothing_left(pyrunc, container_id)


def test_a_new_file_is_written_whole_under_its_name_with_no_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pid file (new, as engines name one per process) is linked from the
    unnamed temp file straight to its name: no rename, so no moment in which a
    killed pyrunc could leave a temp name behind (test_storms once found one)."""
    from runpy_exec import state

    def no_rename(*_args: object) -> None:
        raise AssertionError("a new file went through a temp name and a rename")

    monkeypatch.setattr(os, "rename", no_rename)
    state.write_pid_file(str(tmp_path / "exec.pid"), 4242)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exec.pid"]
    assert (tmp_path / "exec.pid").read_text() == "4242"
    assert oct((tmp_path / "exec.pid").stat().st_mode & 0o777) == oct(0o644)


def test_a_file_replaced_is_renamed_over_and_leaves_no_temp(tmp_path: Path) -> None:
    from runpy_exec import state

    target = tmp_path / "state.json"
    target.write_text("old")
    stale = tmp_path / f".state.json.{os.getpid()}.tmp"  # a dead pyrunc's with our pid
    stale.write_text("stale")
    state.atomic_write(str(target), b"new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
