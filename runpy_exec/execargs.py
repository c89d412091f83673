"""A stdlib-only parser for ``pyrunc [global flags] exec [flags] ID CMD...``.

Kubernetes runs ``exec`` for every exec probe, and importing Typer and click
costs ~75 ms, most of exec's whole budget.  This parser handles exactly the
plain, well-formed spellings of the global and exec flags and gives up
(returns ``None``) on anything else, so that the Typer app (``cli``) remains
the single authority for help, errors and the rarer spellings (``-eFOO``,
``-td``...).  tests/test_execargs.py keeps the tables below equal to the Typer
command's parameters and checks that both parsers agree on every input this
one accepts.

``attach`` (a person waits for it) gets the same treatment from
:func:`parse_attach`.
"""

from __future__ import annotations

from collections.abc import Sequence

from runpy_exec.requests import ExecRequest, GlobalOptions

VALUE = "value"  # takes one string
INT = "int"  # takes one decimal integer in 0..MAX_INT (an fd: a C int)
MAX_INT = 2**31 - 1
FLAG = "flag"  # boolean, takes nothing
MULTI = "multi"  # takes one string, may repeat, collected in order

Table = dict[str, tuple[str, str]]

# option spelling -> (dataclass field, kind)
GLOBAL_FLAGS: Table = {
    "--root": ("root", VALUE),
    "--log": ("log", VALUE),
    "--log-format": ("log_format", VALUE),
    "--debug": ("debug", FLAG),
    "--net-raw": ("net_raw", FLAG),
    "--systemd-cgroup": ("systemd_cgroup", FLAG),
}

EXEC_FLAGS: Table = {
    "--console-socket": ("console_socket", VALUE),
    "--pidfd-socket": ("pidfd_socket", VALUE),
    "--cwd": ("cwd", VALUE),
    "--env": ("env", MULTI),
    "-e": ("env", MULTI),
    "--tty": ("tty", FLAG),
    "-t": ("tty", FLAG),
    "--user": ("user", VALUE),
    "-u": ("user", VALUE),
    "--additional-gids": ("additional_gids", MULTI),
    "-g": ("additional_gids", MULTI),
    "--process": ("process_file", VALUE),
    "-p": ("process_file", VALUE),
    "--detach": ("detach", FLAG),
    "-d": ("detach", FLAG),
    "--pid-file": ("pid_file", VALUE),
    "--process-label": ("process_label", VALUE),
    "--apparmor": ("apparmor", VALUE),
    "--no-new-privs": ("no_new_privs", FLAG),
    "--cap": ("caps", MULTI),
    "-c": ("caps", MULTI),
    "--preserve-fds": ("preserve_fds", INT),
    "--cgroup": ("cgroups", MULTI),
    "--ignore-paused": ("ignore_paused", FLAG),
    "--internal-pid-file": ("internal_pid_file", VALUE),
    "--pass-fd": ("pass_fds", MULTI),
    "--exec-fd": ("exec_fd", INT),
    "--timeout": ("timeout", VALUE),
    "--session": ("session", VALUE),
    "--session-idle": ("session_idle", VALUE),
    "--size": ("size", VALUE),
}

# ``attach`` is interactive: a person waits for its start, so it skips Typer too.
ATTACH_FLAGS: Table = {
    "--detach-keys": ("detach_keys", VALUE),
    "--no-replay": ("no_replay", FLAG),
}

# Values the Typer app restricts to a fixed set; anything else is its error to report.
CHOICES: dict[str, frozenset[str]] = {"log_format": frozenset({"text", "json"})}


def parse(argv: Sequence[str]) -> tuple[GlobalOptions, ExecRequest] | None:
    """The options of a well-formed exec command line, or ``None`` to defer to Typer."""
    global_values: dict[str, object] = {}
    pos = _parse_flags(argv, 0, GLOBAL_FLAGS, global_values, stop_at_dashdash=False)
    if pos is None or pos >= len(argv) or argv[pos] != "exec":
        return None
    exec_values: dict[str, object] = {}
    pos = _parse_flags(argv, pos + 1, EXEC_FLAGS, exec_values, stop_at_dashdash=True)
    if pos is None or pos >= len(argv):
        return None
    opts = GlobalOptions(**global_values)  # type: ignore[arg-type]
    req = ExecRequest(
        container_id=argv[pos],
        args=tuple(argv[pos + 1 :]),
        **exec_values,  # type: ignore[arg-type]
    )
    return opts, req


def parse_attach(argv: Sequence[str]) -> tuple[GlobalOptions, str, str, str, bool] | None:
    """(options, container id, session, detach keys, replay?) of a plain ``attach``, or None."""
    global_values: dict[str, object] = {}
    pos = _parse_flags(argv, 0, GLOBAL_FLAGS, global_values, stop_at_dashdash=False)
    if pos is None or pos >= len(argv) or argv[pos] != "attach":
        return None
    values: dict[str, object] = {}
    pos = _parse_flags(argv, pos + 1, ATTACH_FLAGS, values, stop_at_dashdash=True)
    if pos is None or len(argv) - pos != 2:
        return None
    keys = values.get("detach_keys", "ctrl-p,ctrl-q")
    assert isinstance(keys, str)
    opts = GlobalOptions(**global_values)  # type: ignore[arg-type]
    return opts, argv[pos], argv[pos + 1], keys, not values.get("no_replay", False)


def subcommand(argv: Sequence[str]) -> str | None:
    """The subcommand name, when the global flags before it are ones we know.

    Errors are reported differently for exec (exit 255) than for the other
    commands, even when argv was too unusual for :func:`parse`.
    """
    pos = _parse_flags(argv, 0, GLOBAL_FLAGS, {}, stop_at_dashdash=False)
    if pos is None or pos >= len(argv):
        return None
    return argv[pos]


def _parse_flags(
    argv: Sequence[str],
    pos: int,
    table: Table,
    values: dict[str, object],
    *,
    stop_at_dashdash: bool,
) -> int | None:
    """Consume flags from ``argv[pos:]``; the index of the first positional, or ``None``.

    Like urfave/cli (and click with interspersed arguments off), parsing ends
    at the first argument that is not a flag: everything after the container
    id belongs to the command, however much it looks like a flag.
    """
    while pos < len(argv):
        arg = argv[pos]
        if arg == "--":
            return pos + 1 if stop_at_dashdash else None
        if len(arg) < 2 or not arg.startswith("-"):
            return pos
        name, has_value, attached = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        spec = table.get(name)
        if spec is None:
            return None
        field, kind = spec
        if kind == FLAG:
            if has_value:
                return None
            values[field] = True
            pos += 1
            continue
        if has_value:
            raw = attached
            pos += 1
        elif pos + 1 < len(argv):
            raw = argv[pos + 1]
            pos += 2
        else:
            return None
        if kind == INT:
            # Out of range is Typer's to report (it names the flag and the range).
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= MAX_INT):
                return None
            values[field] = int(raw)
        elif kind == MULTI:
            previous = values.get(field, ())
            assert isinstance(previous, tuple)
            values[field] = (*previous, raw)
        else:
            allowed = CHOICES.get(field)
            if allowed is not None and raw not in allowed:
                return None
            values[field] = raw
    return pos
