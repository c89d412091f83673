"""``pyrunc exec`` into a real pyrunc container: what the started process is and sees.

Each test reads the process's own view (id, /proc/self/status, env, fds,
/proc/self/cgroup, namespaces) or its exit status; one container, running
``sleep 3600`` without no_new_privs, serves the module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runpy_exec import create_cmd
from tests.conftest import Runtime, edit_config, imported_modules, pyrunc_binary, running
from tests.exec_support import (
    cap_mask,
    cgroup_pids,
    init_pid,
    make_bundle,
    spawn_with_fds,
    status_fields,
    wait_for_path,
)

pytestmark = pytest.mark.root

CAP_KILL, CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SYS_ADMIN, CAP_AUDIT_WRITE = 5, 10, 13, 21, 29
DEFAULT_CAPS = (CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE)



@pytest.fixture(scope="module")
def ctr(rt: Runtime, busybox_bundle_template: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    def change(config: dict[str, object]) -> None:
        process = config["process"]
        assert isinstance(process, dict)
        process["noNewPrivileges"] = False
        process["env"] = [*process["env"], "SPEC=from-config"]
        process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000}]

    bundle = make_bundle(busybox_bundle_template, tmp_path_factory.mktemp("exec-bundle"), change)
    with running(rt, bundle) as container_id:
        yield container_id



def run_exec(rt: Runtime, ctr: str, *args: str, flags: tuple[str, ...] = (),
             global_flags: tuple[str, ...] = (),
             **kwargs: object) -> subprocess.CompletedProcess[str]:
    return rt(*global_flags, "exec", *flags, ctr, *args, **kwargs)  # type: ignore[arg-type]


def status_of(rt: Runtime, ctr: str, *flags: str,
              global_flags: tuple[str, ...] = ()) -> dict[str, str]:
    done = run_exec(rt, ctr, "cat", "/proc/self/status", flags=flags, global_flags=global_flags)
    assert done.returncode == 0, done.stderr
    return status_fields(done.stdout)


# --- exit statuses -------------------------------------------------------------


@pytest.mark.parametrize(("script", "status"), [
    ("true", 0),
    ("exit 1", 1),
    ("exit 42", 42),
    ("kill -TERM $$", 128 + signal.SIGTERM),
    ("kill -KILL $$", 128 + signal.SIGKILL),
    ("kill -SEGV $$", 128 + signal.SIGSEGV),
])
def test_exit_status_is_the_process_s(rt: Runtime, ctr: str, script: str, status: int) -> None:
    done = run_exec(rt, ctr, "sh", "-c", script)
    assert done.returncode == status
    assert done.stderr == ""


# --- environment, cwd, user ------------------------------------------------------


def test_env_is_appended_keeps_commas_and_last_wins(rt: Runtime, ctr: str) -> None:
    done = run_exec(rt, ctr, "env", flags=("-e", "A=one,two", "--env", "B=x=y",
                                           "-e", "A=three,four", "-e", "SPEC=override"))
    env = done.stdout.splitlines()
    assert "A=three,four" in env
    assert "B=x=y" in env
    assert "SPEC=override" in env
    assert [line for line in env if line.startswith("A=")] == ["A=three,four"]
    assert "HOME=/root" in env
    assert any(line.startswith("PATH=") for line in env)


def test_env_commas_survive_the_full_parser_too(rt: Runtime, ctr: str) -> None:
    # Attached values are left to the Typer app rather than the fast parser.
    done = run_exec(rt, ctr, "env", flags=("-eA=1,2", "--env=B=3,4"))
    assert {"A=1,2", "B=3,4"} <= set(done.stdout.splitlines())


def test_cwd_flag_and_default(rt: Runtime, ctr: str) -> None:
    assert run_exec(rt, ctr, "pwd").stdout == "/\n"
    assert run_exec(rt, ctr, "pwd", flags=("--cwd", "/tmp")).stdout == "/tmp\n"


@pytest.mark.parametrize(("flags", "expected"), [
    ((), "uid=0(root) gid=0(root)"),
    (("-u", "1000"), "uid=1000 gid=0(root)"),
    (("--user", "1000:100"), "uid=1000 gid=100(users)"),
    (("-u", "nobody"), "uid=65534(nobody) gid=65534(nogroup)"),
    (("-u", "daemon:users"), "uid=1(daemon) gid=100(users)"),
    (("-u", "1000:100", "-g", "5", "--additional-gids", "users"),
     "uid=1000 gid=100(users) groups=5,100(users)"),
])
def test_user_and_groups(rt: Runtime, ctr: str, flags: tuple[str, ...], expected: str) -> None:
    done = run_exec(rt, ctr, "id", flags=flags)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


@pytest.mark.parametrize("flags", [(), ("-u", "1000", "--cap", "CAP_SYS_ADMIN")])
def test_rlimits_are_the_config_s(rt: Runtime, ctr: str, flags: tuple[str, ...]) -> None:
    done = run_exec(rt, ctr, "sh", "-c", "ulimit -Sn; ulimit -Hn", flags=flags)
    assert done.stdout.split() == ["512", "1000"]


def test_named_user_gets_home_from_container_passwd(rt: Runtime, ctr: str) -> None:
    done = run_exec(rt, ctr, "sh", "-c", "echo $HOME", flags=("-u", "nobody"))
    assert done.stdout == "/home\n"


def test_cwd_is_entered_as_root_before_the_user_change(rt: Runtime, ctr: str) -> None:
    # runc's rule: the runtime may enter a directory the user could not.
    done = run_exec(rt, ctr, "pwd", flags=("-u", "1000", "--cwd", "/root"))
    assert (done.returncode, done.stdout) == (0, "/root\n")


# --- capabilities and no_new_privs -----------------------------------------------


def test_default_capabilities_are_the_config_s(rt: Runtime, ctr: str) -> None:
    status = status_of(rt, ctr)
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert status[key] == cap_mask(*DEFAULT_CAPS)
    assert status["CapInh"] == status["CapAmb"] == cap_mask()


def test_cap_flag_adds_to_bounding_effective_permitted(rt: Runtime, ctr: str) -> None:
    status = status_of(rt, ctr, "--cap", "CAP_SYS_ADMIN")
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert status[key] == cap_mask(*DEFAULT_CAPS, CAP_SYS_ADMIN)
    # runc 1.1.5 also asks for it in ambient; the kernel refuses what is not inheritable.
    assert status["CapInh"] == status["CapAmb"] == cap_mask()


def test_cap_flag_for_a_user_stays_in_bounding_only(rt: Runtime, ctr: str) -> None:
    status = status_of(rt, ctr, "-u", "1000", "-c", "CAP_SYS_ADMIN")
    assert status["CapBnd"] == cap_mask(*DEFAULT_CAPS, CAP_SYS_ADMIN)
    assert status["CapEff"] == status["CapPrm"] == cap_mask()


def test_net_raw_needs_the_global_flag(rt: Runtime, ctr: str) -> None:
    without = run_exec(rt, ctr, "cat", "/proc/self/status", flags=("--cap", "CAP_NET_RAW"))
    assert "CAP_NET_RAW" in without.stderr  # the warning says why it is missing
    assert status_fields(without.stdout)["CapBnd"] == cap_mask(*DEFAULT_CAPS)
    with_flag = status_of(rt, ctr, "--cap", "CAP_NET_RAW", global_flags=("--net-raw",))
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert with_flag[key] == cap_mask(*DEFAULT_CAPS, CAP_NET_RAW)


def test_net_raw_is_removed_from_a_process_file_too(rt: Runtime, ctr: str,
                                                    tmp_path: Path) -> None:
    caps = ["CAP_NET_RAW", "CAP_KILL"]
    process = {"args": ["/bin/cat", "/proc/self/status"], "cwd": "/",
               "user": {"uid": 0, "gid": 0},
               "capabilities": {k: caps for k in
                                ("bounding", "effective", "permitted", "inheritable", "ambient")}}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    without = status_fields(run_exec(rt, ctr, flags=("-p", str(path))).stdout)
    for key in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert without[key] == cap_mask(CAP_KILL), key
    with_flag = status_fields(
        run_exec(rt, ctr, flags=("-p", str(path)), global_flags=("--net-raw",)).stdout)
    for key in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert with_flag[key] == cap_mask(CAP_KILL, CAP_NET_RAW), key


def test_no_new_privs(rt: Runtime, ctr: str) -> None:
    assert status_of(rt, ctr)["NoNewPrivs"] == "0"
    assert status_of(rt, ctr, "--no-new-privs")["NoNewPrivs"] == "1"


def test_signals_start_at_their_defaults(rt: Runtime, ctr: str) -> None:
    # Python ignores SIGPIPE and SIGXFSZ; an exec'd process must not inherit that.
    status = status_of(rt, ctr)
    assert int(status["SigIgn"], 16) & ((1 << (signal.SIGPIPE - 1)) |
                                         (1 << (signal.SIGXFSZ - 1))) == 0
    assert status["SigBlk"] == cap_mask()


# --- namespaces and cgroups --------------------------------------------------------


def test_joins_every_namespace_of_the_container(rt: Runtime, ctr: str) -> None:
    pid = init_pid(rt, ctr)
    names = ("ipc", "mnt", "net", "pid", "uts", "cgroup", "user")
    done = run_exec(rt, ctr, "sh", "-c",
                    " ; ".join(f"readlink /proc/self/ns/{n}" for n in names))
    seen = done.stdout.split()
    expected = [os.readlink(f"/proc/{pid}/ns/{n}") for n in names]
    assert seen == expected
    host_pid_ns = os.readlink("/proc/self/ns/pid")
    assert seen[names.index("pid")] != host_pid_ns


def test_joins_the_container_s_cgroups(rt: Runtime, ctr: str) -> None:
    done = run_exec(rt, ctr, "sh", "-c", "cat /proc/self/cgroup; echo ==; cat /proc/1/cgroup")
    mine, init = done.stdout.split("==\n")
    assert mine == init
    assert f":/{ctr}" in mine


def test_cgroup_flag_joins_a_sub_cgroup(rt: Runtime, ctr: str) -> None:
    pid = init_pid(rt, ctr)
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    pids_path = next(line.split(":", 2)[2] for line in lines if line.split(":")[1] == "pids")
    sub = Path(f"/sys/fs/cgroup/pids{pids_path}/sub")
    sub.mkdir()
    try:
        done = run_exec(rt, ctr, "cat", "/proc/self/cgroup", flags=("--cgroup", "pids:sub"))
        assert done.returncode == 0, done.stderr
        joined = dict(line.split(":", 2)[1:] for line in done.stdout.splitlines())
        assert joined["pids"] == f"{pids_path}/sub"
        assert joined["memory"] == next(line.split(":", 2)[2] for line in lines
                                        if line.split(":")[1] == "memory")
        explicit_top = run_exec(rt, ctr, "cat", "/proc/self/cgroup", flags=("--cgroup", "/"))
        assert explicit_top.stdout == "".join(f"{line}\n" for line in lines)
    finally:
        sub.rmdir()


@pytest.mark.parametrize(("value", "message"), [
    ("..", ".. is not a sub cgroup path"),
    ("pids:../..", "is not a sub cgroup path"),
    ("nonexistent", "nonexistent/cgroup.procs: no such file or directory"),
    ("pids:nonexistent", "nonexistent/cgroup.procs: no such file or directory"),
    ("whaaat:/", "unknown controller whaaat"),
])
def test_cgroup_flag_refusals(rt: Runtime, ctr: str, init: int, value: str, message: str) -> None:
    before = cgroup_pids(init)
    done = run_exec(rt, ctr, "true", flags=("--cgroup", value))
    assert done.returncode == 255
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert cgroup_pids(init) == before


# --- fds -------------------------------------------------------------------------


def _fd_list(stdout: str) -> set[int]:
    return {int(name) for name in stdout.split()}


def test_host_fds_do_not_reach_the_process(rt: Runtime, ctr: str, tmp_path: Path) -> None:
    host_dir = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    host_file = os.open("/etc/hostname", os.O_RDONLY)
    try:
        done = run_exec(rt, ctr, "ls", "/proc/self/fd", pass_fds=(host_dir, host_file))
    finally:
        os.close(host_dir)
        os.close(host_file)
    # ls's own directory fd is 3; nothing of pyrunc's or its caller's is there.
    assert _fd_list(done.stdout) == {0, 1, 2, 3}


def test_preserve_fds_hands_over_exactly_those(rt: Runtime, ctr: str) -> None:
    r3, w3 = os.pipe()
    r4, w4 = os.pipe()
    extra_r, extra_w = os.pipe()  # handed to pyrunc as fd 9, not asked for
    os.write(w3, b"three\n")
    os.write(w4, b"four\n")
    os.close(w3)
    os.close(w4)
    script = "cat <&3; cat <&4; ls /proc/self/fd"
    try:
        done = spawn_with_fds(
            [pyrunc_binary(), "--root", str(rt.root), "exec", "--preserve-fds", "2", ctr,
             "sh", "-c", script], {3: r3, 4: r4, 9: extra_r})
    finally:
        for fd in (r3, r4, extra_r, extra_w):
            os.close(fd)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[:2] == ["three", "four"]
    fds = {int(x) for x in lines[2:]}
    assert {3, 4} <= fds and 9 not in fds


def test_pass_fd_moves_a_host_fd_to_a_chosen_number(rt: Runtime, ctr: str) -> None:
    r, w = os.pipe()
    os.write(w, b"passed\n")
    os.close(w)
    try:
        done = run_exec(rt, ctr, "sh", "-c", "cat <&7; ls /proc/self/fd",
                        flags=("--pass-fd", f"{r}:7"), pass_fds=(r,))
    finally:
        os.close(r)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[0] == "passed"
    fds = {int(x) for x in lines[1:]}
    assert 7 in fds
    assert r == 7 or r not in fds


def test_exec_fd_runs_a_host_binary_inside(rt: Runtime, ctr: str) -> None:
    """A memfd holding busybox exists on no filesystem: the process can only come from the fd."""
    memfd = os.memfd_create("host-busybox", 0)
    try:
        with open("/bin/busybox", "rb") as binary:
            os.write(memfd, binary.read())
        done = run_exec(rt, ctr, "sh", "-c", "readlink /proc/self/exe; readlink /proc/self/ns/mnt",
                        flags=("--exec-fd", str(memfd)), pass_fds=(memfd,))
    finally:
        os.close(memfd)
    assert done.returncode == 0, done.stderr
    exe, mnt = done.stdout.splitlines()
    assert exe.startswith("/memfd:host-busybox")
    assert mnt == os.readlink(f"/proc/{init_pid(rt, ctr)}/ns/mnt")


def test_cwd_through_a_leaked_host_fd_is_refused(rt: Runtime, ctr: str, init: int,
                                                 tmp_path: Path) -> None:
    """CVE-2024-21626: a cwd of /proc/self/fd/N with N a host directory must not be entered."""
    before = cgroup_pids(init)
    host_dir = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        done = spawn_with_fds(
            [pyrunc_binary(), "--root", str(rt.root), "exec", "--preserve-fds", "1",
             "--cwd", "/proc/self/fd/3", ctr, "pwd"], {3: host_dir})
    finally:
        os.close(host_dir)
    assert done.returncode == 255
    assert "outside the container's root" in done.stderr
    assert done.stdout == ""
    assert cgroup_pids(init) == before


# --- pid files, timeout, signals ---------------------------------------------------


def test_pid_files_hold_host_and_container_pids(rt: Runtime, ctr: str, tmp_path: Path) -> None:
    pid_file, internal = tmp_path / "pid", tmp_path / "internal"
    proc = subprocess.Popen(
        [pyrunc_binary(), "--root", str(rt.root), "exec", "--pid-file", str(pid_file),
         "--internal-pid-file", str(internal), ctr, "sh", "-c", "echo $$; exec sleep 30"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        inner = int(proc.stdout.readline())
        wait_for_path(pid_file)
        host_text, inner_text = pid_file.read_text(), internal.read_text()
        assert host_text.isdigit() and inner_text.isdigit()  # no newline, nothing else
        assert int(inner_text) == inner
        nspid = status_fields(Path(f"/proc/{host_text}/status").read_text())["NSpid"].split()
        assert nspid == [host_text, inner_text]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM


def test_timeout_kills_and_exits_124(rt: Runtime, ctr: str, init: int) -> None:
    started = time.monotonic()
    done = run_exec(rt, ctr, "sleep", "30", flags=("--timeout", "500ms"))
    assert done.returncode == 124
    assert time.monotonic() - started < 5
    assert cgroup_pids(init) == {init}


def test_timeout_does_not_touch_a_quick_process(rt: Runtime, ctr: str) -> None:
    assert run_exec(rt, ctr, "sh", "-c", "exit 3", flags=("--timeout", "1m")).returncode == 3


_TRAPPED = [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
            signal.SIGTERM, signal.SIGALRM, signal.SIGCONT, signal.SIGURG]


@pytest.mark.parametrize("sig", _TRAPPED, ids=lambda s: signal.Signals(s).name)
def test_signals_are_forwarded(rt: Runtime, ctr: str, sig: signal.Signals) -> None:
    name = sig.name[3:]
    script = f"trap 'exit {100 + sig}' {name}; echo ready; while :; do sleep 0.05; done"
    # A signal ignored on entry cannot be trapped by sh; the caller's dispositions
    # pass through pyrunc (as through runc), so give the caller the default ones.
    proc = subprocess.Popen([pyrunc_binary(), "--root", str(rt.root), "exec", ctr,
                             "sh", "-c", script], stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 100 + sig
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_forwarded_signal_that_kills_gives_128_plus_n(rt: Runtime, ctr: str) -> None:
    proc = subprocess.Popen([pyrunc_binary(), "--root", str(rt.root), "exec", ctr,
                             "sh", "-c", "echo ready; exec sleep 30"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=10) == 128 + signal.SIGUSR1


# --- process.json --------------------------------------------------------------------


def test_process_file_is_the_whole_process(rt: Runtime, ctr: str, tmp_path: Path) -> None:
    process = {"args": ["sh", "-c", "id; pwd; echo $X; grep NoNewPrivs /proc/self/status"],
               "cwd": "/tmp", "env": ["X=from-file", "PATH=/bin"],
               "user": {"uid": 1000, "gid": 100, "additionalGids": [5]},
               "noNewPrivileges": True}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    done = run_exec(rt, ctr, flags=("--process", str(path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["uid=1000 gid=100(users) groups=5", "/tmp",
                                        "from-file", "NoNewPrivs:\t1"]


def test_process_file_without_user_runs_as_root(rt: Runtime, ctr: str, tmp_path: Path) -> None:
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["/bin/id", "-u"], "cwd": "/"}))
    done = run_exec(rt, ctr, flags=("-p", str(path)))
    assert (done.returncode, done.stdout) == (0, "0\n")


# Modules whose import costs milliseconds on every exec probe (enum alone ~3 ms):
# exec's path goes without them (see the notes where each is avoided).
_SLOW_IMPORTS = {"enum", "re", "contextlib", "collections", "functools", "dataclasses",
                 "json", "typing", "pydantic", "typer", "click", "socket", "_distutils_hack",
                 # python-prctl's Python face (linux/procctl.py calls its C module),
                 # ctypes' Python half (linux/libc.py uses _ctypes),
                 # and what only a terminal process needs
                 "prctl", "ctypes", "struct", "termios", "runpy_exec.linux.console",
                 "encodings.ascii"}


def test_an_exec_imports_none_of_the_slow_modules(rt: Runtime, ctr: str) -> None:
    """A real exec, run under ``-X importtime``: its import list has none of the slow ones."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", rt.binary, "--root", str(rt.root),
         "exec", ctr, "true"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = imported_modules(done.stderr)
    assert "runpy_exec.exec_cmd" in imported and "runpy_exec.process_setup" in imported
    assert not imported & _SLOW_IMPORTS, sorted(imported & _SLOW_IMPORTS)


