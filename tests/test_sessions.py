"""Reattachable exec sessions, driven through real terminals: tmux panes running ``pyrunc attach``.

Each test types with ``send-keys`` and reads the screen with
``capture-pane``, polling with a deadline (the machine may be loaded), and
looks at the waiter and the process from outside: /proc, the socket, the
state directory.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runpy_exec.sessions import protocol
from tests.conftest import Runtime, pyrunc_binary, running
from tests.exec_support import cgroup_pids, make_bundle, wait_gone

pytestmark = pytest.mark.root

DEADLINE = 20.0


class Tmux:
    """A private tmux server; every pane stays after its command ends so its status can be read."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "tmux.sock"
        config = directory / "tmux.conf"
        config.write_text("set -g remain-on-exit on\nset -g history-limit 2000\n")
        self.config = config

    def __call__(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-S", str(self.socket), "-f", str(self.config), *args],
                              capture_output=True, text=True, timeout=30,
                              env={**os.environ, "TERM": "xterm"})
        assert done.returncode == 0, f"tmux {args}: {done.stderr}"
        return done.stdout

    def open(self, name: str, argv: list[str], rows: int = 24, cols: int = 80) -> str:
        self("new-session", "-d", "-s", name, "-x", str(cols), "-y", str(rows), *argv)
        return name

    def keys(self, pane: str, *keys: str) -> None:
        self("send-keys", "-t", pane, *keys)

    def screen(self, pane: str) -> str:
        return self("capture-pane", "-p", "-J", "-S", "-", "-t", pane)

    def wait_for(self, pane: str, text: str, timeout: float = DEADLINE) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen(pane)
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on {pane}'s screen:\n{screen}")
            time.sleep(0.05)

    def status(self, pane: str) -> int:
        """The exit status of the pane's ``attach``, as the shell around it reports it.

        The shell's ``$?`` (128+N for signal N) rather than tmux's own
        pane_dead_status, which tmux 3.3 leaves empty for a signal's death.
        """
        found = re.search(r"\[attach exited (\d+)\]", self.wait_for(pane, "[attach exited "))
        assert found is not None
        return int(found.group(1))

    def attach_pid(self, pane: str) -> int:
        """The pid of ``attach``, the child of the pane's shell."""
        shell = self.pid(pane)
        return int(Path(f"/proc/{shell}/task/{shell}/children").read_text().split()[0])

    def pid(self, pane: str) -> int:
        return int(self("display", "-p", "-t", pane, "#{pane_pid}"))

    def kill_server(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True,
                       timeout=30)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(tmp_path)
    yield server
    server.kill_server()


@pytest.fixture(autouse=True)
def _no_session_outlives_its_test(rt: Runtime, ctr: str) -> Iterator[None]:
    """A failed test must not leave its session behind for the next one to trip over."""
    yield
    for entry in os.listdir(rt.root / ctr):
        if entry.startswith("sess."):
            rt("kill-session", ctr, entry.removeprefix("sess."))


class Session:
    """What ``exec --session`` started: the name, the waiter (from the pid file)."""

    def __init__(self, rt: Runtime, ctr: str, name: str, waiter: int) -> None:
        self.rt, self.ctr, self.name, self.waiter = rt, ctr, name, waiter

    @property
    def socket_path(self) -> Path:
        return self.rt.root / self.ctr / f"sess.{self.name}"

    def attach(self, tmux: Tmux, pane: str, *flags: str, rows: int = 24, cols: int = 80) -> str:
        argv = [pyrunc_binary(), "--root", str(self.rt.root), "attach", *flags, self.ctr,
                self.name]
        # The shell stays: tmux 3.3 may drop a pane's last output when the pane's
        # command exits right after writing it.
        script = '"$@"; echo "[attach exited $?]"; exec sleep 3600'
        return tmux.open(pane, ["sh", "-c", script, "sh", *argv], rows, cols)

    def info(self) -> dict[str, Any]:
        listed = json.loads(self.rt("sessions", "--format", "json", self.ctr, check=True).stdout)
        found: dict[str, Any] = next(s for s in listed if s["name"] == self.name)
        return found

    def wait_clients(self, count: int) -> None:
        deadline = time.monotonic() + DEADLINE
        while self.info()["clients"] != count:
            assert time.monotonic() < deadline, f"never {count} clients: {self.info()}"
            time.sleep(0.05)

    def assert_ended(self) -> None:
        assert wait_gone(self.waiter, DEADLINE), f"waiter {self.waiter} still there"
        assert not self.socket_path.exists()


