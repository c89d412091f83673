"""The fast exec parser must agree with the Typer app, which stays the reference."""

from __future__ import annotations

import sys
import types
from typing import Any

import click
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

import runpy_exec
from runpy_exec import cli, execargs
from runpy_exec.requests import ExecRequest, GlobalOptions


def _kind(param: click.Option) -> str:
    if param.is_flag:
        return execargs.FLAG
    if param.multiple:
        return execargs.MULTI
    if isinstance(param.type, click.types.IntParamType):
        return execargs.INT
    return execargs.VALUE


def _click_table(command: click.Command, skip: set[str]) -> dict[str, tuple[str, str]]:
    table: dict[str, tuple[str, str]] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in skip:
            continue
        assert param.name is not None
        assert not param.secondary_opts, f"{param.opts}: a --no- form the fast parser lacks"
        for opt in param.opts:
            table[opt] = (param.name, _kind(param))
    return table


def _group() -> click.Group:
    group = typer.main.get_command(cli.app)
    assert isinstance(group, click.Group)
    return group


def test_exec_flag_table_matches_the_typer_command() -> None:
    exec_command = _group().commands["exec"]
    assert _click_table(exec_command, skip=set()) == execargs.EXEC_FLAGS


def test_global_flag_table_matches_the_typer_callback() -> None:
    # --version is left to Typer on purpose: it prints and exits.
    assert _click_table(_group(), skip={"version"}) == execargs.GLOBAL_FLAGS


def test_choices_match_the_typer_choices() -> None:
    by_name = {p.name: p for p in _group().params}
    for field, allowed in execargs.CHOICES.items():
        param_type = by_name[field].type
        assert isinstance(param_type, click.Choice)
        assert frozenset(param_type.choices) == allowed


def test_exec_flags_name_exec_request_fields() -> None:
    fields = set(ExecRequest._fields)
    assert {field for field, _ in execargs.EXEC_FLAGS.values()} <= fields
    assert {field for field, _ in execargs.GLOBAL_FLAGS.values()} <= set(
        GlobalOptions._fields
    )


def test_parsing_stops_at_the_container_id() -> None:
    parsed = execargs.parse(["exec", "-t", "c1", "ls", "-la", "--env", "X=1"])
    assert parsed == (GlobalOptions(), ExecRequest("c1", ("ls", "-la", "--env", "X=1"), tty=True))


def test_values_keep_commas_and_equals_and_repeat_in_order() -> None:
    argv = [
        "--root",
        "/r",
        "--debug",
        "exec",
        "-e",
        "A=1,2",
        "--env=B=x=y",
        "-g",
        "10",
        "--additional-gids",
        "20",
        "--preserve-fds=2",
        "--exec-fd",
        "5",
        "c1",
        "env",
    ]
    assert execargs.parse(argv) == (
        GlobalOptions(root="/r", debug=True),
        ExecRequest(
            "c1",
            ("env",),
            env=("A=1,2", "B=x=y"),
            additional_gids=("10", "20"),
            preserve_fds=2,
            exec_fd=5,
        ),
    )


def test_double_dash_ends_the_flags() -> None:
    assert execargs.parse(["exec", "--", "-weird-id", "true"]) == (
        GlobalOptions(),
        ExecRequest("-weird-id", ("true",)),
    )


def test_last_value_of_a_single_value_flag_wins() -> None:
    parsed = execargs.parse(["exec", "--cwd", "/a", "--cwd", "/b", "c1"])
    assert parsed is not None and parsed[1].cwd == "/b"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["list"],
        ["exec"],  # no container id: Typer reports it
        ["exec", "-t"],
        ["exec", "--cwd"],  # value missing
        ["exec", "-h"],
        ["-h", "exec", "c1"],
        ["exec", "--help", "c1"],
        ["-v", "exec", "c1"],
        ["exec", "--bogus", "c1"],
        ["exec", "-eFOO=1", "c1"],  # attached short value: click's spelling, Typer's job
        ["exec", "-e=FOO", "c1"],
        ["exec", "-td", "c1"],
        ["exec", "--tty=true", "c1"],
        ["exec", "--preserve-fds", "x", "c1"],
        ["exec", "--preserve-fds", "-1", "c1"],
        ["exec", "--preserve-fds", " 1", "c1"],
        ["exec", "--root", "/r", "c1"],  # a global flag after the subcommand
        ["--log-format", "xml", "exec", "c1"],
        ["--", "exec", "c1"],
        ["-cwd", "/", "exec", "c1"],
    ],
)
def test_unusual_command_lines_are_left_to_typer(argv: list[str]) -> None:
    assert execargs.parse(argv) is None


def test_subcommand_skips_known_global_flags() -> None:
    assert execargs.subcommand(["--root", "/r", "--debug", "exec", "-eX", "c1"]) == "exec"
    assert execargs.subcommand(["--log=/l", "list"]) == "list"
    assert execargs.subcommand(["--bogus", "exec"]) is None
    assert execargs.subcommand(["--root"]) is None


# --- property: both parsers agree ---------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=6,
)