_COUNT_COLLECTIONS = """
import gc, os, runpy, sys
collections = []
gc.callbacks.append(lambda phase, info: phase == "start"
                    and collections.append(gc.get_threshold()[0]))
real_exit = os._exit

def report_and_exit(status):
    threshold = gc.get_threshold()[0]
    after = collections.count(threshold)
    os.write(2, f"threshold={threshold} collections_after_raising_it={after}\\n".encode())
    real_exit(status)

os._exit = report_and_exit
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_an_exec_runs_no_garbage_collection(rt: Runtime, ctr: str) -> None:
    """Importing exec's modules makes thousands of objects and no garbage: with
    Python's default threshold the collector ran six times for nothing (~0.8 ms).
    Once pyrunc's entry has raised the threshold, no pass runs."""
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_COLLECTIONS, rt.binary, "--root", str(rt.root),
         "exec", ctr, "true"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = done.stderr.strip().splitlines()[-1]
    assert report == "threshold=30000 collections_after_raising_it=0", report


def _deny_mkdir(config: dict[str, Any]) -> None:
    """A profile as engines give one: everything allowed but a few calls (no flags:
    runc 1.1.5 refuses them; tests/test_linux_seccomp.py loads kept programs with one)."""
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}],
    }


_SECCOMP_PROBE = ("mkdir /tmp/probe 2>&1; echo status $?; "
                  "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status")


