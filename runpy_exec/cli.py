"""The full command line: every subcommand, help text and usage error.

Callers (containerd, podman, CRI-O, runc's own test-suite) drive a runtime the
way they drive runc, so names, flags, the help layout and exit codes follow
runc 1.1.5 (urfave/cli): flags stop at the first positional argument, and
help prints ``NAME:`` / ``USAGE:`` / ... sections.  The text is pyrunc's own.

Every command only turns its arguments into a request and hands it to the
orchestration module, imported inside the function so that a command pays
only for what it uses.  ``entry`` bypasses this module entirely for a
well-formed call of the commands engines use (see ``fastargs``).
"""

from __future__ import annotations

import os
import subprocess
from typing import Annotated, Any

import click
import typer
from typer.core import TyperCommand, TyperGroup

from runpy_exec import OCI_VERSION, __version__, log
from runpy_exec.errors import PyruncError
from runpy_exec.requests import CreateRequest, ExecRequest, GlobalOptions, UpdateRequest

PROG = "pyrunc"
TAGLINE = "Open Container Initiative runtime"
EXEC_ERROR = 255  # exec's own failures must not look like the process's status
UNKNOWN_COMMAND = 3  # what runc exits with for a command it does not know

_DESCRIPTION = """\
pyrunc runs containers described by OCI bundles: a directory holding a
config.json (see "pyrunc spec") and the root filesystem it names.  It is a
drop-in for runc under containerd, CRI-O and podman, and is built around a
fast "exec", which Kubernetes runs for every exec probe.

A container's life: "pyrunc create ID" prepares it and leaves its process
waiting, "pyrunc start ID" lets the process run ("pyrunc run ID" does both),
"pyrunc exec ID CMD" adds processes, "pyrunc kill ID" signals it and
"pyrunc delete ID" removes what is left.  Container ids are chosen by the
caller and must be unique under --root."""

# What follows "pyrunc CMD" in each command's USAGE line.
_USAGE = {
    "spec": "[command options]",
    "create": "[command options] <container-id>",
    "start": "<container-id>",
    "run": "[command options] <container-id>",
    "state": "<container-id>",
    "list": "[command options]",
    "kill": "[command options] <container-id> [signal]",
    "delete": "[command options] <container-id>",
    "ps": "[command options] <container-id> [ps options]",
    "pause": "<container-id>",
    "resume": "<container-id>",
    "exec": "[command options] <container-id> <command> [args...]"
    "  ||  -p process.json <container-id>",
    "attach": "[command options] <container-id> <session>",
    "sessions": "[command options] <container-id>",
    "kill-session": "<container-id> <session> [signal]",
    "help": "[command]",
    "features": "",
    "update": "[command options] <container-id>",
    "events": "[command options] <container-id>",
}


class _UnknownCommand(click.UsageError):
    """runc's wording and status for an unknown command, which scripts match on."""

    exit_code = UNKNOWN_COMMAND

    def __init__(self, name: str, ctx: click.Context | None) -> None:
        super().__init__(f"No help topic for '{name}'", ctx)


class _Command(TyperCommand):
    # urfave/cli semantics: `exec ID ls -la` must hand `-la` to ls.
    allow_interspersed_args = False

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(_command_help(self, ctx))


class _FlagsAnywhere(_Command):
    # urfave/cli moves flags ahead of the arguments for every command but
    # exec: runc's tests (and scripts) write "update ID --memory 64M".
    allow_interspersed_args = True


class _Group(TyperGroup):
    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(_group_help(self, ctx))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        # runc accepts "h" for "help"; click has no aliases.
        return super().get_command(ctx, "help" if cmd_name == "h" else cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as err:
            raise _UnknownCommand(args[0], ctx) from err


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    help=_DESCRIPTION,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def global_options(
    ctx: typer.Context,
    root: Annotated[
        str,
        typer.Option("--root", help="directory holding the containers' state (best on a tmpfs)"),
    ] = "/run/pyrunc",
    log: Annotated[
        str | None,
        typer.Option("--log", help="append log records to this file instead of stderr"),
    ] = None,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            click_type=click.Choice(["text", "json"]),
            help="format of log records: 'text' or 'json'",
        ),
    ] = "text",
    debug: Annotated[bool, typer.Option("--debug", help="also log debug records")] = False,
    net_raw: Annotated[
        bool,
        typer.Option(
            "--net-raw",
            help="keep CAP_NET_RAW where the config grants it (dropped by default)",
        ),
    ] = False,
    systemd_cgroup: Annotated[
        bool,
        typer.Option(
            "--systemd-cgroup",
            help='let systemd manage cgroups; cgroupsPath is then "slice:prefix:name"',
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-v",
            callback=_show_version,
            is_eager=True,
            help="print the version and exit",
        ),
    ] = False,
) -> None:
    """Parse the global options once; every subcommand reads them from ``ctx.obj``."""
    opts = GlobalOptions(
        root=root,
        log=log,
        log_format=log_format,
        debug=debug,
        net_raw=net_raw,
        systemd_cgroup=systemd_cgroup,
    )
    _configure_logging(opts)
    ctx.obj = opts
    if ctx.invoked_subcommand is None:
        # A bare `pyrunc` is a request for orientation, not a mistake.
        typer.echo(ctx.get_help())