def session(rt: Runtime, ctr: str, tmp_path: Path, flags: tuple[str, ...] = (),
            command: tuple[str, ...] = ()) -> Session:
    name = f"s{uuid.uuid4().hex[:8]}"
    pid_file = tmp_path / f"{name}.pid"
    done = rt("exec", "--session", name, "--pid-file", str(pid_file), *flags, ctr, *command)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    return Session(rt, ctr, name, int(pid_file.read_text()))


def proc_ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


# --- start, type, detach, reattach --------------------------------------------------------


def test_type_detach_and_reattach_with_the_replay(rt: Runtime, ctr: str, tmp_path: Path,
                                                  tmux: Tmux) -> None:
    s = session(rt, ctr, tmp_path)
    info = s.info()
    assert info["command"] == ["/bin/sh"]  # root's login shell in the busybox image
    assert proc_ppid(info["pid"]) == s.waiter == info["waiter_pid"]
    mode = os.stat(s.socket_path)
    assert stat.S_ISSOCK(mode.st_mode) and stat.S_IMODE(mode.st_mode) == 0o600
    assert mode.st_uid == os.getuid()
    first = s.attach(tmux, "first")
    tmux.keys(first, "echo hel''lo-$((6*7))", "Enter")
    tmux.wait_for(first, "hello-42")
    s.wait_clients(1)
    tmux.keys(first, "C-p", "C-q")
    assert tmux.status(first) == 0
    s.wait_clients(0)
    assert s.info()["idle_since"] is not None
    assert Path(f"/proc/{info['pid']}").exists()  # still running, detached
    again = s.attach(tmux, "again")
    tmux.wait_for(again, "hello-42")  # the replay: nothing was typed here
    bare = s.attach(tmux, "bare", "--no-replay")
    tmux.keys(bare, "echo b''ye", "Enter")
    tmux.wait_for(bare, "bye")
    tmux.wait_for(again, "bye")
    assert "hello-42" not in tmux.screen(bare)
    tmux.keys(again, "exit 3", "Enter")
    assert tmux.status(again) == 3
    assert tmux.status(bare) == 3
    s.assert_ended()
    assert sorted(os.listdir(rt.root / ctr)) == ["state.json"]


def test_detach_keys_are_configurable_and_a_half_sequence_is_typed(
        rt: Runtime, ctr: str, tmp_path: Path, tmux: Tmux) -> None:
    s = session(rt, ctr, tmp_path, command=("sh",))
    pane = s.attach(tmux, "pane", "--detach-keys", "ctrl-a,d")
    tmux.keys(pane, "C-p", "C-q")  # docker's keys are plain keys now
    tmux.keys(pane, "echo st''ill-here", "Enter")
    tmux.wait_for(pane, "still-here")
    tmux.keys(pane, "C-a", "d")
    assert tmux.status(pane) == 0
    info = s.info()
    assert info["command"] == ["sh"]
    table = rt("sessions", s.ctr, check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "PID", "COMMAND", "STARTED", "CLIENTS", "IDLE", "SINCE"]
    row = next(line.split() for line in table[1:] if line.split()[0] == s.name)
    assert row == [s.name, str(info["pid"]), "sh", info["started"], "0", info["idle_since"]]
    assert rt("kill-session", s.ctr, s.name).returncode == 0
    s.assert_ended()