@st.composite
def _flag(draw: st.DrawFn, table: execargs.Table) -> list[str]:
    name = draw(st.sampled_from(sorted(table)))
    field, kind = table[name]
    if kind == execargs.FLAG:
        return [name]
    if kind == execargs.INT:
        value = draw(st.integers(0, 10**6).map(str) | st.sampled_from(["0", "007"]))
    elif field in execargs.CHOICES:
        value = draw(st.sampled_from(sorted(execargs.CHOICES[field])))
    else:
        value = draw(_TEXT | st.sampled_from(["-", "--", "-h", "--help", "a,b", "K=V=W"]))
    if name.startswith("--") and draw(st.booleans()):
        return [f"{name}={value}"]
    return [name, value]


@st.composite
def _exec_argv(draw: st.DrawFn) -> list[str]:
    argv: list[str] = []
    for tokens in draw(st.lists(_flag(execargs.GLOBAL_FLAGS), max_size=4)):
        argv += tokens
    argv.append("exec")
    for tokens in draw(st.lists(_flag(execargs.EXEC_FLAGS), max_size=8)):
        argv += tokens
    if draw(st.booleans()):
        argv.append("--")
        argv.append(draw(_TEXT))
    else:
        argv.append(draw(_TEXT.filter(lambda s: not (len(s) > 1 and s.startswith("-")))))
    argv += draw(st.lists(_TEXT | st.sampled_from(["-la", "--env", "-h", "--"]), max_size=4))
    return argv


def _through_typer(argv: list[str]) -> tuple[int, list[tuple[Any, ...]]]:
    calls: list[tuple[Any, ...]] = []
    fake = types.ModuleType("runpy_exec.exec_cmd")

    def exec_(opts: GlobalOptions, req: ExecRequest) -> int:
        calls.append((opts, req))
        return 0

    fake.exec_ = exec_  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "runpy_exec.exec_cmd", fake)
        mp.setattr(runpy_exec, "exec_cmd", fake, raising=False)
        # --log values are random text: no file may be created for them.
        mp.setattr(runpy_exec.log, "configure", lambda opts: None)
        status = cli.run(argv)
    return status, calls


@settings(max_examples=300, deadline=None)
@given(_exec_argv())
def test_well_formed_exec_parses_the_same_both_ways(argv: list[str]) -> None:
    fast = execargs.parse(argv)
    assert fast is not None, argv
    status, calls = _through_typer(argv)
    assert (status, calls) == (0, [fast])


_FUZZ_TOKENS = st.sampled_from(
    sorted(execargs.GLOBAL_FLAGS)
    + sorted(execargs.EXEC_FLAGS)
    + [
        "exec",
        "exec",
        "exec",
        "--",
        "-",
        "-h",
        "--help",
        "-v",
        "-x",
        "-td",
        "-eX",
        "--tty=1",
        "--cwd=",
        "--preserve-fds=01",
        "--preserve-fds=-2",
        "json",
        "text",
        "c1",
        "ls",
        "3",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FUZZ_TOKENS | _TEXT, max_size=10))
def test_whatever_the_fast_parser_accepts_typer_reads_the_same(argv: list[str]) -> None:
    fast = execargs.parse(argv)
    if fast is None:
        return
    status, calls = _through_typer(argv)
    assert (status, calls) == (0, [fast])


# --- attach: the other command a person waits for ----------------------------------------


def test_attach_flag_table_matches_the_typer_command() -> None:
    assert _click_table(_group().commands["attach"], skip=set()) == execargs.ATTACH_FLAGS


def _attach_through_typer(argv: list[str]) -> list[tuple[Any, ...]]:
    from runpy_exec.sessions import client

    calls: list[tuple[Any, ...]] = []

    def attach(root: str, container_id: str, name: str, keys: str, replay: bool) -> int:
        calls.append((root, container_id, name, keys, replay))
        return 0

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(client, "attach", attach)
        mp.setattr(runpy_exec.log, "configure", lambda opts: None)
        assert cli.run(argv) == 0
    return calls


@pytest.mark.parametrize("argv", [
    ["attach", "c1", "s1"],
    ["--root", "/r", "attach", "--no-replay", "c1", "s1"],
    ["attach", "--detach-keys", "ctrl-a,d", "c1", "s1"],
    ["attach", "--detach-keys=x", "--no-replay", "--", "-c", "s1"],
])
def test_attach_parses_the_same_both_ways(argv: list[str]) -> None:
    fast = execargs.parse_attach(argv)
    assert fast is not None
    opts, container_id, name, keys, replay = fast
    assert _attach_through_typer(argv) == [(opts.root, container_id, name, keys, replay)]


@pytest.mark.parametrize("argv", [
    ["attach"], ["attach", "c1"], ["attach", "c1", "s1", "extra"], ["attach", "-h", "c1", "s1"],
    ["attach", "--no-replay=1", "c1", "s1"], ["attach", "--detach-keys"], ["exec", "c1", "s1"],
])
def test_unusual_attach_lines_are_left_to_typer(argv: list[str]) -> None:
    assert execargs.parse_attach(argv) is None