def _configure_logging(opts: GlobalOptions) -> None:
    # A function of its own because the --log parameter shadows the module.
    log.configure(opts)


def _opts(ctx: typer.Context) -> GlobalOptions:
    opts = ctx.obj
    assert isinstance(opts, GlobalOptions)
    return opts


_ContainerId = Annotated[str, typer.Argument(metavar="CONTAINER_ID", show_default=False)]
_Bundle = Annotated[
    str, typer.Option("--bundle", "-b", help="the bundle directory, holding config.json")
]
_PidFile = Annotated[
    str | None, typer.Option("--pid-file", help="write the process's pid to this file")
]
_ConsoleSocket = Annotated[
    str | None,
    typer.Option(
        "--console-socket",
        help="AF_UNIX socket to send the pseudoterminal's master fd to",
    ),
]
# fds are C ints: anything above INT32_MAX is refused here, with the flag's name.
_MAX_FD = 2**31 - 1
_PreserveFds = Annotated[
    int,
    typer.Option(
        "--preserve-fds",
        min=0,
        max=_MAX_FD,
        help="pass N more fds, from fd 3 (after any $LISTEN_FDS ones), to the process",
    ),
]
_PidfdSocket = Annotated[
    str | None,
    typer.Option(
        "--pidfd-socket",
        help="AF_UNIX socket to send a pidfd of the process to",
    ),
]
_NoPivot = Annotated[
    bool,
    typer.Option(
        "--no-pivot",
        help="enter the rootfs with chroot-like MS_MOVE instead of pivot_root (ramdisks)",
    ),
]
_NoNewKeyring = Annotated[
    bool,
    typer.Option(
        "--no-new-keyring",
        help="keep the caller's session keyring instead of creating one",
    ),
]
_Format = Annotated[
    str,
    typer.Option(
        "--format", "-f", click_type=click.Choice(["table", "json"]), help="'table' or 'json'"
    ),
]


@app.command(
    "spec",
    cls=_Command,
    short_help="write a starter config.json",
    help="""\
Write a config.json to start from into the bundle directory: it runs "sh"
with a terminal, as root, in new namespaces, with the usual default
capabilities, mounts and masked paths.  Edit it (for instance with jq) to
suit the image before creating a container from it.""",
)
def spec(
    bundle: Annotated[
        str, typer.Option("--bundle", "-b", help="the bundle directory to write into")
    ] = ".",
    rootless: Annotated[
        bool,
        typer.Option("--rootless", help="a config for an unprivileged user (user namespace)"),
    ] = False,
) -> None:
    from runpy_exec import spec_default

    spec_default.write_spec(bundle, rootless)


@app.command(
    "create",
    cls=_Command,
    short_help="create a container whose process waits for start",
    help="""\
Set up the container described by the bundle (namespaces, cgroups, mounts,
rootfs) and leave its process waiting just before it runs the configured
program, until "pyrunc start" lets it go.  The id must not be in use.""",
)
def create(
    ctx: typer.Context,
    container_id: _ContainerId,
    bundle: _Bundle = ".",
    console_socket: _ConsoleSocket = None,
    pidfd_socket: _PidfdSocket = None,
    pid_file: _PidFile = None,
    no_pivot: _NoPivot = False,
    no_new_keyring: _NoNewKeyring = False,
    preserve_fds: _PreserveFds = 0,
) -> None:
    from runpy_exec import create_cmd

    create_cmd.create(
        _opts(ctx),
        CreateRequest(
            container_id=container_id,
            bundle=bundle,
            pid_file=pid_file,
            console_socket=console_socket,
            no_pivot=no_pivot,
            no_new_keyring=no_new_keyring,
            preserve_fds=preserve_fds,
            pidfd_socket=pidfd_socket,
        ),
    )


