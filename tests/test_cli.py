"""The command line as callers see it: what reaches the orchestration, help, statuses.

The orchestration modules are replaced by fakes that record their calls, so
these tests pin the parsing and the error reporting; the lead's end-to-end
tests cover what the commands do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import runpy_exec
from runpy_exec import OCI_VERSION, __version__, entry, log
from runpy_exec.errors import PyruncError
from runpy_exec.requests import CreateRequest, ExecRequest, GlobalOptions

_API = {
    "spec_default": ["write_spec"],
    "create_cmd": ["create", "run"],
    "lifecycle": ["start", "state", "list_containers", "kill", "delete", "ps", "pause", "resume"],
    "exec_cmd": ["exec_"],
}


class Fakes:
    """Stand-ins for the orchestration modules; ``behave`` sets what a function does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.behaviour: dict[str, Callable[[], Any]] = {}

    def behave(self, name: str, action: Callable[[], Any]) -> None:
        self.behaviour[name] = action

    def function(self, name: str) -> Callable[..., Any]:
        def fake(*args: Any) -> Any:
            self.calls.append((name, args))
            action = self.behaviour.get(name)
            return action() if action else None

        return fake


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fakes]:
    recorder = Fakes()
    for module_name, functions in _API.items():
        module = types.ModuleType(f"runpy_exec.{module_name}")
        for function in functions:
            setattr(module, function, recorder.function(function))
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setattr(runpy_exec, module_name, module, raising=False)
    yield recorder
    log.reset()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = entry.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# --- what each command hands to the orchestration ------------------------------------


def test_spec(fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "spec")[0] == 0
    assert _run(capsys, "spec", "-b", "/b", "--rootless")[0] == 0
    assert fakes.calls == [("write_spec", (".", False)), ("write_spec", ("/b", True))]


