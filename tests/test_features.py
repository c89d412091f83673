"""pyrunc features: the document's shape, and every item it advertises tried on
real containers (mount options, namespaces, capabilities, seccomp actions and
flags), so the document never promises what pyrunc cannot do."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime, edit_config, imported_modules, pyrunc_binary, running
from tests.exec_support import init_pid, status_fields

Document = dict[str, Any]


@pytest.fixture(scope="module")
def document() -> Document:
    import subprocess

    result = subprocess.run([pyrunc_binary(), "features"], capture_output=True, text=True,
                            check=True)
    doc: Document = json.loads(result.stdout)
    return doc


def _features_and_imports(*global_options: str) -> tuple[str, set[str]]:
    """What ``pyrunc [global_options] features`` prints, and the modules it loads."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-X", "importtime", pyrunc_binary(),
                           *global_options, "features"],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout, imported_modules(done.stderr)


def test_the_document_has_the_runtime_spec_shape(document: Document) -> None:
    assert document["ociVersionMin"] == "1.0.0"
    assert document["ociVersionMax"]
    assert document["hooks"] == ["prestart", "createRuntime", "createContainer",
                                 "startContainer", "poststart", "poststop"]
    assert {"rro", "rbind", "ro", "nosuid", "tmpcopyup"} <= set(document["mountOptions"])
    # A new mount cannot be a remount (runc fails it the same way): not offered.
    assert "remount" not in document["mountOptions"]
    linux = document["linux"]
    assert set(linux["cgroup"]) == {"v1", "v2", "systemd", "systemdUser", "rdma"}
    assert linux["mountExtensions"] == {"idmap": {"enabled": False}}
    assert linux["intelRdt"] == {"enabled": False}
    seccomp = linux["seccomp"]
    assert seccomp["enabled"] is True
    assert set(seccomp["supportedFlags"]) <= set(seccomp["knownFlags"])
    assert "SCMP_ARCH_X86_64" in seccomp["archs"] and "SCMP_CMP_MASKED_EQ" in seccomp["operators"]
    assert "io.github.seccomp.libseccomp.version" in document["annotations"]
    assert document["potentiallyUnsafeConfigAnnotations"] == []


def test_cgroup_versions_follow_the_mounts(document: Document) -> None:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        fstypes = {line.split(" - ")[1].split()[0] for line in f}
    cgroup = document["linux"]["cgroup"]
    assert cgroup["v1"] == ("cgroup" in fstypes)
    if "cgroup2" not in fstypes:
        assert cgroup["v2"] is False
    # The systemd driver needs systemd running and its system bus.
    assert cgroup["systemd"] is (os.path.isdir("/run/systemd/system")
                                 and os.path.exists("/run/dbus/system_bus_socket"))


def test_capabilities_are_the_kernels_that_pyrunc_holds(document: Document) -> None:
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    bounding = int(status_fields(Path("/proc/self/status").read_text())["CapBnd"], 16)
    held = [n for n in range(last + 1) if bounding >> n & 1]
    assert len(document["linux"]["capabilities"]) == len(held)


# Options that only make sense together with another, and a mount to try them on.
_BIND_ONLY = {"bind", "rbind"}


def _mount_for(option: str, source: Path, index: int) -> dict[str, Any]:
    destination = f"/m{index}"
    if option in _BIND_ONLY or option.startswith("r") and option not in {"relatime", "ro",
                                                                          "rw"}:
        options = ["rbind", option] if option != "rbind" else ["rbind"]
        return {"destination": destination, "type": "bind", "source": str(source),
                "options": options}
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs",
            "options": [option]}


