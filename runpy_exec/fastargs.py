"""A stdlib-only parser for the commands engines call, one flag table per command.

containerd, podman and docker run ``exec``, ``create``, ``start``, ``state``,
``kill``, ``delete``... for every container and every probe; importing Typer
and click and building the command objects costs ~40 ms, several times the
work of most of these commands.  This parser handles exactly the plain,
well-formed spellings of the global flags and of each command in
:data:`COMMANDS`, and gives up (returns ``None``) on anything else, so that
the Typer app (``cli``) remains the single authority for help, errors and the
rarer spellings (``-eFOO``, ``-td``...).  tests/test_fastargs.py keeps every
table equal to the Typer command's parameters and checks that both parsers
call the same function with the same arguments on every input this one
accepts.  ``attach`` is here too: not an engine's, but a person waits for it.

Adding a command is one line in :data:`COMMANDS`: its flag table, its
positional arguments, and the function that runs it.
"""

from __future__ import annotations

from runpy_exec.requests import CreateRequest, ExecRequest, GlobalOptions, UpdateRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

VALUE = "value"  # takes one string
INT = "int"  # takes one decimal integer in 0..MAX_INT (an fd: a C int)
MAX_INT = 2**31 - 1
FLAG = "flag"  # boolean, takes nothing
MULTI = "multi"  # takes one string, may repeat, collected in order

Table = dict[str, tuple[str, str]]

# option spelling -> (field, kind)
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

CREATE_FLAGS: Table = {
    "--bundle": ("bundle", VALUE),
    "-b": ("bundle", VALUE),
    "--console-socket": ("console_socket", VALUE),
    "--pid-file": ("pid_file", VALUE),
    "--no-pivot": ("no_pivot", FLAG),
    "--no-new-keyring": ("no_new_keyring", FLAG),
    "--preserve-fds": ("preserve_fds", INT),
    "--pidfd-socket": ("pidfd_socket", VALUE),
}

RUN_FLAGS: Table = {
    **CREATE_FLAGS,
    "--detach": ("detach", FLAG),
    "-d": ("detach", FLAG),
    "--keep": ("keep", FLAG),
}

# update's limits are strings, each parsed by update.py as runc parses it: one
# --flag for each field of UpdateRequest after the container id and --resources.
UPDATE_FLAGS: Table = {
    "--resources": ("resources", VALUE),
    "-r": ("resources", VALUE),
    **{"--" + field.replace("_", "-"): (field, VALUE) for field in UpdateRequest._fields[2:]},
}

_FORMAT: Table = {"--format": ("fmt", VALUE), "-f": ("fmt", VALUE)}

# Values the Typer app restricts to a fixed set; anything else is its error to report.
CHOICES: dict[str, frozenset[str]] = {
    "log_format": frozenset({"text", "json"}),
    "fmt": frozenset({"table", "json"}),
}


class Command:
    """How one command is spelt and what runs it.

    ``run`` is ``"module:function"`` under ``runpy_exec``; it is called as
    ``function(opts, *values)``, the values of the fields named in ``args`` in
    that order, or ``function(opts, request, *values)`` when ``request`` names
    the request tuple the command's other fields go into (exactly as the
    Typer command calls it).  Values absent from the command line take
    ``defaults`` (flags: False, repeatable flags: empty), as the Typer
    command's defaults would give them.
    """

    __slots__ = ("flags", "positionals", "optional", "rest", "run", "args", "request",
                 "defaults")

    def __init__(self, run: str, flags: Table | None = None, positionals: tuple[str, ...] = (),
                 *, args: tuple[str, ...] = (), optional: tuple[str, ...] = (),
                 rest: str | None = None,
                 request: type[CreateRequest | ExecRequest | UpdateRequest] | None = None,
                 defaults: dict[str, object] | None = None) -> None:
        self.run = run
        self.args = args
        self.flags = flags or {}
        self.positionals = positionals  # required, in order
        self.optional = optional  # then these, each optional, in order
        self.rest = rest  # then every remaining argument, as a tuple
        self.request = request
        self.defaults = defaults or {}


_ID = ("container_id",)

