"""The one exception type a user ever sees, as a one-line message, and the
wording of the OS errors inside such messages."""

import os


class PyruncError(Exception):
    """A failure caused by the user's input or the container's state.

    The CLI prints ``str(error)`` on one line (and logs it to ``--log``) and
    exits with ``exit_code``: 1 as runc does for most commands, 255 for exec's
    own failures so they cannot be confused with the process's exit status.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def os_reason(err: OSError) -> str:
    """strerror as Go prints it, lower case first ("no such file or directory"):
    podman matches on runc's wording to choose its exit status (127, 126)."""
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]


def describe(err: BaseException) -> str:
    """An OSError as "path: reason" when it concerns a file (the call name is in
    the reason for our libc calls), anything else as its text."""
    if isinstance(err, OSError) and err.strerror:
        if err.filename is not None:
            return f"{os.fsdecode(err.filename)}: {err.strerror}"
        return err.strerror
    return str(err) or type(err).__name__