def test_two_clients_see_the_same_output_and_the_last_resize_wins(
        rt: Runtime, ctr: str, tmp_path: Path, tmux: Tmux) -> None:
    s = session(rt, ctr, tmp_path, flags=("--size", "33x111"))
    one = s.attach(tmux, "one", rows=20, cols=70)
    s.wait_clients(1)
    two = s.attach(tmux, "two", rows=30, cols=100)
    s.wait_clients(2)
    tmux.keys(one, "stty size", "Enter")
    tmux.wait_for(one, "30 100")  # two attached last: its size is the pty's
    tmux.wait_for(two, "30 100")
    tmux("resize-window", "-t", one, "-x", "90", "-y", "25")
    tmux.keys(two, "clear; stty size", "Enter")
    tmux.wait_for(two, "25 90")
    tmux.wait_for(one, "25 90")
    assert rt("kill-session", s.ctr, s.name).returncode == 0
    assert tmux.status(one) == 128 + signal.SIGKILL
    assert tmux.status(two) == 128 + signal.SIGKILL
    s.assert_ended()


def test_the_size_given_is_the_pty_s_from_the_start(rt: Runtime, ctr: str, tmp_path: Path,
                                                   tmux: Tmux) -> None:
    s = session(rt, ctr, tmp_path, flags=("--size", "33x111"),
                command=("sh", "-c", "stty size; exec sleep 60"))
    pane = s.attach(tmux, "pane")
    tmux.wait_for(pane, "33 111")  # printed before anyone attached: the replay
    assert rt("kill-session", s.ctr, s.name, "TERM").returncode == 0
    assert tmux.status(pane) == 128 + signal.SIGTERM
    s.assert_ended()


def test_the_process_holds_only_its_terminal(rt: Runtime, ctr: str, tmp_path: Path) -> None:
    """The waiter's socket, pidfd and master must be out of the process's reach."""
    s = session(rt, ctr, tmp_path, command=("sleep", "60"))
    pid = s.info()["pid"]
    fds = {name: os.readlink(f"/proc/{pid}/fd/{name}") for name in os.listdir(f"/proc/{pid}/fd")}
    assert sorted(fds) == ["0", "1", "2"]
    assert len(set(fds.values())) == 1 and fds["0"].startswith("/dev/pts/")
    assert rt("kill-session", s.ctr, s.name).returncode == 0
    s.assert_ended()