@pytest.mark.root
def test_every_advertised_mount_option_mounts(document: Document, pyrunc: Runtime,
                                              bundle: Path, tmp_path: Path) -> None:
    """Each option on a mount of its own in one container; each mount is there."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "marker").write_text("here")
    options = document["mountOptions"]
    mounts = [_mount_for(option, source, i) for i, option in enumerate(options)]
    edit_config(bundle, lambda c: c["mounts"].extend(mounts))
    with running(pyrunc, bundle) as container_id:
        pid = init_pid(pyrunc, container_id)
        table = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        mounted = {line.split()[4]: line for line in table}
        for i, option in enumerate(options):
            assert f"/m{i}" in mounted, f"mount option {option!r} gave no mount"
        assert " ro," in mounted[f"/m{options.index('ro')}"] or \
            mounted[f"/m{options.index('ro')}"].split()[5].startswith("ro")
        assert "nosuid" in mounted[f"/m{options.index('nosuid')}"].split()[5]


@pytest.mark.root
def test_every_advertised_namespace_is_created(document: Document, pyrunc: Runtime,
                                               bundle: Path) -> None:
    kinds = document["linux"]["namespaces"]
    proc_names = {"network": "net", "mount": "mnt"}

    def change(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [{"type": kind} for kind in kinds]
        if "user" in kinds:
            config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
            config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]

    edit_config(bundle, change)
    with running(pyrunc, bundle) as container_id:
        pid = init_pid(pyrunc, container_id)
        for kind in kinds:
            name = proc_names.get(kind, kind)
            ours = os.readlink(f"/proc/{pid}/ns/{name}")
            assert ours != os.readlink(f"/proc/self/ns/{name}"), f"{kind} namespace not new"


@pytest.mark.root
def test_every_advertised_capability_is_granted(document: Document, pyrunc: Runtime,
                                                bundle: Path) -> None:
    from runpy_exec.resolve import cap_number

    names = document["linux"]["capabilities"]

    def change(config: dict[str, Any]) -> None:
        config["process"]["capabilities"] = {kind: names for kind in
                                             ("bounding", "effective", "permitted")}

    edit_config(bundle, change)
    container_id = f"caps{os.getpid()}"
    # --net-raw: CAP_NET_RAW is dropped by default, granted when asked for.
    pyrunc.run_detached("--net-raw", "run", "-d", "--bundle", str(bundle), container_id)
    try:
        status = status_fields(Path(f"/proc/{init_pid(pyrunc, container_id)}/status")
                               .read_text())
    finally:
        pyrunc("delete", "--force", container_id)
    numbers = [cap_number(name) for name in names]
    assert None not in numbers
    wanted = sum(1 << n for n in numbers if n is not None)
    for field in ("CapBnd", "CapEff", "CapPrm"):
        assert int(status[field], 16) == wanted, field


# What "mkdir /tmp/d" reports under each action on mkdir/mkdirat: its exit
# status as sh sees it and a word of its error, if any.
_SIGSYS = 128 + signal.SIGSYS
_OUTCOMES = {
    "SCMP_ACT_ALLOW": (0, ""),
    "SCMP_ACT_LOG": (0, ""),
    "SCMP_ACT_ERRNO": (1, "Operation not permitted"),
    "SCMP_ACT_TRACE": (1, "Function not implemented"),  # no tracer: ENOSYS
    "SCMP_ACT_TRAP": (_SIGSYS, ""),
    "SCMP_ACT_KILL": (_SIGSYS, ""),
    "SCMP_ACT_KILL_THREAD": (_SIGSYS, ""),
    "SCMP_ACT_KILL_PROCESS": (_SIGSYS, ""),
}


@pytest.mark.root
def test_every_advertised_seccomp_action_acts(document: Document, pyrunc: Runtime,
                                              bundle: Path) -> None:
    actions = document["linux"]["seccomp"]["actions"]
    assert set(actions) <= set(_OUTCOMES), "an action this test does not know how to try"
    for action in actions:
        def change(config: dict[str, Any], action: str = action) -> None:
            config["mounts"].append({"destination": "/tmp", "type": "tmpfs",
                                     "source": "tmpfs"})
            config["process"]["args"] = ["sh", "-c", "mkdir /tmp/d; echo status=$?"]
            config["linux"]["seccomp"] = {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}],
            }

        edit_config(bundle, change)
        result = pyrunc("run", "--bundle", str(bundle), f"sc{os.getpid()}", timeout=60)
        status, error = _OUTCOMES[action]
        assert f"status={status}" in result.stdout, (action, result.stdout, result.stderr)
        assert error in result.stderr, (action, result.stderr)


@pytest.mark.root
def test_every_supported_seccomp_flag_loads(document: Document, pyrunc: Runtime,
                                            bundle: Path) -> None:
    flags = document["linux"]["seccomp"]["supportedFlags"]

    def change(config: dict[str, Any]) -> None:
        config["process"]["args"] = ["sh", "-c", "grep Seccomp: /proc/self/status"]
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "flags": flags,
                                      "syscalls": [{"names": ["acct"],
                                                    "action": "SCMP_ACT_ERRNO"}]}

    edit_config(bundle, change)
    result = pyrunc("run", "--bundle", str(bundle), f"sf{os.getpid()}", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Seccomp:\t2" in result.stdout


def test_libseccomp_is_asked_what_pyseccomp_would_answer(document: Document) -> None:
    """features asks libseccomp through _ctypes (pyseccomp's import costs ~15 ms);
    its answers are those pyseccomp gets from the same library."""

    import pyseccomp

    from runpy_exec.linux import seccomp

    assert seccomp.libseccomp_api() == pyseccomp.get_api()
    resolve = pyseccomp._libseccomp.seccomp_arch_resolve_name
    for name, attr in seccomp._ARCHES.items():
        token = resolve(attr.lower().encode())
        assert token & 0xFFFFFFFF == getattr(pyseccomp.Arch, attr)  # pyseccomp's token
        assert seccomp.libseccomp_knows_arch(name), name
    assert resolve(b"no-such-arch") == 0
    for flag, attribute in seccomp._FLAGS.items():
        try:
            pyseccomp.SyscallFilter(pyseccomp.ALLOW).set_attr(attribute, 1)
        except (OSError, ValueError):
            sets = False
        else:
            sets = True
        assert seccomp.libseccomp_sets_flag(flag) == sets, flag
    assert sorted(document["linux"]["seccomp"]["archs"]) == sorted(
        name for name in seccomp._ARCHES if seccomp.libseccomp_knows_arch(name))
    _, imported = _features_and_imports()
    assert not imported & {"pyseccomp", "ctypes", "typer", "json", "typing"}, imported


def test_a_bare_call_skips_the_command_line_parser(document: Document) -> None:
    """dockerd and containerd run ``features`` with no option as they start: that
    call loads neither the flag tables, the request tuples nor the logger, and
    prints the document a call that goes through them prints."""
    bare, imported = _features_and_imports()
    assert "runpy_exec.features" in imported
    assert not imported & {"runpy_exec.fastargs", "runpy_exec.requests", "runpy_exec.log",
                           "runpy_exec.errors"}, imported
    assert json.loads(bare) == document
    parsed, imported = _features_and_imports("--log-format", "text")
    assert {"runpy_exec.fastargs", "runpy_exec.log"} <= imported
    assert parsed == bare


def test_the_host_part_comes_from_the_cache_until_a_source_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first call probes and files the host part; later calls take it from the
    cache, and give the same document, until a file it came from changes."""
    from runpy_exec import features

    cache_dir = str(tmp_path / "cache")
    source = tmp_path / "libsomething.so"
    source.write_bytes(b"one")
    real_sources = features._sources
    monkeypatch.setattr(features, "_sources", lambda: real_sources() | {str(source)})
    probes: list[int] = []
    real_probe = features._probe_host

    def counted_probe() -> dict[str, Any]:
        probes.append(1)
        return real_probe()

    monkeypatch.setattr(features, "_probe_host", counted_probe)
    first = features.features(cache_dir)
    (cache,) = Path(cache_dir).iterdir()
    assert len(probes) == 1
    assert features.features(cache_dir) == first
    assert len(probes) == 1, "a second call probed again"
    source.write_bytes(b"two, longer")  # as an upgrade rewrites a library
    assert features.features(cache_dir) == first
    assert len(probes) == 2, "a changed source was not noticed"
    assert features.features(cache_dir) == first and len(probes) == 2
    cache.write_bytes(b'{"boot": "torn')
    assert features.features(cache_dir) == first and len(probes) == 3
    for key, other in (("boot", "another boot"), ("package", "/another/install/runpy_exec"),
                       ("loaderEnv", ["/opt/lib", None])):
        entry = json.loads(cache.read_text())
        entry[key] = other
        cache.write_text(json.dumps(entry))
        probed = len(probes)
        assert features.features(cache_dir) == first and len(probes) == probed + 1, key
    # Another install (a checkout beside a pip install) keeps an entry of its own:
    # calls from the two take turns without probing again.
    probed = len(probes)
    real_install = features._install
    monkeypatch.setattr(features, "_install", lambda: "/another/install/runpy_exec")
    assert features.features(cache_dir) == first and len(probes) == probed + 1
    assert len(list(Path(cache_dir).iterdir())) == 2
    monkeypatch.setattr(features, "_install", real_install)
    assert features.features(cache_dir) == first and len(probes) == probed + 1
    monkeypatch.setattr(features, "_install", lambda: "/another/install/runpy_exec")
    assert features.features(cache_dir) == first and len(probes) == probed + 1


def test_a_cache_that_cannot_be_written_only_costs_the_probe(tmp_path: Path) -> None:
    from runpy_exec import features

    blocker = tmp_path / "file"
    blocker.write_text("")
    document = features.features(str(blocker / "cache"))  # under a file: no directory
    assert document == features.features(str(tmp_path / "cache"))
    assert document["linux"]["seccomp"]["enabled"] is True


@pytest.mark.root
def test_a_features_call_with_the_host_part_kept_loads_no_libseccomp() -> None:
    """Engines call features as they start: once the host part is kept, neither
    _ctypes nor libseccomp is loaded; once the document is, neither JSON nor
    any linux module.  The document is the one probed, every time."""
    import shutil
    import subprocess

    from runpy_exec import features

    shutil.rmtree(features.CACHE_DIR, ignore_errors=True)
    probed = subprocess.run([pyrunc_binary(), "features"], capture_output=True, text=True,
                            timeout=60, check=True)
    entries = sorted(Path(features.CACHE_DIR).iterdir())
    assert [entry.suffix for entry in entries] == [".document", ".json"]
    entries[0].unlink()  # the host part kept, the document made again
    made, imported = _features_and_imports()
    assert made == probed.stdout
    assert not imported & {"_ctypes", "_prctl", "runpy_exec.linux.seccomp",
                           "runpy_exec.linux.capabilities"}, imported
    assert "_json" in imported
    kept, imported = _features_and_imports()
    assert kept == probed.stdout
    assert not imported & {"_json", "runpy_exec.jsonio", "runpy_exec.linux",
                           "runpy_exec.linux.mountinfo"}, imported


def _altered_reads(monkeypatch: pytest.MonkeyPatch, **reads: Any) -> None:
    """Make every features call read ``reads`` in place of what the host shows."""
    from runpy_exec import features

    real_init = features._Live.__init__

    def init(live: features._Live) -> None:
        real_init(live)
        for name, value in reads.items():
            setattr(live, name, value)

    monkeypatch.setattr(features._Live, "__init__", init)


def test_the_document_is_kept_until_what_it_was_made_from_reads_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The printed document comes from the cache while the per-call reads (the
    bounding set, the cgroup mounts and controllers, systemd, the LSMs) and the
    host part's sources read the same; any change makes it anew, from the new
    reads, and that one is kept in turn."""
    from runpy_exec import features

    cache_dir = str(tmp_path / "cache")
    source = tmp_path / "libsomething.so"
    source.write_bytes(b"one")
    real_sources = features._sources
    made: list[dict[str, Any]] = []
    real_document = features._document

    def counted(host: dict[str, Any], live: features._Live) -> Any:
        result = real_document(host, live)
        made.append(result[0])
        return result

    def instrument() -> None:
        """The extra source among the host part's, and every document made counted."""
        monkeypatch.setattr(features, "_sources", lambda: real_sources() | {str(source)})
        monkeypatch.setattr(features, "_document", counted)

    expected = features.features(str(tmp_path / "elsewhere"))
    instrument()

    def document() -> Document:
        """The document as printed, after checking that a second call keeps it."""
        count = len(made)
        text = features.document(cache_dir)
        assert features.document(cache_dir) == text and len(made) == count + 1
        doc: Document = json.loads(text)
        return doc

    first = document()
    assert first == expected
    unified, elsewhere = tmp_path / "unified", tmp_path / "unified-elsewhere"
    for directory, controllers in ((unified, "cpu memory\n"), (elsewhere, "\n")):
        directory.mkdir()
        (directory / "cgroup.controllers").write_text(controllers)
    v2_only, v2_elsewhere = ([f"99 1 0:99 / {where} rw,nosuid - cgroup2 cgroup2 rw\n"]
                             for where in (unified, elsewhere))
    for reads, changed in (
            ({"bounding": "0000000000000001"}, lambda doc: doc["linux"]["capabilities"]
             == ["CAP_CHOWN"]),
            ({"systemd": not first["linux"]["cgroup"]["systemd"]},
             lambda doc: doc["linux"]["cgroup"]["systemd"] is not first["linux"]["cgroup"][
                 "systemd"]),
            ({"apparmor": not first["linux"]["apparmor"]["enabled"]},
             lambda doc: doc["linux"]["apparmor"] != first["linux"]["apparmor"]),
            ({"selinux": not first["linux"]["selinux"]["enabled"]},
             lambda doc: doc["linux"]["selinux"] != first["linux"]["selinux"]),
            ({"cgroup_mounts": v2_only}, lambda doc: doc["linux"]["cgroup"]["v1"] is False
             and doc["linux"]["cgroup"]["v2"] is True),
            ({"cgroup_mounts": v2_elsewhere}, lambda doc: doc["linux"]["cgroup"]["v2"] is False),
            ({"cgroup_mounts": v2_only}, lambda doc: doc["linux"]["cgroup"]["v2"] is True)):
        _altered_reads(monkeypatch, **reads)
        assert changed(document()), reads
    # The same mounts, but the unified hierarchy gives its controllers back to v1.
    (unified / "cgroup.controllers").write_text("\n")
    assert document()["linux"]["cgroup"]["v2"] is False
    monkeypatch.undo()
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/lib")
    instrument()
    assert document() == first
    monkeypatch.undo()
    instrument()
    assert document() == first
    source.write_bytes(b"two, longer")  # as an upgrade rewrites a library
    assert document() == first
    entry = features._entry_path(cache_dir, "document")
    for torn in ("", "x2f\n", "x2f\n\n{", "\n\n{}"):
        Path(entry).write_text(torn)
        assert document() == first, torn


@pytest.mark.root
def test_a_kept_document_follows_the_bounding_set_pyrunc_is_given() -> None:
    """A capability dropped from the bounding set of whoever starts pyrunc leaves
    the document, though a document with it is kept; it is back at the next call
    that holds it."""
    import subprocess

    import _prctl

    cap_sys_time = 25

    def without_sys_time() -> None:
        _prctl.prctl(_prctl.PR_CAPBSET_DROP, cap_sys_time)

    def capabilities(**options: Any) -> list[str]:
        done = subprocess.run([pyrunc_binary(), "features"], capture_output=True, text=True,
                              timeout=60, check=True, **options)
        found: list[str] = json.loads(done.stdout)["linux"]["capabilities"]
        return found

    held = capabilities()
    assert "CAP_SYS_TIME" in held and capabilities() == held
    assert capabilities(preexec_fn=without_sys_time) == [
        name for name in held if name != "CAP_SYS_TIME"]
    assert capabilities() == held
