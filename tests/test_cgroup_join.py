"""How processes enter a container's cgroups: clone3 into the v2 cgroup, ``tasks`` for v1.

Every check reads the process from outside (/proc/<pid>/cgroup, the cgroup
files).  The first half drives :mod:`runpy_exec.linux.cgroups.joining` with
plain forked children; the second runs ``pyrunc exec`` into real containers,
on this host as it is and, for cgroup v2 alone, in a private mount namespace
where only cgroup2 is mounted at /sys/fs/cgroup (the layout of a v2 host).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from runpy_exec.linux import cgroups, clone3
from runpy_exec.linux.cgroups import joining
from tests.conftest import Runtime, pyrunc_binary, running
from tests.exec_support import init_pid, make_bundle

pytestmark = pytest.mark.root

UNIFIED_MOUNT = cgroups.mountpoints().get("")
needs_unified = pytest.mark.skipif(UNIFIED_MOUNT is None, reason="no cgroup v2 hierarchy mounted")


# --- helpers -----------------------------------------------------------------------


def cgroup_lines(pid: int) -> dict[str, str]:
    """/proc/<pid>/cgroup as hierarchy -> path; the v2 line is keyed ""."""
    return cgroups.own_cgroup_paths(pid)


def directory_of(pid: int) -> dict[str, str]:
    """The directory of ``pid``'s cgroup in every mounted hierarchy."""
    mounts = cgroups.mountpoints()
    return {c: os.path.join(mounts[c], p.lstrip("/")).rstrip("/")
            for c, p in cgroup_lines(pid).items() if c in mounts}


class Forked:
    """A child made by ``fork`` that runs ``body`` and then waits to be killed.

    It writes "ok" (or its traceback) once ``body`` is done, so the test reads
    its /proc/<pid>/cgroup while it is alive and settled.
    """

    def __init__(self, fork: Callable[[], tuple[int, int]],
                 body: Callable[[], None] = lambda: None) -> None:
        report_r, report_w = os.pipe()
        self.pid, self.pidfd = fork()
        if self.pid == 0:
            try:
                body()
                os.write(report_w, b"ok")
                os.close(report_w)
                time.sleep(60)
            except BaseException:
                os.write(report_w, traceback.format_exc().encode())
            os._exit(1)
        os.close(report_w)
        # One read: a grandchild may hold the pipe open, so EOF can be far away.
        self.report = os.read(report_r, 65536).decode()
        os.close(report_r)

    def kill(self) -> int:
        """SIGKILL through the pidfd (so it must be this child's); the wait status."""
        with suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        os.close(self.pidfd)
        return os.waitpid(self.pid, 0)[1]


@pytest.fixture
def paths() -> Iterator[dict[str, str]]:
    """A fresh cgroup in every hierarchy; whatever is left in it is killed afterwards."""
    resolved = cgroups.resolve_paths(None, f"pyrunc-join-{uuid.uuid4().hex[:12]}")
    cgroups.create(resolved)
    yield resolved
    for pid in set(cgroups.pids(resolved)) | set(_unified_pids(resolved)):
        os.kill(pid, signal.SIGKILL)
    cgroups.destroy(resolved)


def _unified_pids(paths: dict[str, str]) -> list[int]:
    found: list[int] = []
    for directory, _, _ in os.walk(paths.get("", "/nonexistent")):
        found += [int(p) for p in Path(directory, "cgroup.procs").read_text().split()]
    return found


def v2_controller(directory: str) -> str:
    """A controller that ``directory`` may enable for its children (hugetlb on this host)."""
    available = Path(directory, "cgroup.controllers").read_text().split()
    if not available:
        pytest.fail(f"{directory}: no cgroup v2 controller to make the cgroup refuse processes")
    return available[0]


def make_busy(directory: str, pid: int) -> str:
    """Give ``directory`` a child cgroup holding ``pid`` and a controller enabled for it.

    From then on the kernel's no-internal-process rule refuses any process
    in ``directory`` itself (EBUSY), as in the cgroup of a systemd or a
    Docker-in-Docker container.  Returns the child cgroup.
    """
    inner = os.path.join(directory, "inner")
    os.mkdir(inner)
    Path(inner, "cgroup.procs").write_text(str(pid))
    Path(directory, "cgroup.subtree_control").write_text("+" + v2_controller(directory))
    return inner


def sleeper() -> Forked:
    return Forked(_plain_fork)


