"""exec's own failures: one line naming the cause, exit 255, nothing left behind.

"Nothing left behind" is checked where it could go wrong: the container's
pids cgroup holds only its init afterwards, and no pid file was written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Runtime, pyrunc_binary
from tests.exec_support import cgroup_pids, spawn_with_fds

pytestmark = pytest.mark.root





def assert_clean_failure(rt: Runtime, ctr: str, init: int, argv: list[str], message: str,
                         tmp_path: Path) -> None:
    """Run ``pyrunc exec ARGV`` with a pid file; it must fail the one way exec fails."""
    pid_file = tmp_path / "pid"
    done = rt("exec", "--pid-file", str(pid_file), *argv)
    assert done.returncode == 255, (done.returncode, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0]
    assert not pid_file.exists()
    assert cgroup_pids(init) == {init}


@pytest.mark.parametrize(("flags", "args", "message"), [
    ((), ["no-such-binary"], 'exec "no-such-binary": executable file not found in $PATH'),
    ((), ["/bin/no-such-binary"], 'exec "/bin/no-such-binary": no such file or directory'),
    ((), ["/etc/passwd"], 'exec "/etc/passwd": permission denied'),
    (("--cwd", "/no/such/dir"), ["true"], 'chdir to cwd "/no/such/dir": no such file'),
    (("--cwd", "/etc/passwd"), ["true"], 'chdir to cwd "/etc/passwd": not a directory'),
    (("--cwd", "relative"), ["true"], "Cwd must be an absolute path"),
    (("-u", "nosuchuser"), ["true"], "unable to find user nosuchuser"),
    (("-u", "1000:nosuchgroup"), ["true"], "unable to find group nosuchgroup"),
    (("-u", "-5"), ["true"], "uid -5 is out of range"),
    (("-u", "1000:"), ["true"], "invalid --user value"),
    (("-u", "4294967295"), ["true"], "uid 4294967295 is out of range"),
    (("-g", "-1"), ["true"], "additional-gids must be a positive number -1"),
    (("-g", "nosuchgroup"), ["true"], "unable to find group nosuchgroup"),
    (("--cap", "CAP_NOPE"), ["true"], '--cap "CAP_NOPE": unknown capability'),
    (("--cap", "cap_chown"), ["true"], '--cap "cap_chown": unknown capability'),
    (("-c", "SYS_ADMIN"), ["true"], '--cap "SYS_ADMIN": unknown capability'),
    (("--pass-fd", "3"), ["true"], 'invalid --pass-fd value "3"'),
    (("--pass-fd", "a:b"), ["true"], 'invalid --pass-fd value "a:b"'),
    (("--pass-fd", "-1:3"), ["true"], 'invalid --pass-fd value "-1:3"'),
    (("--pass-fd", "97:5"), ["true"], "--pass-fd 97:5: fd 97 is not open"),
    (("--preserve-fds", "4"), ["true"], "--preserve-fds 4: fd 3 is not open"),
    (("--exec-fd", "97"), ["true"], "--exec-fd 97: fd is not open"),
    (("--timeout", "soon"), ["true"], 'invalid duration "soon"'),
    (("--timeout", "-1s"), ["true"], 'invalid duration "-1s"'),
    (("--apparmor", "some-profile"), ["true"], "AppArmor is not enabled on this host"),
    (("--process-label", "system_u:system_r:svirt_lxc_net_t:s0"), ["true"],
     "SELinux is not enabled on this host"),
    (("--cgroup", "../escape"), ["true"], "../escape is not a sub cgroup path"),
    (("-e", "NOEQUALS"), ["true"], 'invalid environment variable: "NOEQUALS"'),
    (("-e", "=value"), ["true"], "environment variable name can't be empty"),
    (("-t", "-d"), ["true"], "cannot allocate tty if pyrunc will detach"),
    (("--console-socket", "/nonexistent.sock"), ["true"], "--console-socket needs a terminal"),
    (("-t", "--console-socket", "/nonexistent.sock"), ["true"],
     "console socket /nonexistent.sock: no such file or directory"),
])
def test_bad_input(rt: Runtime, ctr: str, init: int, tmp_path: Path, flags: tuple[str, ...],
                   args: list[str], message: str) -> None:
    assert_clean_failure(rt, ctr, init, [*flags, ctr, *args], message, tmp_path)


def test_unknown_container(rt: Runtime, ctr: str, init: int, tmp_path: Path) -> None:
    assert_clean_failure(rt, ctr, init, ["no-such-container", "true"], "does not exist", tmp_path)


def test_missing_command(rt: Runtime, ctr: str, init: int, tmp_path: Path) -> None:
    assert_clean_failure(rt, ctr, init, [ctr], "args cannot be empty", tmp_path)


def test_unwritable_pid_file_kills_the_started_process(rt: Runtime, ctr: str, init: int) -> None:
    done = rt("exec", "--pid-file", "/nonexistent/dir/pid", ctr, "sleep", "30")
    assert done.returncode == 255
    assert "pid file /nonexistent/dir/pid" in done.stderr
    assert cgroup_pids(init) == {init}


@pytest.mark.parametrize(("content", "message"), [
    ("{", "invalid JSON"),
    ("[]", "Input should be a valid dictionary"),
    ('{"args": [], "cwd": "/", "user": {"uid": 0, "gid": 0}}', "args"),
    ('{"args": ["true"], "cwd": "tmp", "user": {"uid": 0, "gid": 0}}', "cwd"),
    ('{"args": ["true"], "user": {"uid": 0, "gid": 0}}', "cwd: Field required"),
    ('{"args": ["true"], "cwd": "/", "user": {"uid": "root", "gid": 0}}', "user.uid"),
    ('{"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["X"]}',
     'invalid environment variable: "X"'),
    ('{"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, '
     '"rlimits": [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]}', "RLIMIT_NOPE"),
    ('{"args": ["/bin/true"], "cwd": "/nope", "user": {"uid": 0, "gid": 0}}',
     'chdir to cwd "/nope": no such file or directory'),
])
def test_bad_process_file(rt: Runtime, ctr: str, init: int, tmp_path: Path, content: str,
                          message: str) -> None:
    path = tmp_path / "process.json"
    path.write_text(content)
    assert_clean_failure(rt, ctr, init, ["-p", str(path), ctr], message, tmp_path)


def test_missing_process_file(rt: Runtime, ctr: str, init: int, tmp_path: Path) -> None:
    assert_clean_failure(rt, ctr, init, ["-p", str(tmp_path / "absent.json"), ctr],
                         "no such file or directory", tmp_path)


def test_preserve_fds_counts_only_the_caller_s_fds(rt: Runtime, ctr: str,
                                                   tmp_path: Path) -> None:
    """With fd 3 free, pyrunc's own --log file lands there; it is not the caller's to pass."""
    log = tmp_path / "log"
    done = spawn_with_fds([pyrunc_binary(), "--root", str(rt.root), "--log", str(log),
                           "exec", "--preserve-fds", "1", ctr, "true"], {})
    assert done.returncode == 255
    assert "--preserve-fds 1: fd 3 is not open" in log.read_text()


def test_pass_fd_target_given_twice(rt: Runtime, ctr: str, tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        done = spawn_with_fds([pyrunc_binary(), "--root", str(rt.root), "exec",
                               "--pass-fd", "5:7", "--pass-fd", "6:7", ctr, "true"],
                              {5: r, 6: w})
    finally:
        os.close(r)
        os.close(w)
    assert done.returncode == 255
    assert "fd 7 is already given to the process" in done.stderr


def test_error_goes_to_the_log_file(rt: Runtime, ctr: str, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    done = rt("--log", str(log), "--log-format", "json", "exec", ctr, "no-such-binary")
    assert done.returncode == 255
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["level"] == "error"
    assert "executable file not found" in record["msg"]


def test_process_file_terminal_detached_without_socket(rt: Runtime, ctr: str, init: int,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"terminal": True, "args": ["/bin/true"], "cwd": "/",
                                "user": {"uid": 0, "gid": 0}}))
    assert_clean_failure(rt, ctr, init, ["-d", "-p", str(path), ctr],
                         "cannot allocate tty if pyrunc will detach", tmp_path)
