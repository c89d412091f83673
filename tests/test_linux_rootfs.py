"""prepare_rootfs against the real kernel, in throwaway namespaces.

Each container test forks a child that unshares the namespaces runc's
default spec asks for, and a grandchild (pid 1 of the new pid namespace, as
a container's init is) that calls prepare_rootfs and reports what it sees
through a pipe.  The namespaces die with the two processes, so nothing needs
unmounting afterwards; the tests check that nothing leaked to the host.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runpy_exec.errors import PyruncError
from runpy_exec.linux import syscalls as sc
from runpy_exec.linux.mountopts import (
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_RDONLY,
    mount_from_spec,
    parse_mount_options,
    root_propagation,
)
from runpy_exec.linux.rootfs import (
    devices_from_spec,
    mount_console,
    prepare_rootfs,
    validate_rootfs_spec,
)

Probe = Callable[[], dict[str, Any]]
# A "user" entry is left out: the tests stay real root, only the spec says otherwise.
CLONE_FLAGS = {
    "mount": sc.CLONE_NEWNS,
    "uts": sc.CLONE_NEWUTS,
    "ipc": sc.CLONE_NEWIPC,
    "pid": sc.CLONE_NEWPID,
    "network": sc.CLONE_NEWNET,
    "cgroup": sc.CLONE_NEWCGROUP,
}


def _grandchild(
    out: int,
    spec: dict[str, Any],
    bundle: str,
    no_pivot: bool,
    probe: Probe,
    after_pivot: Callable[[], None] | None,
) -> None:
    """Become the container's init; never returns into pytest."""
    try:
        try:
            prepare_rootfs(spec, bundle, no_pivot, after_pivot=after_pivot)
            result = {"ok": True, **probe()}
            payload = json.dumps(result)
        except Exception as exc:  # reported to the test, which asserts on it
            payload = json.dumps({"ok": False, "error": str(exc), "type": type(exc).__name__})
        os.write(out, payload.encode())
    finally:
        os._exit(0)


def in_container(
    spec: dict[str, Any],
    bundle: Path,
    probe: Probe,
    no_pivot: bool = False,
    after_pivot: Callable[[], None] | None = None,
) -> dict[str, Any]:
    host_before = _host_mounts_under(bundle)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            flags = 0
            for ns in spec["linux"]["namespaces"]:
                flags |= CLONE_FLAGS.get(ns["type"], 0)
            sc.unshare(flags)
            init = os.fork()
            if init == 0:
                _grandchild(write_end, spec, str(bundle), no_pivot, probe, after_pivot)
            os.waitpid(init, 0)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    assert data, "the container's init died without reporting"
    assert _host_mounts_under(bundle) == host_before, "a mount leaked to the host"
    result: dict[str, Any] = json.loads(data)
    return result


def _host_mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return [line for line in f if str(path) in line]


def mount_table(mountinfo: str) -> dict[str, tuple[str, set[str], set[str]]]:
    """mount point -> (fstype, per-mount options, superblock options); top mount wins."""
    table = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")
        table[fields[4]] = (
            fields[sep + 1],
            set(fields[5].split(",")),
            set(fields[sep + 3].split(",")),
        )
    return table


