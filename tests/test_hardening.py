"""Configs and environments that broke pyrunc where runc works (issue 10), on real containers."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from runpy_exec.linux import procfs
from runpy_exec.linux.proc import status_field
from runpy_exec.linux.syscalls import CLONE_NEWNS, MS_BIND, MS_PRIVATE, MS_REC, unshare
from runpy_exec.linux.syscalls import mount as mount_call
from tests.conftest import Runtime, edit_config, running
from tests.forking import in_child
from tests.old_profiles import docker_2019_profile

pytestmark = pytest.mark.root


def new_id() -> str:
    return f"h{uuid.uuid4().hex[:10]}"


def create(pyrunc: Runtime, bundle: Path, container_id: str, out: Path) -> None:
    """create with the container's stdio on a file (a pipe would stay open in the init)."""
    with out.open("w") as stdout:
        created = subprocess.run([pyrunc.binary, "--root", str(pyrunc.root), "create",
                                  "--bundle", str(bundle), container_id],
                                 stdin=subprocess.DEVNULL, stdout=stdout,
                                 stderr=subprocess.STDOUT, timeout=60)
    assert created.returncode == 0, out.read_text()


def with_old_docker_profile(config: dict[str, Any]) -> None:
    config["process"]["noNewPrivileges"] = False
    config["linux"]["seccomp"] = docker_2019_profile()


def test_old_docker_profile_without_close_range_runs_the_process(
        pyrunc: Runtime, bundle: Path, tmp_path: Path) -> None:
    """create + start under a profile that predates close_range: the process runs,
    and start says so with 0."""
    def change(config: dict[str, Any]) -> None:
        with_old_docker_profile(config)
        config["process"]["args"] = ["sh", "-c", "echo ran as $(id -u)"]

    edit_config(bundle, change)
    container_id = new_id()
    out = tmp_path / "out"
    create(pyrunc, bundle, container_id, out)
    try:
        started = pyrunc("start", container_id)
        assert started.returncode == 0, started.stderr
        for _ in range(100):
            if pyrunc.state(container_id)["status"] == "stopped":
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert out.read_text() == "ran as 0\n"
    finally:
        pyrunc("delete", "--force", container_id)


def test_old_docker_profile_exec(pyrunc: Runtime, bundle: Path) -> None:
    """exec shares the setup path: same profile, same result as runc."""
    edit_config(bundle, with_old_docker_profile)
    with running(pyrunc, bundle) as container_id:
        result = pyrunc("exec", container_id, "sh", "-c", "echo exec ran")
        assert (result.returncode, result.stdout) == (0, "exec ran\n"), result.stderr


