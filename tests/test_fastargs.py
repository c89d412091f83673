"""The fast parser must agree with the Typer app, which stays the reference."""

from __future__ import annotations

import inspect
from typing import Any

import click
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

from runpy_exec import cli, fastargs, log
from runpy_exec.fastargs import COMMANDS
from runpy_exec.requests import CreateRequest, ExecRequest, GlobalOptions, UpdateRequest


def _kind(param: click.Option) -> str:
    if param.is_flag:
        return fastargs.FLAG
    if param.multiple:
        return fastargs.MULTI
    if isinstance(param.type, click.types.IntParamType):
        return fastargs.INT
    return fastargs.VALUE


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


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_flag_table_matches_the_typer_command(name: str) -> None:
    assert _click_table(_group().commands[name], skip=set()) == COMMANDS[name].flags


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_positionals_match_the_typer_command(name: str) -> None:
    """Required arguments, optional ones and a trailing list, in Typer's order."""
    arguments = [p for p in _group().commands[name].params if isinstance(p, click.Argument)]
    command = COMMANDS[name]
    required = [p for p in arguments if p.required]
    optional = [p for p in arguments if not p.required and p.nargs == 1]
    rest = [p for p in arguments if p.nargs == -1]
    assert len(required) == len(command.positionals)
    assert len(optional) == len(command.optional)
    assert len(rest) == (command.rest is not None)


def test_global_flag_table_matches_the_typer_callback() -> None:
    # --version is left to Typer on purpose: it prints and exits.
    assert _click_table(_group(), skip={"version"}) == fastargs.GLOBAL_FLAGS


def test_choices_match_the_typer_choices() -> None:
    params = [*_group().params]
    for command in _group().commands.values():
        params += command.params
    for field, allowed in fastargs.CHOICES.items():
        found = [p.type for p in params if p.name == field]
        assert found
        for param_type in found:
            assert isinstance(param_type, click.Choice)
            assert frozenset(param_type.choices) == allowed


def test_request_fields_are_what_the_tables_name() -> None:
    for name, request in (("exec", ExecRequest), ("create", CreateRequest),
                          ("update", UpdateRequest)):
        assert {field for field, _ in COMMANDS[name].flags.values()} <= set(request._fields)
    assert {field for field, _ in fastargs.GLOBAL_FLAGS.values()} <= set(GlobalOptions._fields)


def _fast(argv: list[str]) -> tuple[GlobalOptions, ExecRequest] | None:
    """The exec request the fast parser makes of argv, as the older tests below want it."""
    parsed = fastargs.parse(argv)
    if parsed is None:
        return None
    assert parsed.name == "exec"
    values = dict(parsed.values)
    return parsed.opts, ExecRequest(**values)  # type: ignore[arg-type]


def test_parsing_stops_at_the_container_id() -> None:
    parsed = _fast(["exec", "-t", "c1", "ls", "-la", "--env", "X=1"])
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
    assert _fast(argv) == (
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
    assert _fast(["exec", "--", "-weird-id", "true"]) == (
        GlobalOptions(),
        ExecRequest("-weird-id", ("true",)),
    )


def test_last_value_of_a_single_value_flag_wins() -> None:
    parsed = _fast(["exec", "--cwd", "/a", "--cwd", "/b", "c1"])
    assert parsed is not None and parsed[1].cwd == "/b"


@pytest.mark.parametrize(
    "argv",
    [
        [],
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
        ["exec", "--preserve-fds", "2147483648", "c1"],  # past a C int: Typer names the range
        ["exec", "--exec-fd=99999999999", "c1"],
        ["create", "--preserve-fds", "00000000001", "c1"],
        ["exec", "--root", "/r", "c1"],  # a global flag after the subcommand
        ["--log-format", "xml", "exec", "c1"],
        ["--", "exec", "c1"],
        ["-cwd", "/", "exec", "c1"],
        ["state"],  # no container id
        ["state", "c1", "c2"],  # one too many
        ["kill", "c1", "KILL", "extra"],
        ["list", "c1"],
        ["list", "--format", "xml"],
        ["delete", "-fa", "c1"],
        ["spec"],  # not a command engines call: Typer's
        ["checkpoint", "c1"],
        ["attach"],
        ["attach", "c1"],
        ["attach", "c1", "s1", "extra"],
        ["attach", "-h", "c1", "s1"],
        ["attach", "--no-replay=1", "c1", "s1"],
        ["attach", "--detach-keys"],
    ],
)
def test_unusual_command_lines_are_left_to_typer(argv: list[str]) -> None:
    assert fastargs.parse(argv) is None


def test_subcommand_skips_known_global_flags() -> None:
    assert fastargs.subcommand(["--root", "/r", "--debug", "exec", "-eX", "c1"]) == "exec"
    assert fastargs.subcommand(["--log=/l", "list"]) == "list"
    assert fastargs.subcommand(["--bogus", "exec"]) is None
    assert fastargs.subcommand(["--root"]) is None


# --- property: both parsers agree ---------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=6,
)


@st.composite
def _flag(draw: st.DrawFn, table: fastargs.Table) -> list[str]:
    name = draw(st.sampled_from(sorted(table)))
    field, kind = table[name]
    if kind == fastargs.FLAG:
        return [name]
    if kind == fastargs.INT:
        value = draw(st.integers(0, 10**6).map(str) | st.sampled_from(["0", "007"]))
    elif field in fastargs.CHOICES:
        value = draw(st.sampled_from(sorted(fastargs.CHOICES[field])))
    else:
        value = draw(_TEXT | st.sampled_from(["-", "--", "-h", "--help", "a,b", "K=V=W"]))
    if name.startswith("--") and draw(st.booleans()):
        return [f"{name}={value}"]
    return [name, value]


