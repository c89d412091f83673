"""Bad input: one line on stderr naming what was wrong, exit 1, and nothing left behind.

Every failure of ``create`` is checked for leftovers: no state directory
under --root, no process in a cgroup named after the container, no cgroup
directory, no mount on the host.  A failure must also leave an existing
container as it was.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime, edit_config, pyrunc_binary
from tests.exec_support import make_bundle
from tests.test_lifecycle import (
    assert_nothing_left,
    init_pid,
    is_gone,
    new_id,
    processes_in_cgroup_of,
)

pytestmark = pytest.mark.root

Config = dict[str, Any]


def call(rt: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``rt`` with its output in files: a container wrongly created inherits them, and
    pipes would keep us waiting for it."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        done = subprocess.run([rt.binary, "--root", str(rt.root), *args],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=30)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, out.read(), err.read())


def assert_one_line_error(done: Any, *needles: str, status: int = 1) -> None:
    """Exit ``status`` and a single stderr line that contains every needle."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == status, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])


# --- create with a bad bundle or bad flags ------------------------------------------------


@dataclass
class Case:
    """Spoils a fresh bundle; returns create's arguments and what stderr must name."""

    spoil: Callable[[Path, Path], tuple[list[str], list[str]]]


def _config(change: Callable[[Config], None], *needles: str) -> Case:
    def spoil(bundle: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
        edit_config(bundle, change)
        return ["--bundle", str(bundle)], list(needles)

    return Case(spoil)


def _set(path: str, value: Any) -> Callable[[Config], None]:
    def change(config: Config) -> None:
        *parents, last = path.split(".")
        target = config
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value

    return change


def _missing_bundle(bundle: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    return ["--bundle", str(tmp_path / "no-such-bundle")], [str(tmp_path / "no-such-bundle")]


def _missing_config(bundle: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    (bundle / "config.json").unlink()
    return ["--bundle", str(bundle)], ["config.json", "no such file"]


def _invalid_json(bundle: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2", "process": ')
    return ["--bundle", str(bundle)], ["config.json", "json"]


def _config_is_a_directory(bundle: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    (bundle / "config.json").unlink()
    (bundle / "config.json").mkdir()
    return ["--bundle", str(bundle)], ["config.json", "directory"]


def _console_socket(path: Callable[[Path], Path], *reason: str) -> Case:
    def spoil(bundle: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
        edit_config(bundle, _set("process.terminal", True))
        where = path(tmp_path)
        return ["--bundle", str(bundle), "--console-socket", str(where)], [str(where), *reason]

    return Case(spoil)


def _dead_socket(tmp_path: Path) -> Path:
    """A socket file whose listener has gone: connect() is refused."""
    path = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    return path


def _no_tty_without_socket(bundle: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    edit_config(bundle, _set("process.terminal", True))
    return ["--bundle", str(bundle)], ["console socket"]


def _pid_file_in_missing_dir(bundle: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    where = tmp_path / "no-such-dir" / "pid"
    return ["--bundle", str(bundle), "--pid-file", str(where)], [str(where)]


def _failing_hook(bundle: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    hook = tmp_path / "refuse.sh"
    hook.write_text("#!/bin/sh\necho 'no thanks' >&2\nexit 3\n")
    hook.chmod(0o755)
    edit_config(bundle, _set("hooks", {"prestart": [{"path": str(hook)}]}))
    return ["--bundle", str(bundle)], [str(hook), "prestart"]


def _append(key: str, item: Any) -> Callable[[Config], None]:
    def change(config: Config) -> None:
        *parents, last = key.split(".")
        target = config
        for name in parents:
            target = target[name]
        target[last] = [*target.get(last, []), item]

    return change


def _join_namespace(kind: str, path: str) -> Callable[[Config], None]:
    """The namespace of that type becomes a join of ``path`` (the spec may already list it)."""
    def change(config: Config) -> None:
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                         if ns["type"] != kind] + [{"type": kind, "path": path}]

    return change


def _drop_namespace(kind: str) -> Callable[[Config], None]:
    def change(config: Config) -> None:
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                         if ns["type"] != kind]

    return change


CREATE_CASES = {
    "missing bundle": Case(_missing_bundle),
    "missing config.json": Case(_missing_config),
    "invalid JSON": Case(_invalid_json),
    "config.json is a directory": Case(_config_is_a_directory),
    "uid of the wrong type": _config(_set("process.user.uid", "x"), "process.user.uid"),
    "no args": _config(_set("process.args", []), "process.args"),
    "relative cwd": _config(_set("process.cwd", "tmp"), "process.cwd"),
    "missing rootfs": _config(_set("root.path", "/nonexistent-rootfs"), "/nonexistent-rootfs"),
    "missing executable": _config(_set("process.args", ["/nonexistent-program"]),
                                  "/nonexistent-program"),
    "unknown rlimit": _config(
        _set("process.rlimits", [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]), "RLIMIT_FOO"),
    # Above the hard limit we run with, and CAP_SYS_RESOURCE is not ours to use.
    "rlimit above our hard limit": _config(
        _set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 2**30, "hard": 2**30}]),
        "rlimit"),
    "missing namespace path": _config(_join_namespace("cgroup", "/nonexistent-ns"),
                                      "/nonexistent-ns"),
    "namespace listed twice": _config(_append("linux.namespaces", {"type": "ipc"}),
                                      "ipc", "twice"),
    "hostname without a UTS namespace": _config(_drop_namespace("uts"), "hostname", "UTS"),
    "user namespace without mappings": _config(_append("linux.namespaces", {"type": "user"}),
                                               "mappings"),
    "bind mount of a missing source": _config(
        _append("mounts", {"destination": "/home", "type": "bind",
                           "source": "/nonexistent-source", "options": ["rbind"]}),
        "/nonexistent-source"),
    "cgroup value the kernel refuses": _config(
        _set("linux.resources", {"cpu": {"cpus": "1000-1001"}}), "cpuset.cpus"),
    "failing prestart hook": Case(_failing_hook),
    "terminal without a console socket": Case(_no_tty_without_socket),
    "console socket that does not exist": _console_socket(
        lambda tmp: tmp / "nonexistent.sock", "no such file"),
    "console socket nobody listens on": _console_socket(_dead_socket, "refused"),
    "pid file in a missing directory": Case(_pid_file_in_missing_dir),
}


# Those that fail once the init exists; ``run`` shares the checks before that with create.
LATE = ["missing executable", "rlimit above our hard limit", "hostname without a UTS namespace",
        "user namespace without mappings", "bind mount of a missing source",
        "cgroup value the kernel refuses", "failing prestart hook",
        "console socket nobody listens on", "pid file in a missing directory"]
BAD_CREATES = [(("create",), name) for name in CREATE_CASES] + [
    (("run", "-d"), name) for name in LATE]


@pytest.mark.parametrize(("command", "case"), BAD_CREATES,
                         ids=[f"{' '.join(c)}: {name}" for c, name in BAD_CREATES])
def test_bad_create_fails_cleanly(pyrunc: Runtime, bundle: Path, tmp_path: Path,
                                  command: tuple[str, ...], case: str) -> None:
    args, needles = CREATE_CASES[case].spoil(bundle, tmp_path)
    container_id = new_id()
    done = call(pyrunc, *command, *args, container_id)
    try:
        assert_one_line_error(done, *needles)
        assert_nothing_left(pyrunc, container_id, bundle)
    finally:
        pyrunc("delete", "--force", container_id)


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "..", ".", "x y"])
def test_invalid_id(pyrunc: Runtime, bundle: Path, bad_id: str) -> None:
    done = call(pyrunc, "create", "--bundle", str(bundle), bad_id)
    assert_one_line_error(done, bad_id, "id")
    assert not (pyrunc.root.parent / "x").exists()
    assert not pyrunc.root.exists() or list(pyrunc.root.iterdir()) == []


def test_root_that_is_a_file(bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "not-a-dir"
    root.write_text("")
    done = call(Runtime(pyrunc_binary(), root), "create", "--bundle", str(bundle), new_id())
    assert_one_line_error(done, str(root), "not a directory")


# --- commands on containers that are not there, or not in the right state ---------------------


@pytest.mark.parametrize("command", [["start"], ["state"], ["kill"], ["kill", "--all"],
                                     ["delete"], ["ps"], ["ps", "--format", "json"], ["pause"],
                                     ["resume"]])
def test_unknown_container(pyrunc: Runtime, command: list[str]) -> None:
    container_id = new_id()
    done = pyrunc(*command, container_id, timeout=30)
    assert_one_line_error(done, container_id, "does not exist")
    assert not (pyrunc.root / container_id).exists()


def test_exec_into_an_unknown_container(pyrunc: Runtime) -> None:
    container_id = new_id()
    done = pyrunc("exec", container_id, "true", timeout=30)
    assert_one_line_error(done, container_id, "does not exist", status=255)


@pytest.mark.parametrize("command", ["start", "state", "kill", "delete", "ps", "pause", "resume"])
def test_invalid_id_for_each_command(pyrunc: Runtime, command: str) -> None:
    done = pyrunc(command, "../x", timeout=30)
    assert_one_line_error(done, "../x")


class Existing:
    """A running container, and what it looked like before the test."""

    def __init__(self, rt: Runtime, bundle: Path) -> None:
        self.rt, self.bundle, self.id = rt, bundle, new_id()
        self.pid = 0
        self.record = b""

    def take_note(self) -> None:
        self.pid = init_pid(self.rt, self.id)
        self.record = (self.rt.root / self.id / "state.json").read_bytes()

    def assert_unchanged(self) -> None:
        assert not is_gone(self.pid)
        assert (self.rt.root / self.id / "state.json").read_bytes() == self.record
        assert processes_in_cgroup_of(self.id) == [self.pid]


@pytest.fixture(scope="module")
def existing(busybox_bundle_template: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Existing]:
    """One running container that every test here must leave as it found it."""
    bundle = make_bundle(busybox_bundle_template, tmp_path_factory.mktemp("bad-input-bundle"))
    ctr = Existing(Runtime(pyrunc_binary(), tmp_path_factory.mktemp("pyrunc-root")), bundle)
    ctr.rt.run_detached("run", "-d", "--bundle", str(bundle), ctr.id)
    try:
        ctr.take_note()
        yield ctr
    finally:
        ctr.rt("delete", "--force", ctr.id)


@pytest.mark.parametrize("command", [("create",), ("run", "-d")])
def test_id_already_in_use(existing: Existing, command: tuple[str, ...]) -> None:
    done = call(existing.rt, *command, "--bundle", str(existing.bundle), existing.id)
    assert_one_line_error(done, existing.id, "exists")
    existing.assert_unchanged()


def test_delete_of_a_running_container_without_force(existing: Existing) -> None:
    done = existing.rt("delete", existing.id, timeout=30)
    assert_one_line_error(done, existing.id, "running")
    existing.assert_unchanged()


@pytest.mark.parametrize("name", ["FOO", "SIGFOO", "999", "-1", "SIG", "KILL9"])
def test_unknown_signal(existing: Existing, name: str) -> None:
    done = existing.rt("kill", existing.id, name, timeout=30)
    assert_one_line_error(done, name, "signal")
    existing.assert_unchanged()


def test_start_of_a_running_container(existing: Existing) -> None:
    done = existing.rt("start", existing.id, timeout=30)
    assert_one_line_error(done, "running")
    existing.assert_unchanged()


def test_resume_of_a_running_container(existing: Existing) -> None:
    done = existing.rt("resume", existing.id, timeout=30)
    assert_one_line_error(done, existing.id, "not paused")
    existing.assert_unchanged()


def test_spec_into_a_missing_directory(pyrunc: Runtime, tmp_path: Path) -> None:
    where = tmp_path / "no-such-dir"
    done = pyrunc("spec", "--bundle", str(where), timeout=30)
    assert_one_line_error(done, str(where))
    assert not where.exists()