def test_start_fails_when_the_process_cannot_exec(pyrunc: Runtime, bundle: Path,
                                                  tmp_path: Path) -> None:
    """A process whose execve fails after create (here: the profile denies execve)
    makes start fail with the reason, not exit 0 while nothing runs."""
    def change(config: dict[str, Any]) -> None:
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["execve", "execveat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 13}]}

    edit_config(bundle, change)
    container_id = new_id()
    create(pyrunc, bundle, container_id, tmp_path / "out")
    try:
        started = pyrunc("start", container_id)
        assert started.returncode != 0
        assert "exec" in started.stderr and "permission denied" in started.stderr
        assert len(started.stderr.strip().splitlines()) == 1
        assert pyrunc.state(container_id)["status"] == "stopped"
    finally:
        pyrunc("delete", "--force", container_id)


def test_user_without_gid_runs_as_runc_runs_it(pyrunc: Runtime, runc: Runtime,
                                               bundle: Path) -> None:
    """runc v1.2.0's capabilities.bats sets ``.process.user = {"uid": 0}``: gid is 0."""
    def change(config: dict[str, Any]) -> None:
        config["process"]["user"] = {"uid": 0}
        config["process"]["args"] = ["id"]

    edit_config(bundle, change)
    outputs = []
    for runtime in (pyrunc, runc):
        result = runtime("run", "--bundle", str(bundle), new_id(), stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].startswith("uid=0(root) gid=0(root)")


def full_listener(path: Path) -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket that never accepts, with its backlog filled."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    pending: list[socket.socket] = []
    while True:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        try:
            client.connect(str(path))
        except BlockingIOError:
            client.close()
            return listener, pending
        pending.append(client)


@pytest.mark.parametrize("command", ["exec", "create"])
def test_console_socket_with_a_full_backlog_fails_at_once(
        pyrunc: Runtime, bundle: Path, tmp_path: Path, command: str) -> None:
    """runc fails with EAGAIN; pyrunc used to block in connect() for good."""
    path = tmp_path / "console.sock"
    listener, pending = full_listener(path)
    try:
        if command == "exec":
            with running(pyrunc, bundle) as container_id:
                result = pyrunc("exec", "-t", "-d", "--console-socket", str(path),
                                container_id, "true", timeout=20, stdin=subprocess.DEVNULL)
                # nothing was started: the container holds its init and this ps alone
                assert len(pyrunc("exec", container_id, "ps").stdout.splitlines()) == 3
        else:
            edit_config(bundle, lambda config: config["process"].update(terminal=True))
            container_id = new_id()
            result = pyrunc("create", "--bundle", str(bundle), "--console-socket", str(path),
                            container_id, timeout=20, stdin=subprocess.DEVNULL)
            assert pyrunc("state", container_id).returncode != 0
    finally:
        for client in pending:
            client.close()
        listener.close()
    assert result.returncode != 0
    assert result.stderr == (f"console socket {path}: resource temporarily unavailable "
                             "(its listen backlog is full: nobody accepts)\n")


def pinned_to_cpu0() -> None:
    os.sched_setaffinity(0, {0})


def cpus_allowed(pid: int) -> str | None:
    return status_field(pid, "Cpus_allowed_list")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
@pytest.mark.parametrize("cpuset", [None, "1"])
def test_processes_do_not_inherit_the_callers_cpu_mask(
        pyrunc: Runtime, bundle: Path, tmp_path: Path, cpuset: str | None) -> None:
    """runc#4814: a caller pinned to CPU 0 starts the init and an exec'd process;
    both get the container's CPUs (all of the test's, or its cpuset), not CPU 0."""
    expected = cpuset or cpus_allowed(os.getpid())
    if cpuset:
        edit_config(bundle, lambda config: config["linux"].setdefault("resources", {})
                    .setdefault("cpu", {}).update(cpus=cpuset))
    container_id = new_id()
    pid_file = tmp_path / "exec.pid"
    try:
        for args in (["run", "-d", "--bundle", str(bundle), container_id],
                     ["exec", "-d", "--pid-file", str(pid_file), container_id, "sleep", "60"]):
            result = subprocess.run([pyrunc.binary, "--root", str(pyrunc.root), *args],
                                    preexec_fn=pinned_to_cpu0, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    timeout=60)
            assert result.returncode == 0
        init = pyrunc.state(container_id)["pid"]
        assert cpus_allowed(init) == expected
        # --pid-file names the waiter (runsc's way); the process is its child.
        waiter = int(pid_file.read_text())
        process = int(Path(f"/proc/{waiter}/task/{waiter}/children").read_text().split()[0])
        assert cpus_allowed(process) == expected
    finally:
        pyrunc("delete", "--force", container_id)


# --- the 2025 runc CVEs, each with its attack -----------------------------------


def hostile_bundle(bundle: Path, busybox_rootfs: Path, tmp_path: Path,
                   plant: dict[str, str]) -> Path:
    """A writable copy of the busybox rootfs with symlinks planted in its /dev, used
    as the container's /dev (no tmpfs over it, so what the image has is what runs)."""
    rootfs = tmp_path / "hostile-rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    for name, target in plant.items():
        (rootfs / name).symlink_to(target)

    def change(config: dict[str, Any]) -> None:
        config["root"] = {"path": str(rootfs), "readonly": False}
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]

    edit_config(bundle, change)
    return rootfs


def test_cve_2025_31133_dev_null_symlink_is_not_used_for_masking(
        pyrunc: Runtime, bundle: Path, busybox_bundle_template: Path, tmp_path: Path) -> None:
    """The image's /dev/null is a symlink to the host's core_pattern (procfs is not
    namespaced there): masking by path would bind that file, writable, over
    the masked /proc files.  create fails cleanly instead, as runc 1.2.8 does."""
    hostile_bundle(bundle, busybox_bundle_template / "rootfs", tmp_path,
                   {"dev/null": "/proc/sys/kernel/core_pattern"})
    container_id = new_id()
    result = pyrunc("create", "--bundle", str(bundle), container_id, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert "/dev/null is not the null device" in result.stderr
    assert pyrunc("state", container_id).returncode != 0
    assert pyrunc("list", "-q").stdout == ""


def test_masking_works_with_a_real_dev_null(
        pyrunc: Runtime, bundle: Path, busybox_bundle_template: Path, tmp_path: Path) -> None:
    """The same image without the planted link: masked files read empty from the fd-bound
    null device, masked directories are empty."""
    hostile_bundle(bundle, busybox_bundle_template / "rootfs", tmp_path, {})
    probe = "wc -c < /proc/keys; ls /sys/firmware | wc -l; stat -c %t:%T /proc/keys"
    edit_config(bundle, lambda config: config["process"].update(args=["sh", "-c", probe]))
    result = pyrunc("run", "--bundle", str(bundle), new_id(), stdin=subprocess.DEVNULL)
    assert (result.returncode, result.stdout.split()) == (0, ["0", "0", "1:3"]), result.stderr


class ConsoleReceiver:
    """A console socket that accepts one connection and keeps the fd it is sent."""

    def __init__(self, path: Path) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.fds: list[int] = []
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 64, 1)
            self.fds.extend(fds)

    def close(self) -> None:
        self.listener.close()
        for fd in self.fds:
            os.close(fd)