@app.command(
    "run",
    cls=_Command,
    short_help="create a container and start it",
    help="""\
Create the container and start it at once.  Without --detach pyrunc waits for
the container's process, exits with its status and then deletes the container
(unless --keep).""",
)
def run_(
    ctx: typer.Context,
    container_id: _ContainerId,
    bundle: _Bundle = ".",
    console_socket: _ConsoleSocket = None,
    pidfd_socket: _PidfdSocket = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="return once the process has started")
    ] = False,
    keep: Annotated[
        bool, typer.Option("--keep", help="leave the container in place when it exits")
    ] = False,
    pid_file: _PidFile = None,
    no_pivot: _NoPivot = False,
    no_new_keyring: _NoNewKeyring = False,
    preserve_fds: _PreserveFds = 0,
) -> None:
    from runpy_exec import create_cmd

    status = create_cmd.run(
        _opts(ctx),
        CreateRequest(
            container_id=container_id,
            bundle=bundle,
            pid_file=pid_file,
            console_socket=console_socket,
            no_pivot=no_pivot,
            no_new_keyring=no_new_keyring,
            preserve_fds=preserve_fds,
            pidfd_socket=pidfd_socket,
        ),
        detach,
        keep,
    )
    if status:
        raise typer.Exit(status)


@app.command(
    "start",
    cls=_Command,
    short_help="let a created container's process run",
    help='Release the process that "pyrunc create" left waiting.',
)
def start(ctx: typer.Context, container_id: _ContainerId) -> None:
    from runpy_exec import lifecycle

    lifecycle.start(_opts(ctx), container_id)


@app.command(
    "state",
    cls=_Command,
    short_help="print a container's state as JSON",
    help="Print the OCI state of the container (id, pid, status, bundle, ...) as JSON.",
)
def state(ctx: typer.Context, container_id: _ContainerId) -> None:
    from runpy_exec import lifecycle

    lifecycle.state(_opts(ctx), container_id)


@app.command(
    "list",
    cls=_Command,
    short_help="list the containers under --root",
    help="""\
List the containers whose state lives under the global --root directory, one
line each, or as a JSON array with --format json.""",
)
def list_(
    ctx: typer.Context,
    fmt: _Format = "table",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print the ids only")] = False,
) -> None:
    from runpy_exec import lifecycle

    lifecycle.list_containers(_opts(ctx), quiet, fmt)


@app.command(
    "kill",
    cls=_Command,
    short_help="signal a container's init process (SIGTERM by default)",
    help="""\
Send a signal to the container's init process.  The signal is a name (KILL,
SIGKILL) or a number and defaults to SIGTERM; signal 0 only checks that the
process exists.""",
)
def kill(
    ctx: typer.Context,
    container_id: _ContainerId,
    signal: Annotated[str, typer.Argument(metavar="SIGNAL")] = "SIGTERM",
    all_processes: Annotated[
        bool,
        typer.Option("--all", "-a", help="signal every process of the container"),
    ] = False,
) -> None:
    from runpy_exec import lifecycle

    lifecycle.kill(_opts(ctx), container_id, signal, all_processes)


@app.command(
    "delete",
    cls=_Command,
    short_help="remove a container and everything it holds",
    help="""\
Remove a stopped container: its cgroups, its state and anything else pyrunc
set up for it.  With --force a running container is killed first, and an
unknown id is not an error.""",
)
def delete(
    ctx: typer.Context,
    container_id: _ContainerId,
    force: Annotated[
        bool,
        typer.Option("--force", "-f", help="kill the container if it still runs (SIGKILL)"),
    ] = False,
) -> None:
    from runpy_exec import lifecycle

    lifecycle.delete(_opts(ctx), container_id, force)


@app.command(
    "ps",
    cls=_Command,
    short_help="show the processes running in a container",
    help="""\
List the container's processes; arguments after the id are handed to ps(1)
to choose its columns (table format only).""",
)
def ps(
    ctx: typer.Context,
    container_id: _ContainerId,
    ps_args: Annotated[list[str] | None, typer.Argument(metavar="PS_OPTIONS")] = None,
    fmt: _Format = "table",
) -> None:
    from runpy_exec import lifecycle

    lifecycle.ps(_opts(ctx), container_id, fmt, tuple(ps_args or ()))