def test_create_with_every_flag(fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, _ = _run(
        capsys, "--root", "/r", "--systemd-cgroup", "create", "--bundle", "/b", "--pid-file",
        "p", "--console-socket", "s", "--no-pivot", "--no-new-keyring", "--preserve-fds=2", "c1",
    )  # fmt: skip
    assert status == 0
    assert fakes.calls == [
        (
            "create",
            (
                GlobalOptions(root="/r", systemd_cgroup=True),
                CreateRequest("c1", "/b", "p", "s", no_pivot=True, no_new_keyring=True,
                              preserve_fds=2),
            ),
        )
    ]  # fmt: skip


def test_run_exits_with_the_container_status(
    fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    fakes.behave("run", lambda: 3)
    assert _run(capsys, "run", "-d", "--keep", "-b", "/b", "c1")[0] == 3
    assert fakes.calls == [("run", (GlobalOptions(), CreateRequest("c1", "/b"), True, True))]
    fakes.behave("run", lambda: 0)
    assert _run(capsys, "run", "c2")[0] == 0
    assert fakes.calls[-1] == ("run", (GlobalOptions(), CreateRequest("c2"), False, False))


@pytest.mark.parametrize("command", ["start", "state", "pause", "resume"])
def test_commands_taking_only_an_id(
    command: str, fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "--root", "/r", command, "c1")[0] == 0
    assert fakes.calls == [(command, (GlobalOptions(root="/r"), "c1"))]


def test_list(fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    _run(capsys, "list")
    _run(capsys, "list", "-q", "-f", "json")
    _run(capsys, "list", "--quiet", "--format=table")
    assert [args[1:] for _, args in fakes.calls] == [
        (False, "table"),
        (True, "json"),
        (True, "table"),
    ]


def test_kill(fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    _run(capsys, "kill", "c1")
    _run(capsys, "kill", "-a", "c1", "KILL")
    _run(capsys, "kill", "--all", "c1", "9")
    assert [args[1:] for _, args in fakes.calls] == [
        ("c1", "SIGTERM", False),
        ("c1", "KILL", True),
        ("c1", "9", True),
    ]


def test_delete(fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    _run(capsys, "delete", "c1")
    _run(capsys, "delete", "-f", "c2")
    assert [args[1:] for _, args in fakes.calls] == [("c1", False), ("c2", True)]


def test_ps_passes_what_follows_the_id_to_ps(
    fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "ps", "c1", "-ef")
    _run(capsys, "ps", "-f", "json", "c1")
    assert [args[1:] for _, args in fakes.calls] == [
        ("c1", "table", ("-ef",)),
        ("c1", "json", ()),
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["exec", "-t", "-e", "A=1,2", "c1", "ls", "-la"],  # the fast parser's
        ["exec", "-t", "-eA=1,2", "c1", "ls", "-la"],  # only click reads -eVALUE
    ],
)
def test_exec_status_is_the_process_status(
    argv: list[str], fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    fakes.behave("exec_", lambda: 42)
    assert _run(capsys, *argv)[0] == 42
    assert fakes.calls == [
        ("exec_", (GlobalOptions(), ExecRequest("c1", ("ls", "-la"), env=("A=1,2",), tty=True)))
    ]


def test_unsupported_runc_commands_refuse_plainly(
    fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, "checkpoint", "--image-path", "img", "c1")
    assert (status, out, err) == (1, "", "pyrunc does not support the checkpoint command\n")


# --- help and version ----------------------------------------------------------------


@pytest.mark.parametrize("argv", [["-h"], ["--help"], [], ["help"], ["h"]])
def test_main_help_layout(
    argv: list[str], fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, *argv)
    assert (status, err, fakes.calls) == (0, "", [])
    lines = [line for line in out.splitlines() if line]
    assert lines[:2] == ["NAME:", "   pyrunc - Open Container Initiative runtime"]
    for section in ("USAGE:", "VERSION:", "COMMANDS:", "GLOBAL OPTIONS:"):
        assert section in lines
    assert f"   {__version__}" in lines
    assert re.search(r"^   exec +execute new process inside the container$", out, re.M)
    assert re.search(r"^   --root value +.*\(default: \"/run/pyrunc\"\)$", out, re.M)
    assert re.search(r"^   --version, -v +", out, re.M)


_COMMANDS = ["spec", "create", "run", "start", "state", "list", "kill", "delete", "ps", "pause",
             "resume", "exec", "checkpoint", "restore", "events", "update", "features"]  # fmt: skip


@pytest.mark.parametrize("command", _COMMANDS)
def test_command_help_layout(
    command: str, fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, command, "-h")
    assert (status, err, fakes.calls) == (0, "", [])
    lines = [line for line in out.splitlines() if line]
    assert lines[0] == "NAME:"
    assert lines[1].startswith(f"   pyrunc {command} - ")
    assert lines[2] == "USAGE:"
    assert lines[3].startswith(f"   pyrunc {command} ")
    assert _run(capsys, command, "--help")[1] == out
    assert _run(capsys, "help", command)[1] == out
    assert _run(capsys, "h", command)[1] == out


def test_exec_help_lists_runc_and_runsc_flags(
    fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run(capsys, "exec", "-h")[1]
    assert out.splitlines()[1] == "   pyrunc exec - execute new process inside the container"
    for row in ("--env value, -e value", "--tty, -t", "--preserve-fds value", "--pass-fd value"):
        assert re.search(rf"^   {re.escape(row)}  ", out, re.M), row
    assert "(default: 0)" in out


@pytest.mark.parametrize("argv", [["foo", "-h"], ["foo"], ["help", "foo"]])
def test_unknown_command(argv: list[str], fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, *argv) == (3, "", "No help topic for 'foo'\n")


@pytest.mark.parametrize("flag", ["-v", "--version"])
def test_version(flag: str, fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, flag)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0] == f"pyrunc version {__version__}"
    assert re.fullmatch(r"commit: \S+", lines[1])
    assert lines[2] == f"spec: {OCI_VERSION}"


# --- errors and statuses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["kill"], 1, "pyrunc kill: Missing argument 'CONTAINER_ID'"),
        (["state"], 1, "pyrunc state: Missing argument"),
        (["state", "a", "b"], 1, "pyrunc state: Got unexpected extra argument (b)"),
        (["delete", "c1", "--force"], 1, "pyrunc delete: Got unexpected extra argument"),
        (["list", "--bogus"], 1, "pyrunc list: No such option '--bogus'"),
        (["list", "-f", "xml"], 1, "pyrunc list: Invalid value for '--format'"),
        (["--bogus", "list"], 1, "pyrunc: No such option '--bogus'"),
        (["--log-format", "xml", "list"], 1, "pyrunc: Invalid value for '--log-format'"),
        (["exec"], 255, "pyrunc exec: Missing argument 'CONTAINER_ID'"),
        (["exec", "--bogus", "c1", "ls"], 255, "pyrunc exec: No such option '--bogus'"),
        (["exec", "--preserve-fds=x", "c1", "ls"], 255, "pyrunc exec: Invalid value"),
    ],
)
def test_usage_errors_are_one_line_on_stderr(
    argv: list[str], status: int, message: str, fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    got_status, out, err = _run(capsys, *argv)
    assert (got_status, out, fakes.calls) == (status, "", [])
    assert err.startswith(message)
    assert err.endswith("--help'\n") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "function"), [(["state", "c1"], "state"), (["exec", "c1", "true"], "exec_")]
)
def test_pyrunc_error_is_its_message_and_status(
    argv: list[str], function: str, fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail() -> None:
        raise PyruncError("container c1 does not exist\n(really)", 7)

    fakes.behave(function, fail)
    assert _run(capsys, *argv) == (7, "", "container c1 does not exist (really)\n")


@pytest.mark.parametrize("argv", [["state", "c1"], ["exec", "c1", "true"]])
def test_pyrunc_error_is_logged_once_to_the_json_log(
    argv: list[str], fakes: Fakes, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def fail() -> None:
        raise PyruncError("no such container", 255)

    fakes.behave("state", fail)
    fakes.behave("exec_", fail)
    log_file = tmp_path / "log.json"
    status, _, err = _run(capsys, "--log", str(log_file), "--log-format", "json", *argv)
    assert (status, err) == (255, "no such container\n")
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(r["level"], r["msg"]) for r in records] == [("error", "no such container")]


def test_usage_error_is_logged_in_text_format(
    fakes: Fakes, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log_file = tmp_path / "log.txt"
    assert _run(capsys, "--log", str(log_file), "kill")[0] == 1
    assert re.fullmatch(
        r'time="[^"]+" level=error msg="pyrunc kill: Missing argument .*"\n', log_file.read_text()
    )


def test_unwritable_log_file_is_reported(fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "--log", "/nonexistent/dir/log", "list")
    assert (status, out, fakes.calls) == (1, "", [])
    assert err == "cannot open log file /nonexistent/dir/log: No such file or directory\n"


@pytest.mark.parametrize(
    ("argv", "function", "status"),
    [
        (["list"], "list_containers", 1),
        (["exec", "c1", "true"], "exec_", 255),  # fast parser
        (["exec", "-eX=1", "c1", "true"], "exec_", 255),  # Typer
    ],
)
def test_unexpected_exception_is_an_internal_error_line(
    argv: list[str], function: str, status: int, fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    def crash() -> None:
        raise RuntimeError("boom")

    fakes.behave(function, crash)
    assert _run(capsys, *argv) == (status, "", "pyrunc: internal error: RuntimeError: boom\n")
    status_debug, _, err = _run(capsys, "--debug", *argv)
    assert status_debug == status
    assert "Traceback (most recent call last)" in err
    assert err.endswith("pyrunc: internal error: RuntimeError: boom\n")


@pytest.mark.parametrize(
    ("argv", "function"),
    [(["list"], "list_containers"), (["exec", "c1", "sleep", "9"], "exec_")],
)
def test_interrupt_exits_130(
    argv: list[str], function: str, fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    fakes.behave(function, interrupt)
    assert _run(capsys, *argv)[0] == 130


def test_system_exit_status_passes_through(
    fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    def leave() -> None:
        raise SystemExit(5)

    fakes.behave("exec_", leave)
    assert _run(capsys, "exec", "c1", "true")[0] == 5


# --- the hot path --------------------------------------------------------------------

_PROBE = """
import sys, types
import runpy_exec
fake = types.ModuleType("runpy_exec.exec_cmd")
fake.exec_ = lambda opts, req: 0 if req.args == ("true",) else 1
sys.modules["runpy_exec.exec_cmd"] = runpy_exec.exec_cmd = fake
from runpy_exec.entry import main
status = main(sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"typer", "click", "pydantic", "logging"})
print(status, heavy)
"""


def test_well_formed_exec_imports_neither_typer_nor_click() -> None:
    argv = ["--root", "/r", "--log-format", "json", "exec", "-t", "-e", "A=1", "c1", "true"]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.stdout == "0 []\n"


def test_console_script_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runpy_exec.entry", "--root", str(tmp_path), "-v"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout.splitlines()[0]) == (0, f"pyrunc version {__version__}")