def test_cve_2025_52565_dev_console_symlink_is_not_followed(
        pyrunc: Runtime, bundle: Path, busybox_bundle_template: Path, tmp_path: Path) -> None:
    """The image's /dev/console is a symlink to the host's core_pattern: binding the pty
    by path onto it would land on core_pattern.  create refuses, one line."""
    hostile_bundle(bundle, busybox_bundle_template / "rootfs", tmp_path,
                   {"dev/console": "/proc/sys/kernel/core_pattern"})
    edit_config(bundle, lambda config: config["process"].update(terminal=True))
    receiver = ConsoleReceiver(tmp_path / "console.sock")
    container_id = new_id()
    try:
        result = pyrunc("create", "--bundle", str(bundle), "--console-socket",
                        str(tmp_path / "console.sock"), container_id,
                        stdin=subprocess.DEVNULL)
    finally:
        receiver.close()
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert "/dev/console is a symlink" in result.stderr
    assert pyrunc("state", container_id).returncode != 0


def test_console_is_bound_from_the_pty_fd(pyrunc: Runtime, bundle: Path,
                                          tmp_path: Path) -> None:
    """Without an attack, /dev/console is the container's pty (a pts device, 136:N)."""
    edit_config(bundle, lambda config: config["process"].update(terminal=True))
    receiver = ConsoleReceiver(tmp_path / "console.sock")
    container_id = new_id()
    try:
        pyrunc.run_detached("run", "-d", "--bundle", str(bundle), "--console-socket",
                            str(tmp_path / "console.sock"), container_id)
        result = pyrunc("exec", container_id, "stat", "-c", "%t %F", "/dev/console")
        assert result.stdout == "88 character special file\n", result.stderr
    finally:
        pyrunc("delete", "--force", container_id)
        receiver.close()


def test_cve_2025_52881_proc_writes_refuse_an_overmounted_file(tmp_path: Path) -> None:
    """In a mount namespace where a decoy file is bound over /proc/self/oom_score_adj (what
    a container sharing mounts can arrange): a write through the /proc path lands in
    the decoy; through pyrunc's handle on that /proc it is refused (a mount on the
    way), and through a private procfs it reaches the real file."""
    decoy = tmp_path / "decoy"
    decoy.write_text("untouched")

    def body() -> None:
        unshare(CLONE_NEWNS)
        mount_call(None, "/", None, MS_REC | MS_PRIVATE)
        mount_call(str(decoy), "/proc/self/oom_score_adj", None, MS_BIND)
        host_proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY)
        with pytest.raises(OSError) as refused:
            procfs.write_file(host_proc, "self/oom_score_adj", "100")
        assert refused.value.errno == errno.EXDEV
        private = procfs.open_private()
        procfs.write_file(private, "self/oom_score_adj", "100")
        real = procfs.open_file(private, "self/oom_score_adj", os.O_RDONLY)
        assert os.read(real, 16) == b"100\n"
        assert decoy.read_text() == "untouched"

    in_child(body)
    assert decoy.read_text() == "untouched"


# --- runc v1.5.1's bats cases, as pyrunc tests ------------------------------------


def test_created_init_holds_no_host_files(pyrunc: Runtime, bundle: Path,
                                          tmp_path: Path) -> None:
    """runc v1.5.1 create.bats "detect fd leak": a created container's init holds its
    stdio, the exec fifo and pipes, nothing else: not the cgroup.procs files create
    opened, nor a file its caller happened to have open."""
    stray = os.open(tmp_path / "caller-file", os.O_CREAT | os.O_RDWR)
    container_id = new_id()
    try:
        with (tmp_path / "out").open("w") as out:
            created = subprocess.run(
                [pyrunc.binary, "--root", str(pyrunc.root), "create", "--bundle",
                 str(bundle), container_id], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, pass_fds=[stray], timeout=60)
        assert created.returncode == 0, (tmp_path / "out").read_text()
        fd_dir = Path(f"/proc/{pyrunc.state(container_id)['pid']}/fd")
        targets = {fd.name: os.readlink(fd) for fd in fd_dir.iterdir()}
        allowed = [str(tmp_path / "out"), "/dev/null"]
        for fd, target in targets.items():
            assert (int(fd) < 3 and target in allowed) or target.startswith("pipe:[") \
                or target.endswith("/exec.fifo"), (fd, target)
    finally:
        os.close(stray)
        pyrunc("delete", "--force", container_id)