@app.command(
    "pause",
    cls=_Command,
    short_help="freeze every process of a container",
    help="Freeze all the container's processes with the cgroup freezer.",
)
def pause(ctx: typer.Context, container_id: _ContainerId) -> None:
    from runpy_exec import lifecycle

    lifecycle.pause(_opts(ctx), container_id)


@app.command(
    "resume",
    cls=_Command,
    short_help="thaw a paused container",
    help='Let the processes frozen by "pyrunc pause" run again.',
)
def resume(ctx: typer.Context, container_id: _ContainerId) -> None:
    from runpy_exec import lifecycle

    lifecycle.resume(_opts(ctx), container_id)


@app.command(
    "exec",
    cls=_Command,
    short_help="execute new process inside the container",
    help="""\
Run a command in the running container, as the container's process runs:
same namespaces, cgroup, capabilities, user, environment and LSM profile
unless the options below change them.  pyrunc exits with the command's status
(128+N when signal N killed it); its own failures exit 255.

The process can also come whole from an OCI process.json (-p), with the
options below applied on top of it.""",
)
def exec_(
    ctx: typer.Context,
    container_id: _ContainerId,
    args: Annotated[list[str] | None, typer.Argument(metavar="COMMAND")] = None,
    console_socket: _ConsoleSocket = None,
    pidfd_socket: _PidfdSocket = None,
    cwd: Annotated[
        str | None, typer.Option("--cwd", help="working directory inside the container")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="add or override NAME=VALUE (repeatable)"),
    ] = None,
    tty: Annotated[
        bool, typer.Option("--tty", "-t", help="give the process a pseudoterminal")
    ] = False,
    user: Annotated[
        str | None,
        typer.Option("--user", "-u", help="run as <uid>[:<gid>] (names are looked up)"),
    ] = None,
    additional_gids: Annotated[
        list[str] | None,
        typer.Option("--additional-gids", "-g", help="a supplementary group id (repeatable)"),
    ] = None,
    process_file: Annotated[
        str | None,
        typer.Option("--process", "-p", help="take the process from this OCI process.json"),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option("--detach", "-d", help="return once the process runs instead of waiting"),
    ] = False,
    pid_file: _PidFile = None,
    process_label: Annotated[
        str | None,
        typer.Option("--process-label", help="SELinux label to run the process with"),
    ] = None,
    apparmor: Annotated[
        str | None, typer.Option("--apparmor", help="AppArmor profile to run the process under")
    ] = None,
    no_new_privs: Annotated[
        bool,
        typer.Option("--no-new-privs", help="set no_new_privs: setuid binaries gain nothing"),
    ] = False,
    caps: Annotated[
        list[str] | None,
        typer.Option("--cap", "-c", help="grant one more capability, e.g. CAP_SYS_ADMIN"),
    ] = None,
    preserve_fds: _PreserveFds = 0,
    cgroups: Annotated[
        list[str] | None,
        typer.Option(
            "--cgroup",
            help="join this existing sub-cgroup, as [<controller>[,...]:]<path> (repeatable)",
        ),
    ] = None,
    ignore_paused: Annotated[
        bool, typer.Option("--ignore-paused", help="exec even into a paused container")
    ] = False,
    internal_pid_file: Annotated[
        str | None,
        typer.Option(
            "--internal-pid-file",
            help="write the process's pid as seen inside the container to this file",
        ),
    ] = None,
    pass_fds: Annotated[
        list[str] | None,
        typer.Option("--pass-fd", help="M:N gives our fd M to the process as fd N (repeatable)"),
    ] = None,
    exec_fd: Annotated[
        int | None,
        typer.Option(
            "--exec-fd",
            min=0,
            max=_MAX_FD,
            help="execute the file open on this fd (fexecve) instead of a path",
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            help="kill the process after this long (e.g. 10s, 1m30s) and exit 124",
        ),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session",
            help='start a reattachable session of this name (see "pyrunc attach")',
        ),
    ] = None,
    session_idle: Annotated[
        str | None,
        typer.Option(
            "--session-idle",
            help="end the session once no client has been attached for this long (e.g. 1h)",
        ),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option("--size", help="the session's terminal size as ROWSxCOLS, e.g. 40x120"),
    ] = None,
) -> None:
    from runpy_exec import exec_cmd

    status = exec_cmd.exec_(
        _opts(ctx),
        ExecRequest(
            container_id=container_id,
            args=tuple(args or ()),
            cwd=cwd,
            env=tuple(env or ()),
            user=user,
            additional_gids=tuple(additional_gids or ()),
            caps=tuple(caps or ()),
            no_new_privs=no_new_privs,
            tty=tty,
            console_socket=console_socket,
            detach=detach,
            pid_file=pid_file,
            process_file=process_file,
            preserve_fds=preserve_fds,
            cgroups=tuple(cgroups or ()),
            ignore_paused=ignore_paused,
            apparmor=apparmor,
            process_label=process_label,
            internal_pid_file=internal_pid_file,
            pass_fds=tuple(pass_fds or ()),
            exec_fd=exec_fd,
            timeout=timeout,
            pidfd_socket=pidfd_socket,


            session=session,
            session_idle=session_idle,
            size=size,
        ),
    )
    if status:
        raise typer.Exit(status)