def _plain_fork() -> tuple[int, int]:
    pid = os.fork()
    return (0, -1) if pid == 0 else (pid, os.pidfd_open(pid))


def hide_clone3() -> None:
    """Load a seccomp filter answering clone3 with ENOSYS, as Docker's default profile does."""
    import pyseccomp

    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    flt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    flt.load()


def in_helper(body: Callable[[], None]) -> None:
    """Run ``body`` in a forked helper (for changes the test process must not keep)."""
    helper = Forked(_plain_fork, body)
    helper.kill()
    assert helper.report == "ok", helper.report


# --- clone3 --------------------------------------------------------------------------


@needs_unified
def test_clone3_child_starts_in_the_cgroup_and_the_pidfd_is_its(paths: dict[str, str]) -> None:
    fd = os.open(paths[""], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        child = Forked(lambda: clone3.fork_into_cgroup(fd))
    finally:
        os.close(fd)
    assert child.report == "ok"
    assert directory_of(child.pid)[""] == paths[""]
    assert not os.get_inheritable(child.pidfd)
    status = child.kill()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@needs_unified
def test_clone3_into_a_cgroup_that_takes_no_process_fails_with_ebusy(
        paths: dict[str, str]) -> None:
    holder = sleeper()
    try:
        make_busy(paths[""], holder.pid)
        fd = os.open(paths[""], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            with pytest.raises(OSError) as refused:
                clone3.fork_into_cgroup(fd)
        finally:
            os.close(fd)
        assert refused.value.errno == errno.EBUSY
        assert str(refused.value.strerror).startswith("clone3: ")
        assert Path(paths[""], "cgroup.procs").read_text() == ""
    finally:
        holder.kill()


# --- CgroupJoin ----------------------------------------------------------------------


def test_the_child_is_in_the_cgroup_of_every_hierarchy(paths: dict[str, str]) -> None:
    join = joining.CgroupJoin(paths)
    try:
        child = Forked(join.fork, join.join_in_child)
    finally:
        join.close()
    assert child.report == "ok", child.report
    assert directory_of(child.pid) == paths
    child.kill()


def test_an_unprivileged_child_joins_through_what_the_parent_opened(
        paths: dict[str, str]) -> None:
    """CVE-2021-4197: the kernel judges the writes by the opener's credentials."""
    def drop_then_join() -> None:
        os.setgroups([])
        os.setgid(1000)
        os.setuid(1000)
        join.join_in_child()

    join = joining.CgroupJoin(paths)
    try:
        child = Forked(join.fork, drop_then_join)
    finally:
        join.close()
    assert child.report == "ok", child.report
    assert directory_of(child.pid) == paths
    assert Path(f"/proc/{child.pid}/status").read_text().count("\t1000\t") >= 2
    child.kill()


@needs_unified
def test_without_clone3_the_child_writes_cgroup_procs(paths: dict[str, str]) -> None:
    """Kernels before 5.7, or a seccomp profile hiding clone3: os.fork, then cgroup.procs."""
    def body() -> None:
        hide_clone3()
        fd = os.open(paths[""], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            clone3.fork_into_cgroup(fd)
            raise AssertionError("clone3 was not hidden")
        except OSError as err:
            assert err.errno == errno.ENOSYS, err
        finally:
            os.close(fd)
        join = joining.CgroupJoin(paths)
        try:
            child = Forked(join.fork, join.join_in_child)
        finally:
            join.close()
        assert child.report == "ok", child.report
        assert directory_of(child.pid) == paths
        child.kill()

    in_helper(body)


def _single_threaded_again(timeout: float = 5.0) -> bool:
    """Wait for a joined thread to leave the kernel's count too.

    Thread.join returns once the thread's Python state is released, which
    is a moment before the kernel removes the task; /proc/self/stat can
    still count it (seen in CI).
    """
    deadline = time.monotonic() + timeout
    while not clone3.single_threaded():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_with_another_thread_alive_it_forks_the_old_way(paths: dict[str, str]) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not clone3.single_threaded()
        join = joining.CgroupJoin(paths)
        try:
            child = Forked(join.fork, join.join_in_child)
        finally:
            join.close()
    finally:
        stop.set()
        thread.join()
    assert _single_threaded_again(), "the helper thread never left the kernel"
    assert child.report == "ok", child.report
    assert directory_of(child.pid) == paths
    child.kill()


@needs_unified
@pytest.mark.parametrize("clone3_hidden", [False, True], ids=["clone3", "cgroup.procs"])
def test_a_busy_v2_cgroup_gives_way_to_the_init_s_current_one(
        paths: dict[str, str], clone3_hidden: bool) -> None:
    init = sleeper()
    try:
        inner = make_busy(paths[""], init.pid)

        def body() -> None:
            if clone3_hidden:
                hide_clone3()
            join = joining.CgroupJoin(paths, init_pid=init.pid)
            try:
                child = Forked(join.fork, join.join_in_child)
            finally:
                join.close()
            assert child.report == "ok", child.report
            assert directory_of(child.pid) == {**paths, "": inner}
            child.kill()

        in_helper(body)
    finally:
        init.kill()


@needs_unified
def test_a_busy_v2_cgroup_the_caller_named_is_an_error(paths: dict[str, str]) -> None:
    holder = sleeper()
    try:
        make_busy(paths[""], holder.pid)
        join = joining.CgroupJoin(paths)
        try:
            with pytest.raises(cgroups.CgroupError) as refused:
                join.fork()
        finally:
            join.close()
        # runc's words, which its callers and runc's own tests look for.
        assert str(refused.value) == (f"adding pid of the new process to cgroups: {paths['']}"
                                      "/cgroup.procs: device or resource busy")
        assert refused.value.errno == errno.EBUSY
        assert Path(paths[""], "cgroup.procs").read_text() == ""
    finally:
        holder.kill()


@needs_unified
def test_a_removed_v2_cgroup_gives_way_to_the_init_s_current_one(
        paths: dict[str, str]) -> None:
    init = sleeper()
    elsewhere = os.path.join(UNIFIED_MOUNT or "", f"pyrunc-join-moved-{uuid.uuid4().hex[:8]}")
    os.mkdir(elsewhere)
    try:
        Path(elsewhere, "cgroup.procs").write_text(str(init.pid))
        os.rmdir(paths[""])
        join = joining.CgroupJoin(paths, init_pid=init.pid)
        try:
            child = Forked(join.fork, join.join_in_child)
        finally:
            join.close()
        assert child.report == "ok", child.report
        assert directory_of(child.pid) == {**paths, "": elsewhere}
        child.kill()
        with pytest.raises(cgroups.CgroupError, match="No such file or directory"):
            joining.CgroupJoin(paths)
    finally:
        init.kill()
        os.rmdir(elsewhere)


def test_a_v1_join_failure_names_the_tasks_file(paths: dict[str, str]) -> None:
    """An empty v1 cpuset takes no task (ENOSPC): the child's error says where."""
    if "cpuset" not in paths:
        pytest.skip("no v1 cpuset hierarchy on this host")
    empty = os.path.join(paths["cpuset"], "empty")
    os.mkdir(empty)
    try:
        join = joining.CgroupJoin({"cpuset": empty})
        try:
            child = Forked(join.fork, join.join_in_child)
        finally:
            join.close()
        child.kill()
    finally:
        os.rmdir(empty)
    assert f"OSError: [Errno {errno.ENOSPC}] join {empty}/tasks: no space left on device" \
        in child.report


# --- pyrunc exec on this host ---------------------------------------------------------


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime(pyrunc_binary(), tmp_path_factory.mktemp("pyrunc-root"))


@pytest.fixture
def ctr(rt: Runtime, busybox_bundle_template: Path, tmp_path: Path) -> Iterator[str]:
    """A pyrunc container of this test's own: some tests rearrange its cgroups."""
    bundle = make_bundle(busybox_bundle_template, tmp_path / "bundle")
    with running(rt, bundle) as container_id:
        yield container_id


@contextmanager
def exec_sleeping(argv: list[str], ctr: str, tmp_path: Path, *flags: str) -> Iterator[int]:
    """``argv exec [flags] ctr sleep 60`` in the background; yields the process's host pid.

    ``argv`` is the runtime with its global flags (and a way into a namespace).
    """
    pid_file = tmp_path / f"exec-{uuid.uuid4().hex[:6]}.pid"
    proc = subprocess.Popen([*argv, "exec", "--pid-file", str(pid_file), *flags, ctr,
                             "sleep", "60"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pid_file.exists(), f"exec wrote no pid file: {proc.communicate()[1]}"
        pid = int(pid_file.read_text())  # written whole, then renamed into place
        try:
            yield pid
        finally:
            os.kill(pid, signal.SIGKILL)
    finally:
        if proc.poll() is None and not pid_file.exists():
            proc.kill()
        proc.communicate(timeout=30)


def pyrunc_argv(rt: Runtime) -> list[str]:
    return [rt.binary, "--root", str(rt.root)]


def container_paths(rt: Runtime, ctr: str) -> dict[str, str]:
    import json

    state = json.loads(Path(rt.root, ctr, "state.json").read_text())
    return {c: os.path.normpath(p) for c, p in state["cgroup_paths"].items()}


def test_create_and_exec_put_processes_in_every_hierarchy(rt: Runtime, ctr: str,
                                                          tmp_path: Path) -> None:
    expected = container_paths(rt, ctr)
    assert set(expected) == set(cgroups.mountpoints())  # v1 and, here, the unified one
    init = init_pid(rt, ctr)
    assert directory_of(init) == expected
    with exec_sleeping(pyrunc_argv(rt), ctr, tmp_path) as pid:
        assert directory_of(pid) == expected


def test_exec_cgroup_sub_joins_the_sub_cgroup_in_every_hierarchy(
        rt: Runtime, ctr: str, tmp_path: Path) -> None:
    expected = {c: os.path.join(p, "sub") for c, p in container_paths(rt, ctr).items()}
    for controller, path in expected.items():
        os.mkdir(path)
        if controller == "cpuset":  # a new v1 cpuset has no cpus: nothing can join it
            for name in ("cpuset.cpus", "cpuset.mems"):
                Path(path, name).write_text(Path(path, "..", name).read_text())
    try:
        with exec_sleeping(pyrunc_argv(rt), ctr, tmp_path, "--cgroup", "sub") as pid:
            assert directory_of(pid) == expected
    finally:
        for path in expected.values():
            wait_empty_then_rmdir(path)


def wait_empty_then_rmdir(path: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            os.rmdir(path)
            return
        except OSError as err:
            if err.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@needs_unified
def test_exec_into_a_busy_unified_cgroup_lands_beside_the_init(
        rt: Runtime, ctr: str, tmp_path: Path) -> None:
    paths = container_paths(rt, ctr)
    init = init_pid(rt, ctr)
    inner = make_busy(paths[""], init)
    with exec_sleeping(pyrunc_argv(rt), ctr, tmp_path) as pid:
        assert directory_of(pid) == {**paths, "": inner}
    named = rt("exec", "--cgroup", "/", ctr, "true")
    assert named.returncode == 255
    assert named.stderr.strip().endswith(
        f"exec failed: adding pid of the new process to cgroups: {paths['']}/cgroup.procs: "
        "device or resource busy")
    assert sorted(_unified_pids(paths)) == [init]


@needs_unified
def test_exec_after_the_container_removed_its_unified_cgroup(
        rt: Runtime, ctr: str, tmp_path: Path) -> None:
    """runc#5089: the init moved itself elsewhere and its cgroup was removed."""
    paths = container_paths(rt, ctr)
    init = init_pid(rt, ctr)
    elsewhere = os.path.join(UNIFIED_MOUNT or "", f"pyrunc-join-moved-{ctr}")
    os.mkdir(elsewhere)
    try:
        Path(elsewhere, "cgroup.procs").write_text(str(init))
        os.rmdir(paths[""])
        with exec_sleeping(pyrunc_argv(rt), ctr, tmp_path) as pid:
            assert directory_of(pid) == {**paths, "": elsewhere}
    finally:
        rt("delete", "--force", ctr)
        wait_empty_then_rmdir(elsewhere)


# --- pyrunc exec with cgroup v2 alone ----------------------------------------------------


V2_NAMESPACE = """
set -e
for m in $(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts | sort -r); do
    umount "$m"
done
mountpoint -q /sys/fs/cgroup && umount /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo ready
exec sleep 3600
"""


@pytest.fixture(scope="module")
def v2_holder() -> Iterator[int]:
    """A process in a private mount namespace where only cgroup2 is mounted.

    The kernel's v1 hierarchies stay (this host's controllers are there), but
    every runtime inside sees a pure cgroup v2 host, as runc's own tests do.
    """
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                               "sh", "-c", V2_NAMESPACE],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    if holder.stdout.readline() != "ready\n":
        holder.kill()
        pytest.fail(f"no private cgroup2 mount namespace: {holder.communicate()[1]}")
    try:
        yield holder.pid
    finally:
        holder.kill()
        holder.communicate()


@pytest.fixture(scope="module")
def v2_only(v2_holder: int) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a command in ``v2_holder``'s mount namespace."""
    def inside(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", f"--mount=/proc/{v2_holder}/ns/mnt", "--", *argv],
                              text=True, capture_output=True, timeout=60)

    return inside


def v2_run(v2_only: Callable[..., subprocess.CompletedProcess[str]], root: str,
           bundle: Path, ctr: str) -> None:
    """``runc run -d`` in the v2 namespace; its output to a file, which the container
    may keep open (a pipe would never see its end)."""
    log = bundle / "run.log"
    run = v2_only("sh", "-c", f"exec runc --root {root} run -d --bundle {bundle} {ctr} "
                  f"</dev/null >{log} 2>&1")
    assert run.returncode == 0, log.read_text()


def test_v2_exec_into_runc_s_container_follows_runc(
        v2_only: Callable[..., subprocess.CompletedProcess[str]],
        busybox_bundle_template: Path, tmp_path: Path) -> None:
    """runc's "exec --cgroup subcgroup [v2]" case, pyrunc beside runc on one container."""
    root, ctr = str(tmp_path / "runc-root"), f"v2{uuid.uuid4().hex[:8]}"
    top = f"/sys/fs/cgroup/{ctr}"

    def both(*args: str) -> tuple[subprocess.CompletedProcess[str], ...]:
        return tuple(v2_only(binary, "--root", root, "exec", *args)
                     for binary in ("runc", pyrunc_binary()))

    try:
        v2_run(v2_only, root, make_bundle(busybox_bundle_template, tmp_path / "bundle"), ctr)
        for done in both(ctr, "cat", "/proc/self/cgroup"):
            assert done.returncode == 0, done.stderr
            assert done.stdout.splitlines()[-1] == f"0::/{ctr}"
        init = int(v2_only("cat", f"{top}/cgroup.procs").stdout)
        setup = v2_only("sh", "-c", f"mkdir {top}/foobar && echo {init} > {top}/foobar/cgroup.procs"
                        f" && echo +$(cut -d' ' -f1 {top}/cgroup.controllers)"
                        f" > {top}/cgroup.subtree_control")
        assert setup.returncode == 0, setup.stderr
        for done in both(ctr, "cat", "/proc/self/cgroup"):
            assert done.returncode == 0, done.stderr
            assert done.stdout.splitlines()[-1] == f"0::/{ctr}/foobar"
        for done in both("--cgroup", "/", ctr, "true"):
            assert done.returncode == 255
            assert " adding pid " in done.stderr and " to cgroups" in done.stderr
            assert f"{top}/cgroup.procs: device or resource busy" in done.stderr
        for done in both("--cgroup", "foobar", ctr, "cat", "/proc/self/cgroup"):
            assert done.stdout.splitlines()[-1] == f"0::/{ctr}/foobar"
        for done in both("--cgroup", "nonexistent", ctr, "true"):
            assert done.returncode == 255
            assert "/nonexistent/cgroup.procs: no such file or directory" in done.stderr
        for done in both("--cgroup", "..", ctr, "true"):
            assert done.returncode == 255
            assert "is not a sub cgroup path" in done.stderr
        assert v2_only("cat", f"{top}/foobar/cgroup.procs").stdout.split() == [str(init)]
    finally:
        v2_only("runc", "--root", root, "delete", "--force", ctr)
    assert v2_only("test", "-e", top).returncode != 0


def test_v2_exec_process_is_in_the_container_s_cgroup(
        v2_only: Callable[..., subprocess.CompletedProcess[str]],
        v2_holder: int, busybox_bundle_template: Path, tmp_path: Path) -> None:
    """Read from outside: the exec'd process's /proc/<pid>/cgroup, in the v2 layout."""
    root, ctr = str(tmp_path / "runc-root"), f"v2{uuid.uuid4().hex[:8]}"
    try:
        v2_run(v2_only, root, make_bundle(busybox_bundle_template, tmp_path / "bundle"), ctr)
        inside = ["nsenter", f"--mount=/proc/{v2_holder}/ns/mnt", "--", pyrunc_binary(),
                  "--root", root]
        with exec_sleeping(inside, ctr, tmp_path) as pid:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
            assert lines[-1] == f"0::/{ctr}"
    finally:
        v2_only("runc", "--root", root, "delete", "--force", ctr)
