"""Fixtures that make real containers: a busybox bundle, runc's and pyrunc's containers.

Tests marked ``root`` need root and a real kernel.  Off CI they are skipped
for a non-root user; on CI (which runs as root) a skip would hide the tests
that matter, so there it is an error.

Tests marked ``cgroup2_host`` need a pure cgroup v2 host (cgroup2 mounted at
/sys/fs/cgroup, its controllers usable): on a hybrid host they are skipped.
tests/test_cgroup2_guest.py runs them in the cgroup v2 guest with
PYRUNC_CGROUP2_GUEST=1, where such a test that skips counts as failed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
IN_CGROUP2_GUEST = os.environ.get("PYRUNC_CGROUP2_GUEST") == "1"
# The guest booted with systemd as PID 1 (cgroup2-vm.sh --systemd), for systemd_host tests.
IN_SYSTEMD_GUEST = os.environ.get("PYRUNC_SYSTEMD_GUEST") == "1"
# Lines tests/test_cgroup2_guest.py reports (each suite's final line, durations);
# shown at the end of the run whether its tests pass or fail.
GUEST_SUMMARY = pytest.StashKey[list[str]]()


def pure_cgroup2_host() -> bool:
    """Whether /sys/fs/cgroup is itself a cgroup2 mount (the last mount there wins)."""
    fstype = ""
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields, _, rest = line.partition(" - ")
            if fields.split()[4] == "/sys/fs/cgroup":
                fstype = rest.split()[0]
    return fstype == "cgroup2"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_CGROUP2_GUEST and not pure_cgroup2_host():
        raise pytest.UsageError("PYRUNC_CGROUP2_GUEST=1 but /sys/fs/cgroup is not cgroup2")
    if not IN_CGROUP2_GUEST and any("cgroup2_host" in item.keywords for item in items) \
            and not pure_cgroup2_host():
        skip_v2 = pytest.mark.skip(reason="needs a pure cgroup v2 host "
                                   "(tests/test_cgroup2_guest.py runs it in a v2 guest)")
        for item in items:
            if "cgroup2_host" in item.keywords:
                item.add_marker(skip_v2)
    if IS_ROOT:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("CI must run as root: the tests that need root are the real ones")
    skip = pytest.mark.skip(reason="needs root (namespaces, cgroups)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    lines = config.stash.get(GUEST_SUMMARY, [])
    if lines:
        terminalreporter.section("cgroup v2 guest (tests/test_cgroup2_guest.py)")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In the guests a cgroup2_host (or, with systemd, systemd_host) test that skips failed:
    it is there to run."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CGROUP2_GUEST and report.skipped and "cgroup2_host" in item.keywords:
        report.outcome = "failed"
        report.longrepr = f"cgroup2_host test skipped in the cgroup v2 guest: {report.longrepr}"
    if IN_SYSTEMD_GUEST and report.skipped and "systemd_host" in item.keywords:
        report.outcome = "failed"
        report.longrepr = f"systemd_host test skipped in the systemd guest: {report.longrepr}"


def imported_modules(importtime_output: str) -> set[str]:
    """The modules ``python -X importtime`` reports in ``importtime_output`` (its stderr)."""
    return {line.rsplit("|", 1)[1].strip() for line in importtime_output.splitlines()
            if line.startswith("import time:") and "|" in line} - {"imported package"}


def pyrunc_binary() -> str:
    venv = PROJECT / ".venv" / "bin" / "pyrunc"
    return str(venv) if venv.exists() else (shutil.which("pyrunc") or "pyrunc")


@pytest.fixture(scope="session")
def busybox_bundle_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One busybox root filesystem for the whole session; bundles share it read-only."""
    bundle = tmp_path_factory.mktemp("busybox-bundle")
    subprocess.run([str(PROJECT / "examples" / "mk-busybox-bundle.sh"), str(bundle)],
                   check=True, capture_output=True)
    return bundle


@pytest.fixture
def bundle(busybox_bundle_template: Path, tmp_path: Path) -> Path:
    """A bundle of our own (its own config.json) over the shared rootfs; sleeps until killed."""
    path = tmp_path / "bundle"
    path.mkdir()
    config = json.loads((busybox_bundle_template / "config.json").read_text())
    config["root"] = {"path": str(busybox_bundle_template / "rootfs"), "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sleep", "3600"]
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return path


def edit_config(bundle: Path, change: Callable[[dict[str, Any]], None]) -> None:
    config = json.loads((bundle / "config.json").read_text())
    change(config)
    (bundle / "config.json").write_text(json.dumps(config, indent=2))


class Runtime:
    """One runtime binary with its own --root, so tests never see each other's containers."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root

    def __call__(self, *args: str, check: bool = False, timeout: float = 60,
                 **kwargs: Any) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.binary, "--root", str(self.root), *args], text=True,
                                capture_output=True, timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise AssertionError(f"{self.binary} {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr.strip()}")
        return result

    def run_detached(self, *args: str) -> None:
        """A detached container inherits its runtime's stdio: never hand it our pipes,
        or reading them would wait for the container to exit."""
        with tempfile.TemporaryFile() as err:
            result = subprocess.run([self.binary, "--root", str(self.root), *args],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, timeout=60)
            err.seek(0)
            if result.returncode != 0:
                raise AssertionError(f"{self.binary} {' '.join(args)} exited "
                                     f"{result.returncode}: {err.read().decode().strip()}")

    def state(self, container_id: str) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self("state", container_id, check=True).stdout)
        return state


@pytest.fixture
def pyrunc(tmp_path: Path) -> Runtime:
    return Runtime(pyrunc_binary(), tmp_path / "pyrunc-root")


@pytest.fixture
def runc(tmp_path: Path) -> Runtime:
    if not shutil.which("runc"):
        pytest.fail("runc is not installed (scripts/setup.sh installs it)")
    return Runtime("runc", tmp_path / "runc-root")


@contextmanager
def running(runtime: Runtime, bundle: Path) -> Iterator[str]:
    """A container run detached from ``bundle``, force-deleted afterwards."""
    container_id = f"x{uuid.uuid4().hex[:10]}"
    runtime.run_detached("run", "-d", "--bundle", str(bundle), container_id)
    try:
        yield container_id
    finally:
        runtime("delete", "--force", container_id)


@pytest.fixture
def runc_container(runc: Runtime, bundle: Path) -> Iterator[str]:
    """A running container made by runc 1.1.5 (`sleep 3600`), deleted afterwards."""
    with running(runc, bundle) as container_id:
        yield container_id


@pytest.fixture
def pyrunc_container(pyrunc: Runtime, bundle: Path) -> Iterator[str]:
    """A running container made by pyrunc (`sleep 3600`), deleted afterwards."""
    with running(pyrunc, bundle) as container_id:
        yield container_id


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    """pyrunc with a --root of the test module's own."""
    return Runtime(pyrunc_binary(), tmp_path_factory.mktemp("pyrunc-root"))


@pytest.fixture(scope="module")
def ctr(rt: Runtime, busybox_bundle_template: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One running pyrunc container shared by a module's tests that leave it as it was."""
    from tests.exec_support import make_bundle

    bundle = make_bundle(busybox_bundle_template, tmp_path_factory.mktemp("exec-bundle"))
    with running(rt, bundle) as container_id:
        yield container_id


@pytest.fixture(scope="module")
def init(rt: Runtime, ctr: str) -> int:
    """The container's init pid on the host."""
    from tests.exec_support import init_pid

    return init_pid(rt, ctr)
