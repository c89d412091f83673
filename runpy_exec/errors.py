"""The one exception type a user ever sees, as a one-line message."""


class PyruncError(Exception):
    """A failure caused by the user's input or the container's state.

    The CLI prints ``str(error)`` on one line (and logs it to ``--log``) and
    exits with ``exit_code``: 1 as runc does for most commands, 255 for exec's
    own failures so they cannot be confused with the process's exit status.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
