"""Shared pieces of the exec tests: long-lived containers and readers of what a process saw.

Containers here are module-scoped: a test that only execs into a container
does not change it, so one container serves a whole module and the suite
stays fast.  Tests that pause, stop or corrupt a container use conftest's
function-scoped ones instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import PROJECT, Runtime

CONSOLE_RECEIVER = PROJECT / "examples" / "console-receiver.py"

Config = dict[str, Any]


def make_bundle(template: Path, directory: Path,
                change: Callable[[Config], None] | None = None) -> Path:
    """A bundle over the session's read-only busybox rootfs, running ``sleep 3600``."""
    directory.mkdir(parents=True, exist_ok=True)
    config = json.loads((template / "config.json").read_text())
    config["root"] = {"path": str(template / "rootfs"), "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sleep", "3600"]
    if change is not None:
        change(config)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def status_fields(text: str) -> dict[str, str]:
    """``Name:\\tvalue`` lines, as /proc/<pid>/status prints them."""
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def cap_mask(*numbers: int) -> str:
    return f"{sum(1 << n for n in numbers):016x}"


def init_pid(runtime: Runtime, container_id: str) -> int:
    pid: int = runtime.state(container_id)["pid"]
    return pid


def cgroup_pids(pid: int) -> set[int]:
    """Every process in the cgroup of ``pid`` (a container's init) and below: its v1
    pids hierarchy, or the v2 hierarchy on a host without v1 controllers."""
    lines = [line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    v1 = [path for _, controllers, path in lines if "pids" in controllers.split(",")]
    top = f"/sys/fs/cgroup/pids{v1[0]}" if v1 else \
        "/sys/fs/cgroup" + next(path for _, controllers, path in lines if not controllers)
    found: set[int] = set()
    for directory, _, _ in os.walk(top):
        procs = Path(directory, "cgroup.procs").read_text().split()
        found.update(int(p) for p in procs)
    return found


def wait_for_path(path: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        time.sleep(0.01)


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.01)
    return False


class ConsoleReceiver:
    """examples/console-receiver.py, started and ready to take one pty master."""

    def __init__(self, socket_path: Path, mode: str = "print",
                 stdin: int | None = subprocess.DEVNULL) -> None:
        self.socket_path = socket_path
        self.proc = subprocess.Popen(
            [str(CONSOLE_RECEIVER), "--mode", mode, str(socket_path)],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        ready = self.proc.stderr.readline().decode()
        assert ready.startswith("listening on"), ready

    def output(self, timeout: float = 10.0) -> str:
        out, _ = self.proc.communicate(timeout=timeout)
        return out.decode()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def spawn_with_fds(argv: list[str], fds: dict[int, int],
                   timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``fds`` (target -> our fd) open at exactly those numbers.

    subprocess closes everything outside pass_fds after any preexec_fn, so
    it cannot put an fd at a number we choose; posix_spawn's dup2 actions
    can, and leave every other (close-on-exec) fd of ours behind.
    """
    import fcntl

    staged = {target: fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, 100)
              for target, source in fds.items()}
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2),
               *((os.POSIX_SPAWN_DUP2, source, target) for target, source in staged.items())]
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    finally:
        for fd in (out_w, err_w, *staged.values()):
            os.close(fd)
    with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
        stdout = out.read().decode()
        stderr = err.read().decode()
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            raise AssertionError(f"{argv} did not finish within {timeout}s")
        time.sleep(0.01)
    return subprocess.CompletedProcess(argv, os.waitstatus_to_exitcode(status), stdout, stderr)