def _errno_of(action: Callable[[], object]) -> int:
    try:
        action()
    except OSError as exc:
        return exc.errno or 0
    return 0


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def probe_default() -> dict[str, Any]:
    null = os.stat("/dev/null")
    keys = os.stat("/proc/keys")
    return {
        "mountinfo": _read("/proc/self/mountinfo"),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "listing": sorted(os.listdir("/")),
        "null": [
            stat.S_ISCHR(null.st_mode),
            os.major(null.st_rdev),
            os.minor(null.st_rdev),
            stat.S_IMODE(null.st_mode),
        ],
        "devices": sorted(os.listdir("/dev")),
        "ptmx": os.readlink("/dev/ptmx"),
        "fd": os.readlink("/dev/fd"),
        "stdin": os.readlink("/dev/stdin"),
        "hostname": socket.gethostname(),
        "root_write": _errno_of(lambda: _write("/probe", "x")),
        "tmp_write": _errno_of(lambda: _write("/dev/shm/probe", "x")),
        "keys": [stat.S_ISCHR(keys.st_mode), os.major(keys.st_rdev), os.minor(keys.st_rdev)],
        "keys_text": _read("/proc/keys"),
        "kcore": _errno_of(lambda: _read("/proc/kcore")) if os.path.exists("/proc/kcore") else None,
        "acpi": os.listdir("/proc/acpi") if os.path.isdir("/proc/acpi") else None,
        "acpi_write": _errno_of(lambda: _write("/proc/acpi/probe", "x")),
        "msgmax": _read("/proc/sys/kernel/msgmax").strip(),
        "mq_msg_max": _read("/proc/sys/fs/mqueue/msg_max").strip(),
        "domainname": _read("/proc/sys/kernel/domainname").strip(),
        "proc_sys_write": _errno_of(lambda: _write("/proc/sys/kernel/msgmax", "9000")),
        "umask": os.umask(0o022),
    }


@pytest.fixture
def spec(busybox_bundle_template: Path) -> dict[str, Any]:
    """runc's default config.json (from mk-busybox-bundle.sh) over the shared rootfs."""
    config: dict[str, Any] = json.loads((busybox_bundle_template / "config.json").read_text())
    config["root"]["path"] = str(busybox_bundle_template / "rootfs")
    config["hostname"] = "pyrunc-test"
    config["domainname"] = "pyrunc.test"
    config["linux"]["sysctl"] = {"kernel.msgmax": "12345", "fs/mqueue/msg_max": "42"}
    return config


def _assert_default_container(result: dict[str, Any]) -> None:
    assert result["ok"], result.get("error")
    table = mount_table(result["mountinfo"])
    assert table["/"][1] >= {"ro"}
    assert table["/proc"][0] == "proc"
    assert table["/dev"][0] == "tmpfs"
    assert table["/dev"][1] >= {"nosuid"}
    assert {"mode=755", "size=65536k"} <= table["/dev"][2]
    assert table["/dev/pts"][0] == "devpts"
    assert {"ptmxmode=666", "mode=620", "gid=5"} <= table["/dev/pts"][2]
    assert table["/dev/shm"][0] == "tmpfs"
    assert table["/dev/mqueue"][0] == "mqueue"
    assert table["/sys"][0] == "sysfs"
    assert "ro" in table["/sys"][1]
    assert table["/sys/fs/cgroup"][0] in ("tmpfs", "cgroup2")
    assert table["/proc/sys"][1] >= {"ro"}
    # Nothing of the host's mount table beyond what the spec asked for.
    assert not [point for point in table if point.startswith("/mnt")]
    assert result["pid"] == 1
    assert result["cwd"] == "/"
    assert "bin" in result["listing"]
    assert result["null"] == [True, 1, 3, 0o666]
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm"} <= set(
        result["devices"]
    )
    assert result["ptmx"] == "pts/ptmx"
    assert result["fd"] == "/proc/self/fd"
    assert result["stdin"] == "/proc/self/fd/0"
    assert result["hostname"] == "pyrunc-test"
    assert result["root_write"] == errno.EROFS
    assert result["tmp_write"] == 0
    assert result["keys"] == [True, 1, 3]
    assert result["keys_text"] == ""
    assert result["kcore"] in (None, 0, errno.EPERM)
    assert result["acpi"] in (None, [])
    assert result["acpi_write"] in (errno.EROFS, errno.ENOENT)
    assert result["msgmax"] == "12345"
    assert result["mq_msg_max"] == "42"
    assert result["domainname"] == "pyrunc.test"
    assert result["proc_sys_write"] == errno.EROFS
    assert result["umask"] == 0o022


@pytest.mark.root
def test_runc_default_spec_with_pivot_root(spec: dict[str, Any], tmp_path: Path) -> None:
    host_hostname = socket.gethostname()
    host_msgmax = _read("/proc/sys/kernel/msgmax")
    _assert_default_container(in_container(spec, tmp_path, probe_default))
    assert socket.gethostname() == host_hostname
    assert _read("/proc/sys/kernel/msgmax") == host_msgmax