COMMANDS: dict[str, Command] = {
    "exec": Command("exec_cmd:exec_", EXEC_FLAGS, _ID, rest="args", request=ExecRequest),
    "create": Command("create_cmd:create", CREATE_FLAGS, _ID, request=CreateRequest),
    "run": Command("create_cmd:run", RUN_FLAGS, _ID, request=CreateRequest,
                   args=("detach", "keep")),
    "start": Command("lifecycle:start", {}, _ID, args=_ID),
    "state": Command("lifecycle:state", {}, _ID, args=_ID),
    "kill": Command("lifecycle:kill", {"--all": ("all_processes", FLAG),
                                       "-a": ("all_processes", FLAG)}, _ID,
                    optional=("signal_name",), defaults={"signal_name": "SIGTERM"},
                    args=("container_id", "signal_name", "all_processes")),
    "delete": Command("lifecycle:delete", {"--force": ("force", FLAG), "-f": ("force", FLAG)},
                      _ID, args=("container_id", "force")),
    "list": Command("lifecycle:list_containers", {**_FORMAT, "--quiet": ("quiet", FLAG),
                                                  "-q": ("quiet", FLAG)},
                    defaults={"fmt": "table"}, args=("quiet", "fmt")),
    "ps": Command("lifecycle:ps", _FORMAT, _ID, rest="ps_args", defaults={"fmt": "table"},
                  args=("container_id", "fmt", "ps_args")),
    "pause": Command("lifecycle:pause", {}, _ID, args=_ID),
    "resume": Command("lifecycle:resume", {}, _ID, args=_ID),
    "update": Command("update:update_command", UPDATE_FLAGS, _ID, request=UpdateRequest),
    "features": Command("features:print_features"),
    # Not an engine's: a person waits for it to start.
    "attach": Command("sessions.client:attach_command", {"--detach-keys": ("detach_keys", VALUE),
                                                         "--no-replay": ("no_replay", FLAG)},
                      ("container_id", "name"), defaults={"detach_keys": "ctrl-p,ctrl-q"},
                      args=("container_id", "name", "detach_keys", "no_replay")),
}


class Parsed:
    """A well-formed command line: the global options, the command, its values."""

    __slots__ = ("opts", "name", "values")

    def __init__(self, opts: GlobalOptions, name: str, values: dict[str, object]) -> None:
        self.opts = opts
        self.name = name
        self.values = values

    def call(self) -> int:
        """Run the command; its exit status (a function returning None means 0)."""
        command = COMMANDS[self.name]
        module_name, _, function_name = command.run.partition(":")
        module = __import__(f"runpy_exec.{module_name}", fromlist=[function_name])
        function = getattr(module, function_name)
        values: dict[str, Any] = self.values
        args = [values[name] for name in command.args]
        if command.request is not None:
            fields = command.request._fields
            args.insert(0, command.request(**{k: v for k, v in values.items() if k in fields}))
        result = function(self.opts, *args)
        return result if isinstance(result, int) else 0


def parse(argv: Sequence[str]) -> Parsed | None:
    """The options of a well-formed command line, or ``None`` to defer to Typer."""
    global_values: dict[str, object] = {}
    pos = _parse_flags(argv, 0, GLOBAL_FLAGS, global_values, stop_at_dashdash=False)
    if pos is None or pos >= len(argv):
        return None
    command = COMMANDS.get(argv[pos])
    if command is None:
        return None
    name = argv[pos]
    values = _defaults(command)
    pos = _parse_flags(argv, pos + 1, command.flags, values, stop_at_dashdash=True)
    if pos is None:
        return None
    arguments = argv[pos:]
    if len(arguments) < len(command.positionals):
        return None
    fixed = len(command.positionals) + len(command.optional)
    if command.rest is None and len(arguments) > fixed:
        return None
    for field, value in zip((*command.positionals, *command.optional), arguments, strict=False):
        values[field] = value
    if command.rest is not None:
        values[command.rest] = tuple(arguments[fixed:])
    return Parsed(GlobalOptions(**global_values), name, values)  # type: ignore[arg-type]


def _defaults(command: Command) -> dict[str, object]:
    """Every field the Typer command would pass, at its default.

    For a command with a request tuple, only what is not in the request (whose
    own defaults apply).
    """
    values: dict[str, object] = {}
    fields = command.request._fields if command.request is not None else ()
    for field, kind in command.flags.values():
        if field in fields:
            continue
        values[field] = False if kind == FLAG else () if kind == MULTI else None
    values.update(command.defaults)
    return values


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
