"""What ``create`` builds, read from the host: namespaces, the process, mounts, cgroups.

One bundle asks for a bit of everything (a user, capabilities, no_new_privs,
an rlimit, a umask, an OOM score, a cwd, an env without HOME, a hostname, a
bind mount, memory and pids limits).  pyrunc and runc 1.1.5 each run it once
for the whole module; every test reads /proc/<pid>/... of pyrunc's init,
checks the values the config asked for and, for what runc derives on its own
(groups, env, mounts, cgroup membership), compares with runc's init.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT, Runtime, pyrunc_binary
from tests.exec_support import make_bundle
from tests.test_hardening import create
from tests.test_lifecycle import (
    cgroup_dirs,
    init_pid,
    new_id,
    proc_status,
    processes_in_cgroup_of,
)
from tests.test_lifecycle import cmdline as cmdline_of

pytestmark = pytest.mark.root

NAMESPACES = ("pid", "mnt", "uts", "ipc", "net")
CAPS = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]  # 0, 5, 10
CAP_MASK = f"{(1 << 0) | (1 << 5) | (1 << 10):016x}"
MEMORY_LIMIT = 64 * 1024 * 1024
PIDS_LIMIT = 42
HOSTNAME = "pyrunc-create"


class Ctr:
    """One container of the module's bundle: its runtime, id and init pid."""

    def __init__(self, rt: Runtime, container_id: str) -> None:
        self.rt, self.id = rt, container_id
        self.pid = init_pid(rt, container_id)

    def read(self, name: str) -> str:
        return Path(f"/proc/{self.pid}/{name}").read_text()


class Both:
    def __init__(self, ours: Ctr, theirs: Ctr, bundle: Path, data: Path) -> None:
        self.ours, self.theirs, self.bundle, self.data = ours, theirs, bundle, data


def _process_of_the_module(process: dict[str, Any]) -> None:
    process["user"] = {"uid": 1, "gid": 1, "additionalGids": [100, 65534], "umask": 0o027}
    # With ambient ones, a non-root process keeps them across execve.
    process["capabilities"] = {kind: CAPS for kind in ("bounding", "effective", "permitted",
                                                       "inheritable", "ambient")}
    process["noNewPrivileges"] = True
    process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000}]
    process["oomScoreAdj"] = 123
    process["cwd"] = "/tmp"
    process["env"] = ["PATH=/bin:/usr/bin", "GREETING=hello world"]


@pytest.fixture(scope="module")
def both(busybox_bundle_template: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Both]:
    data = tmp_path_factory.mktemp("bind-source")
    (data / "hello").write_text("from the host\n")

    def change(config: dict[str, Any]) -> None:
        _process_of_the_module(config["process"])
        config["hostname"] = HOSTNAME
        # /home exists in the shared read-only rootfs: no mount point to create there.
        config["mounts"].append({"destination": "/home", "type": "bind", "source": str(data),
                                 "options": ["rbind", "ro"]})
        config["linux"]["resources"] = {"memory": {"limit": MEMORY_LIMIT},
                                        "pids": {"limit": PIDS_LIMIT}}

    bundle = make_bundle(busybox_bundle_template, tmp_path_factory.mktemp("create-bundle"),
                         change)
    ours = Runtime(pyrunc_binary(), tmp_path_factory.mktemp("pyrunc-root"))
    theirs = Runtime("runc", tmp_path_factory.mktemp("runc-root"))
    ours_id, theirs_id = new_id(), new_id()
    try:
        theirs.run_detached("run", "-d", "--bundle", str(bundle), theirs_id)
        ours.run_detached("run", "-d", "--bundle", str(bundle), ours_id)
        yield Both(Ctr(ours, ours_id), Ctr(theirs, theirs_id), bundle, data)
    finally:
        ours("delete", "--force", ours_id)
        theirs("delete", "--force", theirs_id)


# --- namespaces -------------------------------------------------------------------------


def test_namespaces_are_new_where_the_config_asks(both: Both) -> None:
    for ns in NAMESPACES:
        ours = os.readlink(f"/proc/{both.ours.pid}/ns/{ns}")
        assert ours != os.readlink(f"/proc/self/ns/{ns}"), ns
        assert ours != os.readlink(f"/proc/{both.theirs.pid}/ns/{ns}"), ns
    for ns in ("user", "cgroup"):  # not in the config: shared with the host
        assert os.readlink(f"/proc/{both.ours.pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}")


