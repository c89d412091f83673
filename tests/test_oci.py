"""config.json, process.json and state loading through the pydantic models."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from runpy_exec import oci
from runpy_exec.errors import PyruncError
from runpy_exec.spec_default import default_spec

U32 = 2**32 - 1
U64 = 2**64 - 1

FULL_SPEC: dict[str, Any] = {
    "ociVersion": "1.1.0",
    "process": {
        "terminal": False,
        "consoleSize": {"height": 24, "width": 80},
        "user": {
            "uid": 1000,
            "gid": 1000,
            "umask": 0o22,
            "additionalGids": [5, 6],
            "username": "me",
        },
        "args": ["/bin/app", "--flag"],
        "commandLine": "app --flag",
        "env": ["PATH=/bin", "HOME=/root"],
        "cwd": "/srv",
        "capabilities": {
            "bounding": ["CAP_KILL"],
            "effective": ["CAP_KILL"],
            "inheritable": [],
            "permitted": ["CAP_KILL"],
            "ambient": [],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": U64, "soft": 1024}],
        "noNewPrivileges": True,
        "apparmorProfile": "docker-default",
        "oomScoreAdj": -500,
        "scheduler": {
            "policy": "SCHED_DEADLINE",
            "nice": -5,
            "priority": 0,
            "flags": ["SCHED_FLAG_RESET_ON_FORK"],
            "runtime": 10,
            "deadline": 20,
            "period": 30,
        },
        "selinuxLabel": "system_u:system_r:container_t:s0",
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
        "execCPUAffinity": {"initial": "0", "final": "0-1"},
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "box",
    "domainname": "example.org",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind"]},
    ],
    "hooks": {
        name: [{"path": "/bin/hook", "args": ["hook", name], "env": ["A=1"], "timeout": 5}]
        for name in (
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        )
    },
    "annotations": {"org.example/key": "value"},
    "linux": {
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "resources": {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
            ],
            "memory": {
                "limit": 536870912,
                "reservation": -1,
                "swap": -1,
                "kernel": -1,
                "kernelTCP": -1,
                "swappiness": 0,
                "disableOOMKiller": False,
                "useHierarchy": True,
                "checkBeforeUpdate": True,
            },
            "cpu": {
                "shares": 1024,
                "quota": -1,
                "burst": 0,
                "period": 100000,
                "realtimeRuntime": 0,
                "realtimePeriod": 0,
                "cpus": "0-1",
                "mems": "0",
                "idle": 0,
            },
            "pids": {"limit": 100},
            "blockIO": {
                "weight": 500,
                "leafWeight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 100, "leafWeight": 50}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
            "unified": {"memory.high": "max"},
        },
        "cgroupsPath": "/pyrunc/box",
        "namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/x"}],
        "devices": [
            {
                "type": "c",
                "path": "/dev/fuse",
                "major": 10,
                "minor": 229,
                "fileMode": 0o666,
                "uid": 0,
                "gid": 0,
            }
        ],
        "seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/seccomp.sock",
            "listenerMetadata": "meta",
            "syscalls": [
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "errnoRet": 0,
                    "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
                }
            ],
        },
        "rootfsPropagation": "rslave",
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
        "mountLabel": "system_u:object_r:container_file_t:s0",
        "intelRdt": {
            "closID": "guaranteed",
            "l3CacheSchema": "L3:0=7f0",
            "memBwSchema": "MB:0=20",
            "enableCMT": True,
            "enableMBM": True,
        },
        "personality": {"domain": "LINUX32", "flags": []},
    },
}


def write(path: Path, document: Any) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def load_spec_error(tmp_path: Path, document: Any) -> str:
    path = write(tmp_path / "config.json", document)
    with pytest.raises(PyruncError) as caught:
        oci.load_spec(path)
    assert caught.value.exit_code == 1
    message = str(caught.value)
    assert "\n" not in message
    prefix = f"{path}: "
    assert message.startswith(prefix)
    return message[len(prefix) :]


def test_every_modelled_field_survives_loading(tmp_path: Path) -> None:
    assert oci.load_spec(write(tmp_path / "config.json", FULL_SPEC)) == FULL_SPEC


def test_unknown_fields_and_nulls_are_dropped(tmp_path: Path) -> None:
    document = copy.deepcopy(FULL_SPEC)
    document["vm"] = {"hypervisor": {"path": "/bin/qemu"}}
    document["process"]["user"]["fancy"] = [1, 2]
    document["linux"]["resources"]["memory"]["kernel"] = None
    document["linux"]["namespaces"][0]["x-extra"] = True
    document["hostname"] = None
    expected = copy.deepcopy(FULL_SPEC)
    del expected["linux"]["resources"]["memory"]["kernel"]
    del expected["hostname"]
    assert oci.load_spec(write(tmp_path / "config.json", document)) == expected


def test_minimal_config(tmp_path: Path) -> None:
    minimal = {
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs"},
    }
    assert oci.load_spec(write(tmp_path / "config.json", minimal)) == minimal


def spec_with(edit: str, value: Any) -> dict[str, Any]:
    """The default spec with the dotted path ``edit`` set (or deleted if ``...``)."""
    document = default_spec()
    *parents, last = edit.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is ...:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return document


@pytest.mark.parametrize(
    ("edit", "value", "expected"),
    [
        ("process.user.uid", "0", "process.user.uid: Input should be a valid integer"),
        ("process.user.uid", 1.0, "process.user.uid: Input should be a valid integer"),
        ("process.user.uid", True, "process.user.uid: Input should be a valid integer"),
        ("process.user.uid", -1, "process.user.uid: Input should be greater than or equal to 0"),
        (
            "process.user.gid",
            U32 + 1,
            "process.user.gid: Input should be less than or equal to 4294967295",
        ),
        ("process.cwd", ..., "process.cwd: Field required"),
        ("process.cwd", "", "process.cwd: String should match pattern '^/'"),
        ("process.args", ..., "process.args: Field required"),
        (
            "process.args",
            [],
            "process.args: List should have at least 1 item after validation, not 0",
        ),
        ("process", ..., "process: Field required"),
        ("root", ..., "root: Field required"),
        ("ociVersion", 1.0, "ociVersion: Input should be a valid string"),
        ("process.terminal", "true", "process.terminal: Input should be a valid boolean"),
        ("process.terminal", 1, "process.terminal: Input should be a valid boolean"),
        ("process.env", "PATH=/bin", "process.env: Input should be a valid list"),
        ("process.env.1", 5, "process.env[1]: Input should be a valid string"),
        ("mounts.3.destination", ..., "mounts[3].destination: Field required"),
        (
            "linux.namespaces.1",
            {"type": "bogus"},
            "linux.namespaces[1].type: Input should be 'pid', 'network', 'mount', 'ipc', "
            "'uts', 'user', 'cgroup' or 'time'",
        ),
        (
            "linux.resources.devices.0.allow",
            "no",
            "linux.resources.devices[0].allow: Input should be a valid boolean",
        ),
        (
            "linux.resources",
            [],
            "linux.resources: Input should be a valid dictionary or instance of Resources",
        ),
        ("annotations", {"a": 1}, "annotations.a: Input should be a valid string"),
        ("linux.seccomp", {}, "linux.seccomp.defaultAction: Field required"),
    ],
)
def test_config_errors_name_the_json_path(
    tmp_path: Path, edit: str, value: Any, expected: str
) -> None:
    assert load_spec_error(tmp_path, spec_with(edit, value)) == expected


@pytest.mark.parametrize(("key", "value", "cleaned"), [
    ("user", {"uid": 0}, {"uid": 0}),  # runc v1.2.0's capabilities.bats
    ("user", {"gid": 5}, {"gid": 5}),
    ("user", {"uid": None, "gid": None}, {}),
    ("user", None, None),
    ("rlimits", [{"type": "RLIMIT_NOFILE"}], [{"type": "RLIMIT_NOFILE"}]),
    ("consoleSize", {}, {}),
    ("ioPriority", {"class": "IOPRIO_CLASS_BE"}, {"class": "IOPRIO_CLASS_BE"}),
])
def test_fields_runc_fills_with_go_zero_values_may_be_left_out(
        tmp_path: Path, key: str, value: Any, cleaned: Any) -> None:
    """What runc accepts because Go's decoder leaves a missing field 0 is accepted, and
    the field stays out of the cleaned document (readers default it to 0)."""
    document = default_spec()
    document["process"][key] = value
    loaded = oci.load_spec(write(tmp_path / "config.json", document))
    assert loaded["process"].get(key) == cleaned


def test_missing_oci_version_is_accepted_as_runc_does(tmp_path: Path) -> None:
    document = default_spec()
    del document["ociVersion"]
    assert "ociVersion" not in oci.load_spec(write(tmp_path / "config.json", document))


def test_first_of_several_errors_in_document_order(tmp_path: Path) -> None:
    document = default_spec()
    document["linux"]["namespaces"] = 5
    document["process"]["user"]["gid"] = "x"
    document["process"]["user"]["uid"] = "y"
    assert (
        load_spec_error(tmp_path, document) == "process.user.uid: Input should be a valid integer"
    )


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    assert (
        load_spec_error(tmp_path, ["x"]) == "Input should be a valid dictionary or instance of Spec"
    )


def test_widest_integers_are_accepted(tmp_path: Path) -> None:
    document = default_spec()
    document["process"]["user"] = {"uid": U32, "gid": U32, "additionalGids": [0, U32]}
    document["process"]["rlimits"] = [{"type": "RLIMIT_CORE", "hard": U64, "soft": U64}]
    document["linux"]["resources"]["memory"] = {"limit": -(2**63), "swap": 2**63 - 1}
    assert oci.load_spec(write(tmp_path / "config.json", document)) == document


def test_time_namespace_and_paused_state_are_accepted() -> None:
    assert oci.Namespace.model_validate({"type": "time"}).type == "time"
    runc_state = {
        "ociVersion": "1.0.2-dev",
        "id": "box",
        "pid": 4242,
        "status": "paused",
        "bundle": "/srv/bundle",
        "rootfs": "/srv/bundle/rootfs",
        "created": "2024-01-01T00:00:00Z",
        "owner": "",
    }
    dumped = oci.State.model_validate(runc_state).model_dump(by_alias=True, exclude_none=True)
    assert dumped == {
        key: runc_state[key] for key in ("ociVersion", "id", "pid", "status", "bundle")
    }


def test_missing_config_names_the_path_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PyruncError) as caught:
        oci.load_spec("config.json")
    assert str(caught.value) == "config.json: no such file or directory"


def test_directory_instead_of_config(tmp_path: Path) -> None:
    with pytest.raises(PyruncError) as caught:
        oci.load_spec(str(tmp_path))
    assert str(caught.value) == f"{tmp_path}: is a directory"


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n\t"ociVersion": "1.0.2",\n\t"process": {,}\n}')
    with pytest.raises(PyruncError) as caught:
        oci.load_spec(str(path))
    assert str(caught.value) == (
        f"{path}: invalid JSON: "
        "Expecting property name enclosed in double quotes at line 3 column 14"
    )


def test_invalid_utf8_is_reported_as_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"hostname": "\xff"}')
    with pytest.raises(PyruncError, match=r": invalid JSON: invalid start byte$"):
        oci.load_spec(str(path))


def test_load_process_uses_exec_exit_code_and_given_name(tmp_path: Path) -> None:
    path = write(tmp_path / "my-proc.json", {"args": ["sh"], "cwd": "relative"})
    with pytest.raises(PyruncError) as caught:
        oci.load_process(path)
    assert caught.value.exit_code == 255
    assert str(caught.value) == f"{path}: cwd: String should match pattern '^/'"
    process = FULL_SPEC["process"]
    assert oci.load_process(write(tmp_path / "ok.json", process)) == process