@app.command(
    "features",
    cls=_Command,
    short_help="show what this pyrunc supports on this host, as JSON",
    help="""\
Print the runtime-spec features document (features.json): the OCI versions,
hooks, mount options, namespaces, capabilities, cgroup versions, seccomp
actions, operators, architectures and flags, and the LSMs this pyrunc can
use on this host.  Engines read it to decide what to ask for.""",
)
def features(ctx: typer.Context) -> None:
    from runpy_exec import features as feats

    feats.print_features(_opts(ctx))


def _flag(help_text: str, hidden: bool = False) -> Any:
    return typer.Option(help=help_text, hidden=hidden, show_default=False)


@app.command(
    "update",
    cls=_FlagsAnywhere,
    short_help="change a running container's resource limits",
    help="""\
Change the cgroup limits of a running container, from the options below or
from a linux.resources JSON object (--resources FILE, or - for stdin; the
options are then ignored).  Sizes take a binary unit (64M, 1g); -1 means
unlimited.  The new limits are recorded with the container.  Device rules are
not changed.  When the kernel refuses a value the previous limits are put
back and the command fails.""",
)
def update(
    ctx: typer.Context,
    container_id: _ContainerId,
    resources: Annotated[
        str | None,
        typer.Option("--resources", "-r",
                     help="read linux.resources JSON from this file, or - for stdin"),
    ] = None,
    blkio_weight: Annotated[str | None, _flag("block IO weight, 10 to 1000")] = None,
    cpu_period: Annotated[str | None, _flag("CPU CFS period in us")] = None,
    cpu_quota: Annotated[str | None, _flag("CPU CFS quota in us per period; -1: none")] = None,
    cpu_burst: Annotated[str | None, _flag("CPU CFS burst in us")] = None,
    cpu_share: Annotated[str | None, _flag("CPU shares (relative weight)")] = None,
    cpu_rt_period: Annotated[str | None, _flag("CPU realtime period in us")] = None,
    cpu_rt_runtime: Annotated[str | None, _flag("CPU realtime runtime in us per period")] = None,
    cpuset_cpus: Annotated[str | None, _flag("CPUs the container may use, e.g. 0-2,4")] = None,
    cpuset_mems: Annotated[str | None, _flag("memory nodes the container may use")] = None,
    cpu_idle: Annotated[str | None, _flag("1: SCHED_IDLE for the cgroup, 0: normal")] = None,
    kernel_memory: Annotated[str | None, _flag("(ignored, as by runc)", hidden=True)] = None,
    kernel_memory_tcp: Annotated[str | None, _flag("(ignored, as by runc)", hidden=True)] = None,
    memory: Annotated[str | None, _flag("memory limit in bytes (64M, 1g); -1: none")] = None,
    memory_reservation: Annotated[str | None, _flag("memory soft limit in bytes")] = None,
    memory_swap: Annotated[str | None, _flag("memory+swap limit in bytes; -1: none")] = None,
    pids_limit: Annotated[str | None, _flag("maximum number of tasks; -1: none")] = None,
    l3_cache_schema: Annotated[str | None, _flag("Intel RDT/CAT L3 cache schema")] = None,
    mem_bw_schema: Annotated[str | None, _flag("Intel RDT/MBA memory bandwidth schema")] = None,
) -> None:
    from runpy_exec import update as upd

    upd.update_command(_opts(ctx), UpdateRequest(
        container_id=container_id, resources=resources, blkio_weight=blkio_weight,
        cpu_period=cpu_period, cpu_quota=cpu_quota, cpu_burst=cpu_burst, cpu_share=cpu_share,
        cpu_rt_period=cpu_rt_period, cpu_rt_runtime=cpu_rt_runtime, cpuset_cpus=cpuset_cpus,
        cpuset_mems=cpuset_mems, cpu_idle=cpu_idle, kernel_memory=kernel_memory,
        kernel_memory_tcp=kernel_memory_tcp, memory=memory,
        memory_reservation=memory_reservation, memory_swap=memory_swap,
        pids_limit=pids_limit, l3_cache_schema=l3_cache_schema, mem_bw_schema=mem_bw_schema))