_POSITIONAL = _TEXT.filter(lambda s: not (len(s) > 1 and s.startswith("-")))


@st.composite
def _argv(draw: st.DrawFn, name: str) -> list[str]:
    """A well-formed call of ``name``: known flags, the arguments it takes, a tail if any."""
    command = COMMANDS[name]
    argv: list[str] = []
    for tokens in draw(st.lists(_flag(fastargs.GLOBAL_FLAGS), max_size=4)):
        argv += tokens
    argv.append(name)
    if command.flags:
        for tokens in draw(st.lists(_flag(command.flags), max_size=8)):
            argv += tokens
    arguments = [draw(_TEXT) for _ in command.positionals]
    arguments += [draw(_TEXT) for _ in command.optional[: draw(st.integers(0, 1))]]
    if command.rest is not None and arguments:
        arguments += draw(st.lists(_TEXT | st.sampled_from(["-la", "--env", "-h", "--"]),
                                   max_size=4))
    if draw(st.booleans()) or any(arg.startswith("-") and len(arg) > 1 for arg in arguments[:1]):
        argv.append("--")
    elif arguments:
        arguments[0] = draw(_POSITIONAL)
    return argv + arguments


def _recording(calls: list[tuple[str, dict[str, Any]]], name: str, function: Any) -> Any:
    """A stand-in for the command's function that records how it was called."""
    signature = inspect.signature(function)

    def record(*args: Any, **kwargs: Any) -> int:
        bound = signature.bind(*args, **kwargs)
        calls.append((name, dict(bound.arguments)))
        return 0

    return record


def _calls(argv: list[str], through_typer: bool) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    """Run argv through one parser with every command's function replaced by a recorder."""
    calls: list[tuple[str, dict[str, Any]]] = []
    with pytest.MonkeyPatch.context() as mp:
        for name, command in COMMANDS.items():
            module_name, _, function_name = command.run.partition(":")
            module = __import__(f"runpy_exec.{module_name}", fromlist=[function_name])
            mp.setattr(module, function_name,
                       _recording(calls, name, getattr(module, function_name)))
        # --log values are random text: no file may be created for them.
        mp.setattr(log, "configure", lambda opts: None)
        if through_typer:
            status = cli.run(argv)
        else:
            parsed = fastargs.parse(argv)
            assert parsed is not None, argv
            status = parsed.call()
    return status, calls


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(COMMANDS)).flatmap(_argv))
def test_well_formed_calls_parse_the_same_both_ways(argv: list[str]) -> None:
    fast = _calls(argv, through_typer=False)
    assert fast[1], argv
    assert _calls(argv, through_typer=True) == fast


@pytest.mark.parametrize("name", sorted(COMMANDS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_command_parses_the_same_both_ways(name: str, data: st.DataObject) -> None:
    argv = data.draw(_argv(name))
    fast = _calls(argv, through_typer=False)
    assert fast[1], argv
    assert _calls(argv, through_typer=True) == fast


_FUZZ_TOKENS = st.sampled_from(
    sorted(fastargs.GLOBAL_FLAGS)
    + sorted({flag for command in COMMANDS.values() for flag in command.flags})
    + sorted(COMMANDS)
    + [
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
        "table",
        "c1",
        "ls",
        "3",
        "KILL",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_FUZZ_TOKENS | _TEXT, max_size=10))
def test_whatever_the_fast_parser_accepts_typer_reads_the_same(argv: list[str]) -> None:
    if fastargs.parse(argv) is None:
        return
    assert _calls(argv, through_typer=True) == _calls(argv, through_typer=False)


# --- attach: not an engine's, but a person waits for it ---------------------------------


def _attach_calls(argv: list[str], through_typer: bool) -> list[tuple[Any, ...]]:
    """How ``client.attach`` is called, with attach_command's translation of the flags."""
    from runpy_exec.sessions import client

    calls: list[tuple[Any, ...]] = []

    def attach(root: str, container_id: str, name: str, keys: str, replay: bool) -> int:
        calls.append((root, container_id, name, keys, replay))
        return 0

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(client, "attach", attach)
        mp.setattr(log, "configure", lambda opts: None)
        if through_typer:
            assert cli.run(argv) == 0
        else:
            parsed = fastargs.parse(argv)
            assert parsed is not None and parsed.name == "attach"
            assert parsed.call() == 0
    return calls


@pytest.mark.parametrize(("argv", "expected"), [
    (["attach", "c1", "s1"], ("/run/pyrunc", "c1", "s1", "ctrl-p,ctrl-q", True)),
    (["--root", "/r", "attach", "--no-replay", "c1", "s1"],
     ("/r", "c1", "s1", "ctrl-p,ctrl-q", False)),
    (["attach", "--detach-keys", "ctrl-a,d", "c1", "s1"],
     ("/run/pyrunc", "c1", "s1", "ctrl-a,d", True)),
    (["attach", "--detach-keys=x", "--no-replay", "--", "-c", "s1"],
     ("/run/pyrunc", "-c", "s1", "x", False)),
])
def test_attach_parses_the_same_both_ways(argv: list[str], expected: tuple[Any, ...]) -> None:
    assert _attach_calls(argv, through_typer=False) == [expected]
    assert _attach_calls(argv, through_typer=True) == [expected]


def test_attach_failures_exit_apart_from_the_process_status() -> None:
    from runpy_exec.errors import PyruncError
    from runpy_exec.sessions import client

    def attach(*_args: Any) -> int:
        raise PyruncError("session 's1' not found in container 'c1'")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(client, "attach", attach)
        with pytest.raises(PyruncError) as caught:
            client.attach_command(GlobalOptions(), "c1", "s1", "ctrl-p,ctrl-q", False)
    assert caught.value.exit_code == client.ATTACH_ERROR