def test_cap_dac_override_runs_an_owner_only_program(
        pyrunc: Runtime, bundle: Path, busybox_bundle_template: Path, tmp_path: Path) -> None:
    """runc v1.5.1 start_hello.bats: a file only root may execute runs for uid 1000 with
    CAP_DAC_OVERRIDE (execve's rule), and not without it."""
    rootfs = tmp_path / "rootfs"
    shutil.copytree(busybox_bundle_template / "rootfs", rootfs, symlinks=True)
    program = rootfs / "bin" / "busybox-owner-only"  # busybox runs "busybox*" names
    shutil.copy(rootfs / "bin" / "busybox", program)
    program.chmod(0o744)

    def change(config: dict[str, Any], dac: bool) -> None:
        config["root"] = {"path": str(rootfs), "readonly": True}
        config["process"]["user"] = {"uid": 1000, "gid": 100}
        config["process"]["args"] = ["/bin/busybox-owner-only", "echo", "ran"]
        for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            caps = config["process"]["capabilities"].setdefault(kind, [])
            if dac and "CAP_DAC_OVERRIDE" not in caps:
                caps.append("CAP_DAC_OVERRIDE")
            if not dac and "CAP_DAC_OVERRIDE" in caps:
                caps.remove("CAP_DAC_OVERRIDE")

    edit_config(bundle, lambda config: change(config, dac=False))
    denied = pyrunc("run", "--bundle", str(bundle), new_id(), stdin=subprocess.DEVNULL)
    assert denied.returncode != 0 and "permission denied" in denied.stderr
    edit_config(bundle, lambda config: change(config, dac=True))
    allowed = pyrunc("run", "--bundle", str(bundle), new_id(), stdin=subprocess.DEVNULL)
    assert (allowed.returncode, allowed.stdout) == (0, "ran\n"), allowed.stderr


def test_delete_force_kills_what_a_host_pidns_container_left(
        pyrunc: Runtime, bundle: Path) -> None:
    """runc v1.5.1 delete.bats: without a pid namespace, killing the init leaves exec'd
    processes running in the cgroup; delete --force kills them and removes it all."""
    edit_config(bundle, lambda config: config["linux"].update(namespaces=[
        ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]))
    container_id = new_id()
    pyrunc.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    try:
        init = pyrunc.state(container_id)["pid"]
        for _ in range(3):
            pyrunc.run_detached("exec", "-d", container_id, "sleep", "3600")
        cgroup = next(line.split(":", 2)[2] for line in
                      Path(f"/proc/{init}/cgroup").read_text().splitlines()
                      if line.split(":")[1] == "pids")
        procs = Path(f"/sys/fs/cgroup/pids{cgroup}/cgroup.procs")
        os.kill(init, 9)
        for _ in range(100):
            if not Path(f"/proc/{init}").exists() or \
                    status_field(init, "State", ) in (None, "Z (zombie)"):
                break
            subprocess.run(["sleep", "0.1"], check=True)
        left = [int(p) for p in procs.read_text().split()]
        assert len(left) >= 3
        result = pyrunc("delete", "--force", container_id)
        assert result.returncode == 0, result.stderr
        assert not procs.parent.exists()
        assert not any(Path(f"/proc/{pid}").exists() and status_field(pid, "State")
                       not in (None, "Z (zombie)") for pid in left)
    finally:
        pyrunc("delete", "--force", container_id)


def test_start_container_hook_gets_the_process_environment(pyrunc: Runtime,
                                                           bundle: Path) -> None:
    """runc v1.5.1 hooks.bats: a startContainer hook without env of its own runs with the
    process's environment; its failure fails run (it was once only told on stderr)."""
    def change(config: dict[str, Any], wanted: str) -> None:
        config["process"]["args"] = ["true"]
        config["process"]["env"] = ["ONE=two", "PATH=/bin"]
        config["hooks"] = {"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", f'test "$ONE" = {wanted}']}]}

    edit_config(bundle, lambda config: change(config, "two"))
    result = pyrunc("run", "--bundle", str(bundle), new_id(), stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    edit_config(bundle, lambda config: change(config, "three"))
    result = pyrunc("run", "--bundle", str(bundle), new_id(), stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "error running startContainer hook #0: /bin/sh exited with status 1" in result.stderr