@app.command(
    "events",
    cls=_FlagsAnywhere,
    short_help="print a container's resource usage and OOM kills as JSON lines",
    help="""\
Print the container's resource usage (cpu, memory, pids, blkio, hugetlb) as
one JSON line every interval, and a line of type "oom" whenever the kernel's
OOM killer kills one of its processes.  The stream ends when the container
stops, or on SIGINT or SIGTERM.  With --stats, print the usage once.""",
)
def events(
    ctx: typer.Context,
    container_id: _ContainerId,
    interval: Annotated[
        str, typer.Option("--interval", help="time between two stats lines (5s, 100ms)")
    ] = "5s",
    stats: Annotated[
        bool, typer.Option("--stats", help="print the usage once and exit")
    ] = False,
) -> None:
    from runpy_exec import events as ev

    ev.events(_opts(ctx).root, container_id, ev.parse_interval(interval), stats)


_SessionName = Annotated[str, typer.Argument(metavar="SESSION", show_default=False)]


@app.command(
    "attach",
    cls=_Command,
    short_help="attach to an exec session started with --session",
    help="""\
Show the session's recent output, then connect this terminal to it (raw
mode; the size follows this terminal).  The detach keys (ctrl-p ctrl-q by
default) leave the session running and exit 0; when its process ends, attach
exits with its status (128+N for signal N).  Several clients may attach at
once.""",
)
def attach(
    ctx: typer.Context,
    container_id: _ContainerId,
    name: _SessionName,
    detach_keys: Annotated[
        str,
        typer.Option("--detach-keys", help='the keys that detach, e.g. "ctrl-a,d"'),
    ] = "ctrl-p,ctrl-q",
    no_replay: Annotated[
        bool, typer.Option("--no-replay", help="do not show the recent output first")
    ] = False,
) -> None:
    from runpy_exec.sessions import client

    status = client.attach_command(_opts(ctx), container_id, name, detach_keys, no_replay)
    if status:
        raise typer.Exit(status)


@app.command(
    "sessions",
    cls=_Command,
    short_help="list a container's exec sessions",
    help="List the container's sessions: name, pid, command, start, clients attached, idle since.",
)
def sessions_(ctx: typer.Context, container_id: _ContainerId, fmt: _Format = "table") -> None:
    from runpy_exec.sessions import client

    client.print_sessions(_opts(ctx).root, container_id, fmt)


@app.command(
    "kill-session",
    cls=_Command,
    short_help="end an exec session (SIGKILL by default)",
    help="""\
Send a signal to the session's process; with the default SIGKILL, return once
the session has ended.""",
)
def kill_session(
    ctx: typer.Context,
    container_id: _ContainerId,
    name: _SessionName,
    signal: Annotated[str, typer.Argument(metavar="SIGNAL")] = "SIGKILL",
) -> None:
    from runpy_exec import lifecycle
    from runpy_exec.sessions import client

    client.kill_session(_opts(ctx).root, container_id, name, lifecycle.parse_signal(signal))


# runc commands pyrunc does not implement.  They exist so that "-h" works and
# a caller gets a plain refusal instead of an unknown-command error.
_UNSUPPORTED = {
    "checkpoint": "save a running container to disk (not supported by pyrunc)",
    "restore": "bring back a checkpointed container (not supported by pyrunc)",
}


def _unsupported(ctx: typer.Context) -> None:
    raise PyruncError(f"pyrunc does not support the {ctx.info_name} command")


for _name, _summary in _UNSUPPORTED.items():
    app.command(
        _name,
        cls=_Command,
        short_help=_summary,
        help=f"pyrunc does not implement {_name}; the command always fails.",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )(_unsupported)