@pytest.mark.root
def test_no_pivot_moves_the_rootfs_onto_slash(spec: dict[str, Any], tmp_path: Path) -> None:
    def probe() -> dict[str, Any]:
        return {**probe_default(), "fresh_proc": _errno_of_fresh_procfs()}

    result = in_container(spec, tmp_path, probe, no_pivot=True)
    _assert_default_container(result)
    # runc's no_pivot.bats: were the host's unmasked /proc still in this
    # mount namespace, a nested user namespace could mount a bare procfs.
    assert result["fresh_proc"] == errno.EPERM


def _errno_of_fresh_procfs() -> int:
    """Try `unshare -mrpf mount -t proc` from inside the container; errno, or 0."""
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            sc.unshare(sc.CLONE_NEWUSER | sc.CLONE_NEWNS | sc.CLONE_NEWPID)
            inner = os.fork()
            if inner == 0:
                os._exit(_errno_of(lambda: sc.mount("proc", "/proc", "proc", 0)))
            code = os.waitstatus_to_exitcode(os.waitpid(inner, 0)[1])
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.root
@pytest.mark.parametrize("name,fstype", [("proc", "proc"), ("sys", "sysfs")])
def test_proc_or_sys_as_symlink_is_refused(
    name: str, fstype: str, spec: dict[str, Any], tmp_path: Path
) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / name).symlink_to("/symlink")
    spec["root"] = {"path": "rootfs", "readonly": False}
    spec["mounts"] = [m for m in spec["mounts"] if m["type"] == fstype]
    result = in_container(spec, tmp_path, probe_default)
    assert not result["ok"]
    assert f'filesystem "{fstype}" must be mounted on ordinary directory' in result["error"]
    assert f'rootfs at "/{name}"' in result["error"]
    assert not (rootfs / "symlink").exists()
    assert not os.path.lexists("/symlink")