def test_a_second_create_with_a_profile_takes_its_program_from_the_cache(
        pyrunc: Runtime, runc: Runtime, bundle: Path, tmp_path: Path) -> None:
    """Engines give every container one profile: the first create compiles it, the
    next finds the program in the root's cache and imports no pyseccomp; its init
    runs under the filter, and the process is filtered as runc's is."""
    edit_config(bundle, _deny_mkdir)
    with running(pyrunc, bundle):
        pass
    cache = Path(create_cmd.SECCOMP_CACHE)
    kept = sorted(cache.glob("*.bpf"))
    assert kept and not list(pyrunc.root.iterdir())  # the root is left empty
    container_id = f"s{os.getpid()}"
    imports = tmp_path / "imports"
    with imports.open("w") as err:
        created = subprocess.run(
            [sys.executable, "-X", "importtime", pyrunc.binary, "--root", str(pyrunc.root),
             "create", "--bundle", str(bundle), container_id], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=err, timeout=60)
    try:
        assert created.returncode == 0, imports.read_text()
        imported = imported_modules(imports.read_text())
        assert "runpy_exec.linux.seccomp" in imported and "pyseccomp" not in imported
        assert sorted(cache.glob("*.bpf")) == kept
        pyrunc("start", container_id, check=True)
        init = pyrunc.state(container_id)["pid"]
        fields = status_fields(Path(f"/proc/{init}/status").read_text())
        assert (fields["Seccomp"], fields["Seccomp_filters"]) == ("2", "1")
        with running(runc, bundle) as theirs:
            expected = runc("exec", theirs, "sh", "-c", _SECCOMP_PROBE)
        done = pyrunc("exec", container_id, "sh", "-c", _SECCOMP_PROBE)
        assert (done.returncode, done.stdout) == (expected.returncode, expected.stdout)
    finally:
        pyrunc("delete", "--force", container_id)