def test_the_waiter_keeps_none_of_the_caller_s_fds(rt: Runtime, ctr: str,
                                                   tmp_path: Path) -> None:
    """A caller's pipe handed down to pyrunc must not stay open for the session's life."""
    read_end, write_end = os.pipe()
    name = f"s{uuid.uuid4().hex[:8]}"
    pid_file = tmp_path / "w.pid"
    try:
        done = subprocess.run([pyrunc_binary(), "--root", str(rt.root), "exec", "--session", name,
                               "--pid-file", str(pid_file), ctr, "sleep", "60"],
                              pass_fds=[write_end], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        os.close(write_end)
        write_end = -1
        assert select.select([read_end], [], [], DEADLINE)[0]
        assert os.read(read_end, 1) == b""  # every writer gone, the waiter included
        waiter = int(pid_file.read_text())
        assert sorted(os.listdir(f"/proc/{waiter}/fd"), key=int)[:3] == ["0", "1", "2"]
        assert all(os.readlink(f"/proc/{waiter}/fd/{fd}") == "/dev/null" for fd in (0, 1, 2))
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    assert rt("kill-session", ctr, name).returncode == 0


# --- endings -----------------------------------------------------------------------------


def test_process_exit_ends_every_client_with_its_status(rt: Runtime, ctr: str, tmp_path: Path,
                                                        tmux: Tmux) -> None:
    s = session(rt, ctr, tmp_path)
    panes = []
    for i in range(3):
        panes.append(s.attach(tmux, f"p{i}"))
        s.wait_clients(i + 1)
    tmux.keys(panes[1], "exit 7", "Enter")
    assert [tmux.status(p) for p in panes] == [7, 7, 7]
    s.assert_ended()
    assert rt("attach", s.ctr, s.name).returncode != 0


def test_the_waiter_exits_with_the_process_s_status(rt: Runtime, ctr: str,
                                                    tmp_path: Path) -> None:
    """runsc's design: the pid file names the waiter, a subreaper reaps it with the status."""
    script = (
        "import ctypes, os, subprocess, sys\n"
        "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)\n"
        "subprocess.run(sys.argv[2:], check=True, stdout=subprocess.DEVNULL)\n"
        "pid = int(open(sys.argv[1]).read())\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
    pid_file = tmp_path / "w.pid"
    name = f"s{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        ["python3", "-c", script, str(pid_file), pyrunc_binary(), "--root", str(rt.root), "exec",
         "--session", name, "--pid-file", str(pid_file), ctr, "sh", "-c", "sleep 0.3; exit 9"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "9"
    assert not (rt.root / ctr / f"sess.{name}").exists()


def test_idle_deadline_kills_only_when_nobody_is_attached(rt: Runtime, ctr: str, tmp_path: Path,
                                                          tmux: Tmux) -> None:
    # Long enough for attach to start on a loaded machine before it runs out.
    s = session(rt, ctr, tmp_path, flags=("--session-idle", "3s"))
    pane = s.attach(tmux, "pane")
    s.wait_clients(1)
    info = s.info()
    assert info["idle_timeout"] == 3.0 and info["idle_since"] is None
    pid = info["pid"]
    time.sleep(4.0)  # past the deadline, attached all along
    assert Path(f"/proc/{pid}").exists()
    detached_at = time.monotonic()
    tmux.keys(pane, "C-p", "C-q")
    assert tmux.status(pane) == 0
    s.assert_ended()
    assert time.monotonic() - detached_at < DEADLINE
    assert wait_gone(pid)


def test_idle_deadline_counts_from_the_start_when_nobody_ever_attaches(
        rt: Runtime, ctr: str, tmp_path: Path) -> None:
    started = time.monotonic()
    s = session(rt, ctr, tmp_path, flags=("--session-idle", "500ms"), command=("sleep", "60"))
    s.assert_ended()
    assert time.monotonic() - started < 30  # killed at the deadline, long before sleep's end


def test_delete_ends_the_session_and_leaves_nothing(
        rt: Runtime, busybox_bundle_template: Path, tmp_path: Path, tmux: Tmux) -> None:
    bundle = make_bundle(busybox_bundle_template, tmp_path / "bundle")
    with running(rt, bundle) as other:
        s = session(rt, other, tmp_path)
        pane = s.attach(tmux, "pane")
        s.wait_clients(1)
        done = rt("delete", "--force", other)
        assert done.returncode == 0, done.stderr
        assert tmux.status(pane) == 128 + signal.SIGKILL
        s.assert_ended()
        assert not (rt.root / other).exists()


def test_a_stopped_container_ends_its_sessions(
        rt: Runtime, busybox_bundle_template: Path, tmp_path: Path, tmux: Tmux) -> None:
    bundle = make_bundle(busybox_bundle_template, tmp_path / "bundle")
    with running(rt, bundle) as other:
        s = session(rt, other, tmp_path)
        pane = s.attach(tmux, "pane")
        s.wait_clients(1)
        assert rt("kill", other, "KILL").returncode == 0
        assert tmux.status(pane) == 128 + signal.SIGKILL
        s.assert_ended()
        assert sorted(os.listdir(rt.root / other)) == ["state.json"]


# --- bad input ---------------------------------------------------------------------------


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode != 0
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.fixture
def live(rt: Runtime, ctr: str, tmp_path: Path) -> Iterator[Session]:
    """A session that every bad input below must leave running and answering."""
    s = session(rt, ctr, tmp_path, command=("sh",))
    yield s
    info = s.info()
    assert info["clients"] == 0 and Path(f"/proc/{info['pid']}").exists()
    rt("kill-session", s.ctr, s.name)
    s.assert_ended()


@pytest.mark.parametrize(("args", "words"), [
    (["exec", "--session", "x", "nosuch"], ["nosuch", "does not exist"]),
    (["attach", "nosuch", "x"], ["nosuch", "does not exist"]),
    (["sessions", "nosuch"], ["nosuch", "does not exist"]),
    (["kill-session", "nosuch", "x"], ["nosuch", "does not exist"]),
    (["exec", "--session", "a/b", "CTR"], ["invalid session name", "a/b"]),
    (["exec", "--session", "x", "--size", "80", "CTR"], ["invalid size", "80"]),
    (["exec", "--session", "x", "--size", "0x80", "CTR"], ["invalid size"]),
    (["exec", "--session", "x", "--session-idle", "soon", "CTR"], ["invalid duration", "soon"]),
    (["exec", "--session", "x", "--session-idle", "0s", "CTR"], ["--session-idle"]),
    (["exec", "--session", "x", "--console-socket", "/x", "CTR"], ["--console-socket"]),
    (["attach", "CTR", "nosuch"], ["nosuch", "not found"]),
    (["attach", "CTR", "../x"], ["invalid session name"]),
    (["kill-session", "CTR", "nosuch"], ["nosuch", "not found"]),
    (["kill-session", "CTR", "SESSION", "NOSIG"], ["unknown signal", "NOSIG"]),
    (["attach", "--detach-keys", "ctrl-", "CTR", "SESSION"], ["invalid detach keys"]),
    (["exec", "--session", "x", "CTR", "no-such-binary"], ["no-such-binary"]),
])
def test_bad_input_is_one_line_and_leaves_the_session_running(
        rt: Runtime, live: Session, args: list[str], words: list[str]) -> None:
    argv = [{"CTR": live.ctr, "SESSION": live.name}.get(a, a) for a in args]
    before = sorted(os.listdir(rt.root / live.ctr))
    one_line_error(rt(*argv), *words)
    assert sorted(os.listdir(rt.root / live.ctr)) == before
    assert "sess." + live.name in before


def test_a_name_in_use_is_refused(rt: Runtime, live: Session) -> None:
    done = rt("exec", "--session", live.name, live.ctr, "sleep", "60")
    assert done.returncode == 255
    one_line_error(done, live.name, "already exists")
    assert live.info()["command"] == ["sh"]


def test_a_stale_socket_from_a_killed_waiter_is_taken_over(rt: Runtime, ctr: str,
                                                          tmp_path: Path) -> None:
    s = session(rt, ctr, tmp_path, command=("sleep", "60"))
    pid = s.info()["pid"]
    os.kill(s.waiter, signal.SIGKILL)
    assert wait_gone(s.waiter) and wait_gone(pid)  # the process dies with its waiter
    assert s.socket_path.exists()
    assert rt("sessions", s.ctr, check=True).stdout.count("\n") == 1  # the header only
    done = rt("exec", "--session", s.name, ctr, "sleep", "60")
    assert done.returncode == 0, done.stderr
    assert Session(rt, ctr, s.name, 0).info()["command"] == ["sleep", "60"]
    assert rt("kill-session", ctr, s.name).returncode == 0


def test_exec_session_in_a_stopped_container(
        rt: Runtime, busybox_bundle_template: Path, tmp_path: Path) -> None:
    bundle = make_bundle(busybox_bundle_template, tmp_path / "bundle")
    with running(rt, bundle) as other:
        rt("kill", other, "KILL", check=True)
        assert wait_gone(rt.state(other)["pid"] or 1) or True
        deadline = time.monotonic() + DEADLINE
        while rt.state(other)["status"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        done = rt("exec", "--session", "x", other)
        assert done.returncode == 255
        one_line_error(done, "stopped")
        assert sorted(os.listdir(rt.root / other)) == ["state.json"]


def raw_client(s: Session) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(s.socket_path))
    sock.settimeout(DEADLINE)
    return sock


def test_garbage_drops_only_that_client(rt: Runtime, live: Session, tmux: Tmux) -> None:
    pane = live.attach(tmux, "pane")
    live.wait_clients(1)
    for garbage in (b"GET / HTTP/1.0\r\n\r\n",
                    protocol.HEADER.pack(protocol.INPUT, 1 << 30),
                    protocol.frame(protocol.INPUT, b"rm -rf /\r"),  # keys before a hello
                    protocol.frame(protocol.HELLO, b"a\x07")):
        with raw_client(live) as sock:
            sock.sendall(garbage)
            assert sock.recv(100) == b""  # dropped
    tmux.keys(pane, "echo al''ive", "Enter")
    tmux.wait_for(pane, "alive")
    tmux.keys(pane, "C-p", "C-q")
    assert tmux.status(pane) == 0


def test_a_silent_client_is_dropped_and_others_are_served(rt: Runtime, live: Session) -> None:
    with raw_client(live) as silent:
        started = time.monotonic()
        assert live.info()["clients"] == 0  # the silent one is no client
        assert silent.recv(100) == b""
        assert time.monotonic() - started < DEADLINE


def test_a_client_killed_mid_attach_leaves_the_session_running(
        rt: Runtime, live: Session, tmux: Tmux) -> None:
    pane = live.attach(tmux, "pane")
    live.wait_clients(1)
    tmux.keys(pane, "echo ty''ped", "Enter")
    tmux.wait_for(pane, "typed")
    os.kill(tmux.attach_pid(pane), signal.SIGKILL)
    assert tmux.status(pane) == 128 + signal.SIGKILL
    live.wait_clients(0)
    again = live.attach(tmux, "again")
    tmux.wait_for(again, "typed")
    tmux.keys(again, "C-p", "C-q")
    assert tmux.status(again) == 0


def test_sigterm_ends_attach_alone_and_restores_the_terminal(
        rt: Runtime, live: Session, tmux: Tmux) -> None:
    script = '"$@"; echo "status=$?"; stty -a | tr " " "\\n" | grep -x icanon; sleep 60'
    pane = tmux.open("pane", ["sh", "-c", script, "sh", pyrunc_binary(), "--root", str(rt.root),
                              "attach", live.ctr, live.name])
    live.wait_clients(1)
    attach_pid = tmux.attach_pid(pane)
    tty = tmux("display", "-p", "-t", pane, "#{pane_tty}").strip()
    modes = subprocess.run(["stty", "-F", tty, "-a"], capture_output=True, text=True).stdout
    assert "-icanon" in modes.split()
    os.kill(attach_pid, signal.SIGTERM)
    tmux.wait_for(pane, f"status={128 + signal.SIGTERM}")
    tmux.wait_for(pane, "\nicanon")  # canonical again: the terminal was restored
    live.wait_clients(0)


def test_another_user_is_refused_by_its_credentials(rt: Runtime, live: Session) -> None:
    """Even with CAP_DAC_OVERRIDE past the 0600 mode, the waiter checks SO_PEERCRED."""
    script = (
        "import os, socket, sys, prctl\n"
        "prctl.set_keepcaps(True)\n"
        "os.setresgid(1000, 1000, 1000); os.setresuid(1000, 1000, 1000)\n"
        "prctl.cap_effective.dac_override = True\n"
        "s = socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect(sys.argv[1])\n"
        "print('connected')\n"
        "try:\n"
        "    s.sendall(bytes.fromhex(sys.argv[2])); print(repr(s.recv(100)))\n"
        "except (BrokenPipeError, ConnectionResetError):\n"
        "    print('closed')\n")
    query = protocol.frame(protocol.HELLO, protocol.QUERY).hex()
    venv_python = str(Path(pyrunc_binary()).parent / "python")
    done = subprocess.run([venv_python, "-c", script, str(live.socket_path), query],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    connected, answer = done.stdout.split()
    assert connected == "connected"  # past the file mode: refused by its credentials
    assert answer in ("b''", "closed")
    with raw_client(live) as sock:  # we, its own user, are answered
        sock.sendall(bytes.fromhex(query))
        assert sock.recv(100).startswith(protocol.INFO)


def test_a_full_state_directory_is_one_line_and_starts_nothing(
        busybox_bundle_template: Path, tmp_path: Path) -> None:
    root = tmp_path / "small-root"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64", "tmpfs", str(root)],
                   check=True)
    try:
        small = Runtime(pyrunc_binary(), root)
        bundle = make_bundle(busybox_bundle_template, tmp_path / "bundle")
        with running(small, bundle) as other:
            filler = root / "filler"
            filler.mkdir()
            with pytest.raises(OSError):
                for i in range(100):
                    (filler / str(i)).touch()
            done = small("exec", "--session", "full", other, "sleep", "60")
            assert done.returncode == 255
            one_line_error(done, "full", "No space left on device")
            assert sorted(os.listdir(root / other)) == ["state.json"]
            init = small.state(other)["pid"]
            assert cgroup_pids(init) == {init}  # no process was started
            for entry in filler.iterdir():
                entry.unlink()
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)
