"""--pidfd-socket on create, run and exec: one message, runc's shape (the init
type as data, the pidfd as the one SCM_RIGHTS fd), and a pidfd of the right
process; a socket nobody listens on fails before anything starts."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Runtime, running
from tests.exec_support import cgroup_pids, init_pid

pytestmark = pytest.mark.root


class Receiver:
    """Accepts one connection and keeps what the one message carried."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.data = b""
        self.fds: list[int] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            self.data, self.fds, _, _ = socket.recv_fds(conn, 64, 4)

    def pid_of_received_fd(self) -> int:
        self.thread.join(timeout=30)
        assert len(self.fds) == 1, self.fds
        assert os.readlink(f"/proc/self/fd/{self.fds[0]}") == "anon_inode:[pidfd]"
        fdinfo = Path(f"/proc/self/fdinfo/{self.fds[0]}").read_text()
        return int(next(line for line in fdinfo.splitlines()
                        if line.startswith("Pid:")).split()[1])

    def close(self) -> None:
        self.listener.close()
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(tmp_path / "pidfd.sock")
    yield r
    r.close()


def test_create_sends_a_pidfd_of_the_init(pyrunc: Runtime, bundle: Path,
                                          receiver: Receiver) -> None:
    container_id = f"pf{os.getpid()}"
    pyrunc.run_detached("create", "--bundle", str(bundle), "--pidfd-socket",
                        str(receiver.path), container_id)
    try:
        assert receiver.pid_of_received_fd() == init_pid(pyrunc, container_id)
        assert receiver.data == b"standard"
    finally:
        pyrunc("delete", "--force", container_id)


def test_run_sends_a_pidfd_of_the_init(pyrunc: Runtime, bundle: Path,
                                       receiver: Receiver) -> None:
    container_id = f"pr{os.getpid()}"
    pyrunc.run_detached("run", "-d", "--pidfd-socket", str(receiver.path), "--bundle",
                        str(bundle), container_id)
    try:
        assert receiver.pid_of_received_fd() == init_pid(pyrunc, container_id)
    finally:
        pyrunc("delete", "--force", container_id)


def test_exec_sends_a_pidfd_of_the_new_process(pyrunc: Runtime, pyrunc_container: str,
                                               receiver: Receiver, tmp_path: Path) -> None:
    pid_file = tmp_path / "exec.pid"
    pyrunc.run_detached("exec", "-d", "--pid-file", str(pid_file), "--pidfd-socket",
                        str(receiver.path), pyrunc_container, "sleep", "60")
    pid = receiver.pid_of_received_fd()
    assert receiver.data == b"setns"
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0060\x00"
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(
        f"/proc/{init_pid(pyrunc, pyrunc_container)}/ns/pid")


def test_a_dead_socket_fails_before_anything_starts(pyrunc: Runtime, bundle: Path,
                                                    tmp_path: Path) -> None:
    missing = tmp_path / "nobody.sock"
    result = pyrunc("run", "-d", "--pidfd-socket", str(missing), "--bundle", str(bundle),
                    "dead1")
    assert result.returncode == 1
    assert result.stderr.strip() == f"pidfd socket {missing}: no such file or directory"
    assert not (pyrunc.root / "dead1").exists()
    with running(pyrunc, bundle) as container_id:
        init = init_pid(pyrunc, container_id)
        result = pyrunc("exec", "--pidfd-socket", str(missing), container_id, "true")
        assert result.returncode == 255 and "pidfd socket" in result.stderr
        assert cgroup_pids(init) == {init}
