"""The ``pyrunc`` console command: choose a parser, turn failures into statuses.

A well-formed call of a command engines use (exec, create, start, state,
kill, delete...) is parsed by ``fastargs`` with the standard library only;
everything else (other commands, help, anything unusual) goes through the
Typer app in ``cli``, whose import alone costs several times the work of most
commands.  A bare ``features``, as engines run it when they start, has nothing
to parse or log and skips even ``fastargs`` and ``log``.  This module must
therefore import nothing beyond those small modules, and those only when the
call needs them.

Failures are reported once, here: a ``PyruncError`` as its one-line message
and its exit code, anything unexpected as a one-line internal error (with the
traceback only under ``--debug``), never a traceback for a user's mistake.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

EXEC_ERROR = 255
INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(args)
    except (Exception, KeyboardInterrupt, SystemExit) as err:
        return _status_of(err, args)
    finally:
        # Undo --log and --debug for the next call in this process (the tests
        # make many); a call that never loaded log configured nothing.
        log = sys.modules.get("runpy_exec.log")
        if log is not None:
            log.reset()


def _dispatch(args: list[str]) -> int:
    if args == ["features"]:
        # dockerd and containerd's CRI plugin run it bare as they start.  With
        # nothing to parse, the flag tables and request tuples stay unloaded,
        # and log too (nothing is logged): ~0.5 ms of a call that is
        # otherwise mostly the interpreter's start.
        from runpy_exec import features

        features.print_document()
        return 0
    from runpy_exec import fastargs, log

    parsed = fastargs.parse(args)
    if parsed is None:
        from runpy_exec import cli

        return cli.run(args)
    log.configure(parsed.opts)
    return parsed.call()


def _status_of(err: BaseException, args: list[str]) -> int:
    """Report a failure once and choose the exit status.

    A ``PyruncError`` is its one-line message and its exit code; ^C is 130;
    ``sys.exit`` keeps its code; a reader that went away (``pyrunc list |
    head``) is nobody to tell; anything else is a one-line internal error,
    the last line of defence against a bare traceback.  ``log`` and ``errors``
    are loaded here, on the way out, for the calls that never needed them.
    """
    from runpy_exec import log
    from runpy_exec.errors import PyruncError

    if isinstance(err, PyruncError):
        log.error(str(err))
        return err.exit_code
    if isinstance(err, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(err, SystemExit):
        return _exit_status(err.code)
    if isinstance(err, BrokenPipeError):
        _silence_stdout()
        return 1
    return _internal_error(err, args)


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    from runpy_exec import log

    log.error(str(code))
    return 1


def _internal_error(err: BaseException, args: list[str]) -> int:
    from runpy_exec import log

    if log.debug_enabled():
        import traceback

        traceback.print_exception(err, file=sys.stderr)
    log.error(f"pyrunc: internal error: {type(err).__name__}: {err}")
    from runpy_exec import fastargs

    return EXEC_ERROR if fastargs.subcommand(args) == "exec" else 1


def _silence_stdout() -> None:
    """Keep the interpreter's final flush of stdout from failing a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


class _ClosedStdout:
    """sys.stdout when fd 1 was closed at start, where Python leaves None: a
    command that prints (list, state, features...) then fails in one line, with
    runc's words, and one that prints nothing (kill, delete, exec) is unaffected."""

    def write(self, _text: str) -> int:
        from runpy_exec.errors import PyruncError

        raise PyruncError("write /dev/stdout: bad file descriptor")

    def flush(self) -> None:
        pass


# Container objects allocated (net) before the cyclic collector runs; Python's
# default is 700.  See console_main.
COLLECTOR_THRESHOLD = 30_000


def console_main() -> None:
    """The ``pyrunc`` command: ``main`` without the interpreter's shutdown.

    Tearing the interpreter down takes ~12 ms after the process has already
    exited, on every exec probe.  pyrunc keeps no state that needs it: log
    records are written unbuffered, so flushing stdio is all that is left.

    The cyclic garbage collector runs only after COLLECTOR_THRESHOLD new
    objects rather than 700.  Importing a command's modules makes thousands of
    objects that live until the end, none of them garbage: an exec ran six
    collections that found nothing (~0.8 ms), and one in exec's forked child
    would touch, and so copy, every page of objects it walks.  A command ends
    with 2,000-5,000 more objects than it started with (create, when it
    compiles a seccomp profile, 15,000; Typer's path 23,000), so none runs;
    the long-lived loops (a relayed terminal, events, a session's waiter)
    still collect every so often.
    """
    import gc

    gc.set_threshold(COLLECTOR_THRESHOLD)
    if sys.stdout is None:  # fd 1 was closed when pyrunc started
        sys.stdout = _ClosedStdout()
    status = main()
    try:
        sys.stdout.flush()
        if sys.stderr is not None:
            sys.stderr.flush()
    except (OSError, ValueError):
        status = status or 1
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