def test_exec_loads_the_seccomp_program_create_kept(pyrunc: Runtime, runc: Runtime,
                                                    bundle: Path) -> None:
    """create keeps the compiled filter; exec loads it without pyseccomp (whose import
    alone costs more than an exec) and gets runc's answer, as it does when the program
    is missing (a container made before pyrunc kept it) and the profile is compiled."""
    edit_config(bundle, _deny_mkdir)
    with running(pyrunc, bundle) as ours, running(runc, bundle) as theirs:
        kept = pyrunc.root / ours / "seccomp.bpf"
        size = kept.stat().st_size
        assert size > 0 and size % 8 == 0
        expected = runc("exec", theirs, "sh", "-c", _SECCOMP_PROBE)
        assert "Operation not permitted" in expected.stdout, expected.stdout
        assert "Seccomp:\t2\nSeccomp_filters:\t1\n" in expected.stdout
        done = subprocess.run(
            [sys.executable, "-X", "importtime", pyrunc.binary, "--root", str(pyrunc.root),
             "exec", ours, "sh", "-c", _SECCOMP_PROBE], capture_output=True, text=True,
            timeout=60)
        imported = imported_modules(done.stderr)
        assert "runpy_exec.linux.seccomp" in imported and "pyseccomp" not in imported
        assert (done.returncode, done.stdout) == (expected.returncode, expected.stdout)
        kept.unlink()
        compiled = pyrunc("exec", ours, "sh", "-c", _SECCOMP_PROBE)
        assert (compiled.returncode, compiled.stdout) == (expected.returncode, expected.stdout)