@app.command(
    "help",
    cls=_Command,
    short_help="list the commands, or show one command's help",
    help='"pyrunc help CMD" is "pyrunc CMD --help"; "h" is short for "help".',
)
def help_(
    ctx: typer.Context,
    command: Annotated[str | None, typer.Argument(metavar="COMMAND")] = None,
) -> None:
    parent = ctx.parent
    assert parent is not None
    if command is None:
        typer.echo(parent.get_help())
        return
    group = parent.command
    assert isinstance(group, click.Group)
    sub = group.get_command(parent, command)
    if sub is None:
        raise _UnknownCommand(command, ctx)
    typer.echo(sub.get_help(click.Context(sub, info_name=sub.name, parent=parent)))


def run(argv: list[str]) -> int:
    """Run the command line through click; the exit status to leave with.

    Usage errors become one line on stderr (runc prints its whole help to
    stdout, which pollutes the output that callers parse).  ``PyruncError``
    and other exceptions propagate to ``entry``, which reports them.
    """
    group = typer.main.get_command(app)
    try:
        result: Any = group.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.UsageError as err:
        return _usage_error(err)
    except click.ClickException as err:
        log.error(f"{PROG}: {err.format_message()}")
        return err.exit_code
    except click.Abort:
        return 130
    return result if isinstance(result, int) else 0


def _usage_error(err: click.UsageError) -> int:
    path = err.ctx.command_path if err.ctx is not None else PROG
    if isinstance(err, _UnknownCommand):
        log.error(err.format_message())
        return err.exit_code
    log.error(f"{path}: {err.format_message().rstrip('.')}; see '{path} --help'")
    is_exec = err.ctx is not None and err.ctx.command.name == "exec"
    return EXEC_ERROR if is_exec else 1


def version_text() -> str:
    return f"{PROG} version {__version__}\n{_build_info()}"


def _build_info() -> str:
    return f"commit: {_commit()}\nspec: {OCI_VERSION}"


def _commit() -> str:
    """The source revision, when pyrunc runs from its own git checkout."""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(checkout, ".git")):
        return "unknown"
    try:
        done = subprocess.run(
            ["git", "-C", checkout, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def _group_help(group: click.Group, ctx: click.Context) -> str:
    commands = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is not None and not cmd.hidden:
            label = f"{name}, h" if name == "help" else name
            commands.append((label, cmd.short_help or ""))
    options = _option_rows(group.params)
    options.append(("--help, -h", "show help"))
    parts = [
        _section("NAME", f"{PROG} - {TAGLINE}"),
        (group.help or "").strip(),
        _section("USAGE", f"{PROG} [global options] command [command options] [arguments...]"),
        # Like runc, only the first line of the version block is indented.
        f"VERSION:\n   {__version__}\n{_build_info()}",
        _section("COMMANDS", _table(commands)),
        _section("GLOBAL OPTIONS", _table(options)),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _command_help(cmd: click.Command, ctx: click.Context) -> str:
    name = cmd.name or ""
    usage = _USAGE.get(name, "[command options] [arguments...]")
    parts = [
        _section("NAME", f"{ctx.command_path} - {cmd.short_help or ''}"),
        _section("USAGE", f"{ctx.command_path} {usage}"),
    ]
    if cmd.help:
        parts.append(_section("DESCRIPTION", cmd.help.strip()))
    options = _option_rows(cmd.params)
    if options:
        parts.append(_section("OPTIONS", _table(options)))
    return "\n\n".join(parts) + "\n"


def _section(title: str, body: str) -> str:
    indented = "\n".join(f"   {line}" if line else "" for line in body.splitlines())
    return f"{title}:\n{indented}"


def _table(rows: list[tuple[str, str]]) -> str:
    width = max((len(left) for left, _ in rows), default=0)
    return "\n".join(f"{left.ljust(width)}  {right}".rstrip() for left, right in rows)


def _option_rows(params: list[click.Parameter]) -> list[tuple[str, str]]:
    rows = []
    for param in params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        suffix = "" if param.is_flag else " value"
        longs = [opt for opt in param.opts if opt.startswith("--")]
        shorts = [opt for opt in param.opts if not opt.startswith("--")]
        names = ", ".join(opt + suffix for opt in longs + shorts)
        text = param.help or ""
        default = param.default
        if not param.is_flag and not param.multiple and default not in (None, ""):
            shown = f'"{default}"' if isinstance(default, str) else str(default)
            text = f"{text} (default: {shown})"
        rows.append((names, text))
    return rows
