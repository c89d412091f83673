"""Side by side with runc 1.1.5: the same exec into the same runc-made container.

For every row of flags, ``runc exec`` and ``pyrunc --root <runc's root>
exec`` run one probe that prints what the process is: ids, capability
masks, NoNewPrivs, signal masks, env, cwd, cgroups and namespaces.  The two
outputs and exit statuses must be equal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Runtime, pyrunc_binary, running
from tests.exec_support import make_bundle

pytestmark = pytest.mark.root

# No rlimits: runc 1.1.5 sets an exec'd process's rlimits from its parent with
# prlimit, racing the process's own start, and about one exec in three keeps
# runc's limit instead of the config's (test_exec checks pyrunc's).
PROBE = ("id; grep -E '^(Cap|NoNewPrivs|SigIgn|SigBlk)' /proc/self/status; env | sort; pwd; "
         "cat /proc/self/cgroup; for n in ipc mnt net pid uts cgroup user; do "
         "readlink /proc/self/ns/$n; done")


@pytest.fixture(scope="module")
def runc_rt(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime("runc", tmp_path_factory.mktemp("runc-root"))


@pytest.fixture(scope="module")
def pyrunc_on_runc(runc_rt: Runtime) -> Runtime:
    """pyrunc reading runc's state directory."""
    return Runtime(pyrunc_binary(), runc_rt.root)


@pytest.fixture(scope="module")
def runc_ctr(runc_rt: Runtime, busybox_bundle_template: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    def change(config: dict[str, object]) -> None:
        process = config["process"]
        assert isinstance(process, dict)
        process["noNewPrivileges"] = False  # so that --no-new-privs shows

    bundle = make_bundle(busybox_bundle_template, tmp_path_factory.mktemp("runc-bundle"), change)
    with running(runc_rt, bundle) as container_id:
        yield container_id


def both(runc_rt: Runtime, pyrunc_on_runc: Runtime, ctr: str, flags: tuple[str, ...],
         args: list[str], pyrunc_globals: tuple[str, ...] = ()) -> tuple[
             tuple[int, str], tuple[int, str]]:
    theirs = runc_rt("exec", *flags, ctr, *args)
    ours = pyrunc_on_runc(*pyrunc_globals, "exec", *flags, ctr, *args)
    return (theirs.returncode, theirs.stdout), (ours.returncode, ours.stdout)


# runc refuses a short and a long spelling of one flag in one command line.
FLAG_SETS = [
    (),
    ("-u", "1000"),
    ("--user", "1000:100", "-g", "5", "-g", "6"),
    ("--cap", "CAP_SYS_ADMIN"),
    ("-c", "CAP_SYS_ADMIN", "-c", "CAP_CHOWN", "-u", "1000"),
    ("--no-new-privs",),
    ("--cwd", "/tmp"),
    ("-e", "A=b,c", "-e", "A=d,e", "-e", "HOME=/elsewhere", "-e", "PATH=/bin"),
    ("-u", "1000", "--cwd", "/root"),
    ("--cgroup", "/"),
    ("-e", "X=1", "--cap", "CAP_KILL", "-u", "65534:65534", "--no-new-privs", "--cwd", "/home"),
]


@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: " ".join(f) or "no-flags")
def test_same_process_as_runc(runc_rt: Runtime, pyrunc_on_runc: Runtime, runc_ctr: str,
                              flags: tuple[str, ...]) -> None:
    theirs, ours = both(runc_rt, pyrunc_on_runc, runc_ctr, flags, ["sh", "-c", PROBE])
    assert theirs[0] == 0, theirs[1]
    assert ours == theirs


def test_net_raw_with_the_global_flag_is_runc_s_cap(runc_rt: Runtime, pyrunc_on_runc: Runtime,
                                                    runc_ctr: str) -> None:
    theirs, ours = both(runc_rt, pyrunc_on_runc, runc_ctr, ("--cap", "CAP_NET_RAW"),
                        ["sh", "-c", PROBE], pyrunc_globals=("--net-raw",))
    assert ours == theirs


@pytest.mark.parametrize(("flags", "args"), [
    ((), ["false"]),
    ((), ["sh", "-c", "exit 9"]),
    ((), ["sh", "-c", "kill -TERM $$"]),
    ((), ["sh", "-c", "kill -KILL $$"]),
    ((), ["no-such-binary"]),
    ((), ["/etc/passwd"]),
    (("--cwd", "/no/such/dir"), ["true"]),
    (("--cgroup", ".."), ["true"]),
])
def test_same_exit_status_as_runc(runc_rt: Runtime, pyrunc_on_runc: Runtime, runc_ctr: str,
                                  flags: tuple[str, ...], args: list[str]) -> None:
    theirs, ours = both(runc_rt, pyrunc_on_runc, runc_ctr, flags, args)
    assert ours[0] == theirs[0]


def test_same_process_from_a_process_file(runc_rt: Runtime, pyrunc_on_runc: Runtime,
                                          runc_ctr: str, tmp_path: Path) -> None:
    caps = ["CAP_KILL", "CAP_CHOWN", "CAP_SETUID"]
    process = {"args": ["sh", "-c", PROBE], "cwd": "/tmp",
               "env": ["PATH=/bin", "FROM=file"],
               "user": {"uid": 1000, "gid": 100, "additionalGids": [5, 6]},
               "capabilities": {"bounding": caps, "effective": caps[:1], "permitted": caps,
                                "inheritable": caps[:2], "ambient": caps[:1]},
               "noNewPrivileges": True}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    theirs, ours = both(runc_rt, pyrunc_on_runc, runc_ctr, ("-p", str(path)), [])
    assert theirs[0] == 0
    assert ours == theirs