@pytest.mark.root
def test_bind_mounts(spec: dict[str, Any], tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("hi\n")
    (tmp_path / "single").write_text("one file\n")
    spec["mounts"] += [
        {
            "destination": "/mnt/shared",
            "type": "none",
            "source": "shared",
            "options": ["rbind", "ro", "nosuid", "nodev"],
        },
        {
            "destination": "/etc/single",
            "type": "bind",
            "source": str(tmp_path / "single"),
            "options": ["bind", "rprivate"],
        },
        {
            "destination": "/mnt/rw",
            "type": "none",
            "source": str(shared),
            "options": ["rbind", "rw"],
        },
    ]

    def probe() -> dict[str, Any]:
        return {
            "mountinfo": _read("/proc/self/mountinfo"),
            "hello": _read("/mnt/shared/hello"),
            "ro_write": _errno_of(lambda: _write("/mnt/shared/new", "x")),
            "single": _read("/etc/single"),
            "single_is_file": os.path.isfile("/etc/single"),
            "rw_write": _errno_of(lambda: _write("/mnt/rw/written", "x")),
        }

    result = in_container(spec, tmp_path, probe)
    assert result["ok"], result.get("error")
    table = mount_table(result["mountinfo"])
    assert {"ro", "nosuid", "nodev"} <= table["/mnt/shared"][1]
    assert result["hello"] == "hi\n"
    assert result["ro_write"] == errno.EROFS
    assert result["single"] == "one file\n"
    assert result["single_is_file"]
    assert result["rw_write"] == 0
    assert (shared / "written").read_text() == "x"


@pytest.mark.root
def test_symlinked_destination_stays_inside_the_rootfs(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    """CVE-2021-30465 family: an absolute symlink in the image names a host path."""
    host_target = tmp_path / "host-target"
    host_target.mkdir()
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "evil").symlink_to(str(host_target))
    source = tmp_path / "source"
    source.mkdir()
    (source / "marker").write_text("m")
    spec["root"] = {"path": "rootfs", "readonly": False}
    spec["process"]["cwd"] = "/made/../made/here"
    spec["mounts"] = [m for m in spec["mounts"] if m["type"] in ("proc", "tmpfs")] + [
        {"destination": "/evil/x", "type": "bind", "source": str(source), "options": ["bind"]},
    ]

    def probe() -> dict[str, Any]:
        return {"marker": _read(f"{host_target}/x/marker")}

    result = in_container(spec, tmp_path, probe)
    assert result["ok"], result.get("error")
    assert result["marker"] == "m"
    assert list(host_target.iterdir()) == []
    assert (rootfs / str(host_target).lstrip("/") / "x").is_dir()
    assert (rootfs / "made" / "here").is_dir()


@pytest.mark.root
def test_mounts_inside_proc_are_refused(spec: dict[str, Any], tmp_path: Path) -> None:
    spec["mounts"].append(
        {
            "destination": "/proc/self/attr",
            "type": "bind",
            "source": str(tmp_path),
            "options": ["bind"],
        }
    )
    result = in_container(spec, tmp_path, probe_default)
    assert not result["ok"]
    assert "cannot be mounted because it is inside /proc" in result["error"]


@pytest.mark.root
def test_linux_devices_and_tmpcopyup(spec: dict[str, Any], tmp_path: Path) -> None:
    spec["linux"]["devices"] = [
        {
            "path": "/dev/extra/null2",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": 0o600,
            "uid": 1,
            "gid": 2,
        },
        {"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0},
    ]
    spec["mounts"].append(
        {
            "destination": "/etc",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["tmpcopyup", "nosuid"],
        }
    )

    def probe() -> dict[str, Any]:
        null2 = os.stat("/dev/extra/null2")
        fifo = os.stat("/dev/fifo")
        return {
            "null2": [
                stat.S_ISCHR(null2.st_mode),
                os.major(null2.st_rdev),
                os.minor(null2.st_rdev),
                stat.S_IMODE(null2.st_mode),
                null2.st_uid,
                null2.st_gid,
            ],
            "fifo": [stat.S_ISFIFO(fifo.st_mode), stat.S_IMODE(fifo.st_mode)],
            "passwd": _read("/etc/passwd"),
            "etc_write": _errno_of(lambda: _write("/etc/new", "x")),
            "etc_type": mount_table(_read("/proc/self/mountinfo"))["/etc"][0],
        }

    result = in_container(spec, tmp_path, probe)
    assert result["ok"], result.get("error")
    assert result["null2"] == [True, 1, 3, 0o600, 1, 2]
    assert result["fifo"] == [True, 0o666]
    assert result["passwd"].startswith("root:x:0:0:")
    assert result["etc_write"] == 0
    assert result["etc_type"] == "tmpfs"
    assert not (Path(spec["root"]["path"]) / "etc" / "new").exists()


@pytest.mark.root
def test_cgroup_namespace_gets_its_own_cgroup_mounts(spec: dict[str, Any], tmp_path: Path) -> None:
    if {"type": "cgroup"} not in spec["linux"]["namespaces"]:  # runc spec adds it on v2
        spec["linux"]["namespaces"].append({"type": "cgroup"})

    def probe() -> dict[str, Any]:
        return {"mountinfo": _read("/proc/self/mountinfo")}

    result = in_container(spec, tmp_path, probe)
    assert result["ok"], result.get("error")
    cgroups = [
        line.split()
        for line in result["mountinfo"].splitlines()
        if line.split()[4].startswith("/sys/fs/cgroup")
    ]
    assert cgroups
    for fields in cgroups:
        # The namespace's root, not the host's path to it.
        assert fields[3] == "/"
        if fields[4] != "/sys/fs/cgroup":
            assert "ro" in fields[5].split(",")


@pytest.mark.root
def test_console_is_bound_from_the_containers_own_devpts(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    def console() -> None:
        _, slave = os.openpty()  # through /dev/ptmx -> pts/ptmx: the container's devpts
        mount_console(slave)

    def probe() -> dict[str, Any]:
        st = os.stat("/dev/console")
        return {
            "console": [stat.S_ISCHR(st.st_mode), os.major(st.st_rdev)],
            "pts": sorted(os.listdir("/dev/pts")),
        }

    result = in_container(spec, tmp_path, probe, after_pivot=console)
    assert result["ok"], result.get("error")
    assert result["console"] == [True, 136]
    assert result["pts"] == ["0", "ptmx"]


@pytest.mark.root
def test_devices_are_bound_from_the_host_in_a_user_namespace(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    spec["linux"]["namespaces"].append({"type": "user"})

    def probe() -> dict[str, Any]:
        null = os.stat("/dev/null")
        return {
            "mountinfo": _read("/proc/self/mountinfo"),
            "null": [stat.S_ISCHR(null.st_mode), os.major(null.st_rdev), os.minor(null.st_rdev)],
        }

    result = in_container(spec, tmp_path, probe)
    assert result["ok"], result.get("error")
    assert result["null"] == [True, 1, 3]
    table = mount_table(result["mountinfo"])
    assert "/dev/null" in table and "/dev/tty" in table


def test_validation_matches_runc(spec: dict[str, Any], tmp_path: Path) -> None:
    bundle = str(tmp_path)
    no_uts = {
        **spec,
        "linux": {
            **spec["linux"],
            "namespaces": [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "uts"],
        },
    }
    with pytest.raises(PyruncError, match="unable to set hostname without a private UTS"):
        validate_rootfs_spec(no_uts, bundle)
    host_net = {
        **spec,
        "linux": {
            **spec["linux"],
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "namespaces": [{"type": "mount"}, {"type": "uts"}],
        },
    }
    with pytest.raises(PyruncError, match='sysctl "net.ipv4.ip_forward" not allowed in host'):
        validate_rootfs_spec(host_net, bundle)
    hostwide = {**spec, "linux": {**spec["linux"], "sysctl": {"vm.swappiness": "1"}}}
    with pytest.raises(PyruncError, match="is not in a separate kernel namespace"):
        validate_rootfs_spec(hostwide, bundle)
    private = {**spec, "linux": {**spec["linux"], "rootfsPropagation": "rprivate"}}
    with pytest.raises(PyruncError, match="not safe without pivot_root"):
        validate_rootfs_spec(private, bundle, no_pivot=True)
    missing = {**spec, "root": {"path": "nowhere"}}
    with pytest.raises(PyruncError, match="invalid rootfs"):
        validate_rootfs_spec(missing, bundle)
    validate_rootfs_spec(spec, bundle)


def test_mount_options_split_like_runc() -> None:
    parsed = parse_mount_options(
        ["nosuid", "strictatime", "mode=755", "size=65536k", "rw", "rslave", "rro", "rnoatime"]
    )
    assert parsed.flags == sc.MS_NOSUID | sc.MS_STRICTATIME
    assert parsed.data == "mode=755,size=65536k"
    assert parsed.propagation == (sc.MS_SLAVE | sc.MS_REC,)
    assert parsed.attr_set == MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME
    assert parsed.attr_clr == MOUNT_ATTR__ATIME
    assert parse_mount_options(["ro", "rw"]).flags == 0
    assert parse_mount_options(["defaults", "tmpcopyup"]).copy_up
    assert parse_mount_options(["defaults"]).data == ""
    bind = mount_from_spec(
        {"destination": "/x", "type": "tmpfs", "source": "rel", "options": ["rbind"]}, "/bundle"
    )
    assert (bind.device, bind.source, bind.flags) == ("bind", "/bundle/rel", sc.MS_BIND | sc.MS_REC)
    assert root_propagation("") == 0
    assert root_propagation("rshared") == sc.MS_SHARED | sc.MS_REC
    with pytest.raises(PyruncError, match="rootfsPropagation=bogus is not supported"):
        root_propagation("bogus")


def test_spec_devices_override_defaults() -> None:
    devices = devices_from_spec(
        {
            "linux": {
                "devices": [
                    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o20600}
                ]
            }
        }
    )
    nulls = [d for d in devices if d.path == "/dev/null"]
    assert len(nulls) == 1 and nulls[0].mode == 0o600
    assert len(devices) == 6
    with pytest.raises(PyruncError, match="invalid device type"):
        devices_from_spec({"linux": {"devices": [{"path": "/dev/x", "type": "q"}]}})