def test_the_init_is_pid_1_of_its_namespace(both: Both) -> None:
    assert proc_status(both.ours.pid)["NSpid"].split() == [str(both.ours.pid), "1"]


def test_hostname(both: Both) -> None:
    done = subprocess.run(["nsenter", "--target", str(both.ours.pid), "--uts", "hostname"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == HOSTNAME


# --- the process ------------------------------------------------------------------------


def test_user_groups_and_umask(both: Both) -> None:
    status = proc_status(both.ours.pid)
    assert status["Uid"].split() == ["1"] * 4
    assert status["Gid"].split() == ["1"] * 4
    assert sorted(status["Groups"].split()) == ["100", "65534"]
    assert status["Umask"] == "0027"
    theirs = proc_status(both.theirs.pid)
    for field in ("Uid", "Gid", "Groups", "Umask"):
        assert status[field] == theirs[field], field


def test_capabilities_and_no_new_privileges(both: Both) -> None:
    status = proc_status(both.ours.pid)
    assert {field: status[field] for field in ("CapInh", "CapPrm", "CapEff", "CapBnd",
                                               "CapAmb", "NoNewPrivs")} == {
        "CapInh": CAP_MASK, "CapPrm": CAP_MASK, "CapEff": CAP_MASK, "CapBnd": CAP_MASK,
        "CapAmb": CAP_MASK, "NoNewPrivs": "1"}


def test_rlimit(both: Both) -> None:
    line = next(line for line in both.ours.read("limits").splitlines()
                if line.startswith("Max open files"))
    assert line.split()[3:5] == ["1000", "2000"]


def test_oom_score_adj(both: Both) -> None:
    assert both.ours.read("oom_score_adj").strip() == "123"


def test_cwd(both: Both) -> None:
    assert os.readlink(f"/proc/{both.ours.pid}/cwd") == os.readlink(
        f"/proc/{both.theirs.pid}/cwd")
    assert os.path.samefile(f"/proc/{both.ours.pid}/cwd",
                            f"/proc/{both.ours.pid}/root/tmp")


def test_env_gets_home_from_passwd(both: Both) -> None:
    env = both.ours.read("environ").split("\0")[:-1]
    assert sorted(env) == ["GREETING=hello world", "HOME=/usr/sbin", "PATH=/bin:/usr/bin"]
    assert sorted(env) == sorted(both.theirs.read("environ").split("\0")[:-1])


def test_args(both: Both) -> None:
    assert both.ours.read("cmdline").split("\0")[:-1] == ["sleep", "3600"]


# --- mounts -----------------------------------------------------------------------------


def _mount_table(ctr: Ctr) -> list[tuple[str, ...]]:
    """mountinfo without what differs between any two containers (ids, device numbers)."""
    table: list[tuple[str, ...]] = []
    for line in ctr.read("mountinfo").splitlines():
        fields = line.split()
        sep = fields.index("-")
        root, point, options = fields[3], fields[4], fields[5]
        fstype, source, super_options = fields[sep + 1:sep + 4]
        table.append((root.replace(ctr.id, "ID"), point, options, fstype, source,
                      super_options))
    return table


def _mounts_by_point(ctr: Ctr) -> dict[str, tuple[str, ...]]:
    return {entry[1]: entry for entry in _mount_table(ctr)}


def test_mounts_are_runc_s(both: Both) -> None:
    assert _mount_table(both.ours) == _mount_table(both.theirs)


def test_standard_mounts_and_readonly_root(both: Both) -> None:
    mounts = _mounts_by_point(both.ours)
    config = json.loads((both.bundle / "config.json").read_text())
    assert mounts["/"][0] == config["root"]["path"]
    assert "ro" in mounts["/"][2].split(",")
    assert mounts["/proc"][3] == "proc"
    assert mounts["/dev"][3] == "tmpfs"
    assert mounts["/dev/pts"][3] == "devpts"
    assert "ptmxmode=666" in mounts["/dev/pts"][5].split(",")
    assert mounts["/sys"][3] == "sysfs" and "ro" in mounts["/sys"][2].split(",")


def test_masked_and_readonly_paths(both: Both) -> None:
    config = json.loads((both.bundle / "config.json").read_text())
    mounts = _mounts_by_point(both.ours)
    masked = [p for p in config["linux"]["maskedPaths"] if os.path.exists(p)]
    readonly = [p for p in config["linux"]["readonlyPaths"] if os.path.exists(p)]
    assert masked and readonly
    for path in masked:
        assert path in mounts, f"{path} is not masked"
        mounted = Path(f"/proc/{both.ours.pid}/root{path}")
        assert (not mounted.is_dir() and mounted.read_bytes() == b"") or \
            os.listdir(mounted) == [], path
    for path in readonly:
        assert "ro" in mounts[path][2].split(","), path


def test_bind_mount_from_the_config(both: Both) -> None:
    mounts = _mounts_by_point(both.ours)
    assert mounts["/home"][0] == str(both.data)
    assert "ro" in mounts["/home"][2].split(",")
    assert Path(f"/proc/{both.ours.pid}/root/home/hello").read_text() == "from the host\n"


# --- cgroups ----------------------------------------------------------------------------


def _membership(ctr: Ctr) -> list[str]:
    return ctr.read("cgroup").splitlines()


def test_cgroup_membership_is_own_cgroup_slash_id(both: Both) -> None:
    own = Path("/proc/self/cgroup").read_text().splitlines()
    expected = []
    for line in own:
        hierarchy, controllers, path = line.split(":", 2)
        expected.append(f"{hierarchy}:{controllers}:{posixpath.join(path, both.ours.id)}")
    assert _membership(both.ours) == expected
    theirs = [line.replace(both.theirs.id, both.ours.id) for line in _membership(both.theirs)]
    assert _membership(both.ours) == theirs


def test_cgroup_resources_are_written(both: Both) -> None:
    dirs = cgroup_dirs(both.ours.id)
    assert both.ours.pid in [int(p) for p in
                             Path(dirs["pids"], "cgroup.procs").read_text().split()]
    assert Path(dirs["memory"], "memory.limit_in_bytes").read_text().strip() == \
        str(MEMORY_LIMIT)
    assert Path(dirs["pids"], "pids.max").read_text().strip() == str(PIDS_LIMIT)


# --- a user namespace -------------------------------------------------------------------


@pytest.fixture(scope="module")
def userns_bundle() -> Iterator[Path]:
    """A bundle whose rootfs the container's root (host uid 100000) can reach.

    pytest's temp dirs are 0700, so this one is made under /tmp, open to all.
    """
    top = Path(tempfile.mkdtemp(prefix="pyrunc-userns."))
    try:
        top.chmod(0o755)
        bundle = top / "bundle"
        subprocess.run([str(PROJECT / "examples" / "mk-busybox-bundle.sh"), str(bundle),
                        "--no-terminal", "--args", "sleep 3600"],
                       check=True, capture_output=True)
        # The container's root must be able to make its mount points (/proc, /sys).
        subprocess.run(["chown", "-R", "100000:100000", str(bundle / "rootfs")], check=True)
        config_path = bundle / "config.json"
        config = json.loads(config_path.read_text())
        config["linux"]["namespaces"].append({"type": "user"})
        mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["uidMappings"] = mapping
        config["linux"]["gidMappings"] = mapping
        config_path.write_text(json.dumps(config))
        yield bundle
    finally:
        shutil.rmtree(top)


@pytest.mark.parametrize("runtime", ["runc", "pyrunc"])
def test_user_namespace_with_id_mappings(userns_bundle: Path, tmp_path: Path,
                                         runtime: str) -> None:
    rt = Runtime(pyrunc_binary() if runtime == "pyrunc" else "runc", tmp_path / "root")
    container_id = new_id()
    rt.run_detached("run", "-d", "--bundle", str(userns_bundle), container_id)
    try:
        pid = init_pid(rt, container_id)
        assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
        for name in ("uid_map", "gid_map"):
            assert Path(f"/proc/{pid}/{name}").read_text().split() == ["0", "100000", "65536"]
        status = proc_status(pid)
        assert status["Uid"].split() == ["100000"] * 4
        assert status["Gid"].split() == ["100000"] * 4
        assert Path(f"/proc/{pid}/cmdline").read_text() == "sleep\x003600\x00"
    finally:
        rt("delete", "--force", container_id)


# --- the init between create and start ---------------------------------------------------

_SET_UP = ("Uid", "Gid", "Groups", "Umask", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
           "NoNewPrivs")


def _created(rt: Runtime, bundle: Path, out: Path) -> str:
    """A container created (not started) from ``bundle``, its stdio on ``out``."""
    container_id = new_id()
    create(rt, bundle, container_id, out)
    assert rt.state(container_id)["status"] == "created"
    return container_id


def test_the_waiting_init_is_already_the_process_as_runcs_is(
        busybox_bundle_template: Path, tmp_path: Path) -> None:
    """Like runc's, the init sets the process up (user, groups, capabilities,
    no_new_privs, limits, cwd) before it waits for start: a failure there is
    create's, and no root-privileged init sits in the container meanwhile."""
    bundle = make_bundle(busybox_bundle_template, tmp_path / "bundle",
                         lambda config: _process_of_the_module(config["process"]))
    ours = Runtime(pyrunc_binary(), tmp_path / "pyrunc-root")
    theirs = Runtime("runc", tmp_path / "runc-root")
    ours_id = _created(ours, bundle, tmp_path / "ours.out")
    try:
        theirs_id = _created(theirs, bundle, tmp_path / "theirs.out")
        try:
            ours_pid, theirs_pid = init_pid(ours, ours_id), init_pid(theirs, theirs_id)
            status, runcs = proc_status(ours_pid), proc_status(theirs_pid)
            assert status["Uid"].split() == ["1"] * 4 and status["CapEff"] == CAP_MASK
            assert status["NoNewPrivs"] == "1"
            assert {f: status[f] for f in _SET_UP} == {f: runcs[f] for f in _SET_UP}
            limits = [line for line in Path(f"/proc/{ours_pid}/limits").read_text().splitlines()
                      if line.startswith("Max open files")]
            assert limits[0].split()[3:5] == ["1000", "2000"]
            assert Path(f"/proc/{ours_pid}/oom_score_adj").read_text() == "123\n"
            assert os.readlink(f"/proc/{ours_pid}/cwd") == os.readlink(f"/proc/{theirs_pid}/cwd")
        finally:
            theirs("delete", "--force", theirs_id)
        ours("start", ours_id, check=True)
        assert cmdline_of(ours_pid) == ["sleep", "3600"]
        assert proc_status(ours_pid)["CapEff"] == CAP_MASK
    finally:
        ours("delete", "--force", ours_id)


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_the_init_waits_for_start_before_its_seccomp_filter(
        busybox_bundle_template: Path, tmp_path: Path, no_new_privileges: bool) -> None:
    """runc loads the filter before it waits, and then needs the exec fifo and
    the startContainer hooks to pass it; pyrunc waits just before the filter.
    Without no_new_privileges the filter goes in while still root (loading it
    needs CAP_SYS_ADMIN then), so the init waits before it changes user."""
    def change(config: dict[str, Any]) -> None:
        _process_of_the_module(config["process"])
        config["process"]["noNewPrivileges"] = no_new_privileges
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mknodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}

    bundle = make_bundle(busybox_bundle_template, tmp_path / "bundle", change)
    ours = Runtime(pyrunc_binary(), tmp_path / "pyrunc-root")
    container_id = _created(ours, bundle, tmp_path / "out")
    try:
        pid = init_pid(ours, container_id)
        waiting = proc_status(pid)
        assert waiting["Seccomp"] == "0"
        assert waiting["Uid"].split() == (["1"] * 4 if no_new_privileges else ["0"] * 4)
        ours("start", container_id, check=True)
        running = proc_status(pid)
        assert cmdline_of(pid) == ["sleep", "3600"]
        assert (running["Seccomp"], running["Uid"].split(), running["CapEff"]) == (
            "2", ["1"] * 4, CAP_MASK)
    finally:
        ours("delete", "--force", container_id)


@pytest.mark.parametrize("runtime", ["runc", "pyrunc"])
def test_a_setup_failure_fails_create_and_leaves_nothing(userns_bundle: Path, tmp_path: Path,
                                                         runtime: str) -> None:
    """setgroups refuses a group outside the user namespace's map: runc fails
    create; so does pyrunc, now that the init sets the process up first."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    config = json.loads((userns_bundle / "config.json").read_text())
    config["root"]["path"] = str(userns_bundle / "rootfs")
    config["process"]["user"] = {"uid": 0, "gid": 0, "additionalGids": [70000]}
    (bundle / "config.json").write_text(json.dumps(config))
    rt = Runtime(pyrunc_binary() if runtime == "pyrunc" else "runc", tmp_path / "root")
    container_id = new_id()
    done = rt("create", "--bundle", str(bundle), container_id, stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    assert "setgroups" in done.stderr or "user: invalid argument" in done.stderr, done.stderr
    if runtime == "pyrunc":
        assert done.stderr.strip().splitlines() == [
            "container init failed: user: invalid argument"]
    assert rt("state", container_id).returncode != 0
    assert rt("list", "-q").stdout.strip() == ""
    assert not [path for path in cgroup_dirs(container_id).values() if os.path.exists(path)]
    assert not processes_in_cgroup_of(container_id)
