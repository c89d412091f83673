"""``exec --session NAME``: check everything, claim the name, fork the waiter.

The name is claimed by binding its socket before anything starts, so two
starts of one name cannot both succeed and a failure leaves no process.
The waiter is started the way a detached exec's is (runsc's re-spawn
design): the pid file names it and it exits with the process's status.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket

from runpy_exec import exec_cmd, sessions
from runpy_exec.errors import PyruncError
from runpy_exec.requests import ExecRequest, GlobalOptions

EXEC_ERROR = 255
DEFAULT_SHELL = "/bin/sh"


def exec_session(opts: GlobalOptions, req: ExecRequest) -> int:
    from runpy_exec import resolve

    assert req.session is not None
    name = sessions.check_name(req.session)
    if req.size:
        sessions.parse_size(req.size)
    idle = resolve.parse_duration(req.session_idle) if req.session_idle else None
    if idle is not None and idle <= 0:
        raise PyruncError(f"invalid --session-idle {req.session_idle!r}: must be more than 0")
    for flag, given in (("--console-socket", req.console_socket),
                        ("--process", req.process_file), ("--timeout", req.timeout)):
        if given:
            raise PyruncError(f"exec failed: {flag} cannot be used with --session")
    container = exec_cmd._load_running(opts, req)
    args = req.args or (_login_shell(container.init_pid, req, container.config),)
    # The session's process is the one the waiter relays itself: a terminal,
    # not detached from pyrunc's point of view (the waiter is pyrunc).
    launch_req = req._replace(args=args, tty=True, detach=False, size=req.size or _our_size())
    listener = _claim(container.state_dir, name, container.id)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    waiter = os.fork()
    if waiter == 0:
        os.close(ready_r)
        from runpy_exec.sessions import waiter as waiter_module

        waiter_module.run(opts, launch_req, listener, ready_w, idle, container.state_dir)
    os.close(ready_w)
    listener.close()
    with os.fdopen(ready_r, "rb") as ready:
        report = ready.read()
    if report == b"ok":
        return 0
    os.waitpid(waiter, 0)
    _release(container.state_dir, name)
    message = report[len(b"error:"):].decode(errors="replace") if report.startswith(
        b"error:") else "exec failed: the session's waiter died before the process started"
    raise PyruncError(message, EXEC_ERROR)


def _our_size() -> str:
    """The caller's terminal size when it has one, else the classic 24x80."""
    from runpy_exec.linux import console

    try:
        rows, cols = console.get_winsize(0)
    except OSError:
        return "24x80"
    return f"{rows}x{cols}" if rows and cols else "24x80"


def login_shell(passwd_text: str | None, uid: int) -> str:
    """The shell field of the first passwd entry for ``uid``, else /bin/sh (libc's rule)."""
    for line in (passwd_text or "").splitlines():
        fields = line.strip().split(":")
        if len(fields) >= 7 and fields[2].isdigit() and int(fields[2]) == uid:
            return fields[6] or DEFAULT_SHELL
    return DEFAULT_SHELL


def _login_shell(init_pid: int, req: ExecRequest, config: dict[str, object]) -> str:
    from runpy_exec import containerfs, resolve

    root = f"/proc/{init_pid}/root"
    passwd = containerfs.read_container_file(root, "/etc/passwd")
    group = containerfs.read_container_file(root, "/etc/group")
    process = config.get("process") or {}
    spec_user = process.get("user") or {} if isinstance(process, dict) else {}
    user = resolve.resolve_user(req.user, int(spec_user.get("uid", 0)),
                                int(spec_user.get("gid", 0)),
                                resolve.parse_passwd(passwd or ""),
                                resolve.parse_group(group or ""))
    return login_shell(passwd, user.uid)


def _claim(state_dir: str, name: str, container_id: str) -> socket.socket:
    """Bind the session's socket, mode 0600: the name is ours, or an error says whose.

    A socket left by a waiter that was killed answers nothing (ECONNREFUSED);
    it is removed and the name taken.
    """
    listener = sessions.new_socket()
    with sessions.socket_path(state_dir, name) as path:
        for attempt in (1, 2):
            old_umask = os.umask(0o177)
            try:
                listener.bind(path)
                break
            except OSError as err:
                if err.errno != errno.EADDRINUSE or attempt == 2 or _answers(path):
                    listener.close()
                    if err.errno == errno.EADDRINUSE:
                        raise PyruncError(f"exec failed: session {name!r} already exists in "
                                          f"container {container_id!r}", EXEC_ERROR) from None
                    raise PyruncError(f"exec failed: session {name!r}: cannot create its socket "
                                      f"in {state_dir}: {err.strerror}", EXEC_ERROR) from None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            finally:
                os.umask(old_umask)
    listener.listen(16)
    return listener


def _answers(path: str) -> bool:
    with sessions.new_socket() as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _release(state_dir: str, name: str) -> None:
    with contextlib.suppress(OSError), sessions.socket_path(state_dir, name) as path:
        os.unlink(path)
