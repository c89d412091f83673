"""The container suites on a real, pure cgroup v2 host: a qemu guest, booted once.

This machine is a hybrid cgroup host; most users' hosts are pure cgroup v2.
scripts/cgroup2-vm.sh boots a Debian kernel under qemu (TCG) with the host's
/ shared read-only, cgroup2 at /sys/fs/cgroup and every controller enabled.
One boot runs, through scripts/cgroup2-vm/suites.sh: a chosen part of the
project's own tests (with every ``cgroup2_host`` test, which must run there,
not skip), runc's bats and the engine scenarios from ../shared, each for runc
1.1.5 (the reference, on the same kernel) and for pyrunc.  Each test below
reports one suite and holds pyrunc to what runc passes there.

TCG runs code 15-40x slower than the host, so what runs there is chosen to fit
the budget (about 45 minutes), and two lanes of suites run side by side (a
suite keeps about one of the guest's two CPUs busy); the durations are in the
summary at the end.
PYRUNC_CGROUP2_GUEST_PROJECT=DIR runs another checkout's pyrunc and tests
(a branch's worktree) through this harness.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import GUEST_SUMMARY, PROJECT

pytestmark = [pytest.mark.root, pytest.mark.slow]

VM = PROJECT / "scripts" / "cgroup2-vm.sh"
SUITES = PROJECT / "scripts" / "cgroup2-vm" / "suites.sh"
GUEST_PROJECT = Path(os.environ.get("PYRUNC_CGROUP2_GUEST_PROJECT", PROJECT)).resolve()
# ../shared beside the checkout (CI), or beside the directory of worktrees.
SHARED = next((d for d in (PROJECT.parent / "shared", PROJECT.parent.parent / "shared")
               if d.is_dir()), PROJECT.parent / "shared")
CACHE = Path(os.environ.get("PYRUNC_CGROUP2_CACHE", "/var/cache/pyrunc-cgroup2"))

# The project's tests that exercise cgroups and whole containers; every file
# holding a cgroup2_host test is added to these.
PYTEST_FILES = ["tests/test_linux_cgroups.py", "tests/test_lifecycle.py", "tests/test_update.py",
                "tests/test_events.py"]
BATS_FILES = ["create", "start", "start_detached", "start_hello", "run", "state", "list",
              "kill", "delete", "ps", "pause", "dev", "mask", "exec", "cwd", "tty"]
ENGINES = ["containerd", "podman"]
RUNTIMES = ["runc", "pyrunc"]
# Two of exec.bats's cases grep runc's own internal debug lines (as in test_peer_suites).
RUNC_INTERNAL_DEBUG_CASES = {"exec: runc --debug exec", "exec: runc --debug --log exec"}
# The whole guest run: boot, every suite, power-off (CI's budget for it is ~45 min).
GUEST_TIMEOUT = int(os.environ.get("PYRUNC_CGROUP2_GUEST_TIMEOUT", "3300"))
# The systemd boot runs only the systemd_host tests: boot (~1 min under TCG) and a few containers.
SYSTEMD_GUEST_TIMEOUT = 900


@dataclass
class Suite:
    status: int | None  # None: the suite never reported (the guest ended first)
    seconds: int
    log: str

    def final_line(self) -> str:
        lines = [line for line in self.log.splitlines() if line.strip()]
        return lines[-1] if lines else "(no output)"


@dataclass
class GuestRun:
    results: Path
    suites: dict[str, Suite]
    cgroup2_host_tests: list[str]
    seconds: float


def _marked_tests(marker: str) -> list[str]:
    """Node ids of the checkout's tests marked ``marker`` (collected on the host)."""
    result = subprocess.run(
        [str(GUEST_PROJECT / ".venv" / "bin" / "python"), "-m", "pytest", "--co", "-q",
         "-p", "no:cacheprovider", "-m", marker, "tests"],
        cwd=GUEST_PROJECT, capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL)
    if result.returncode not in (0, 5):  # 5: no test selected
        pytest.fail(f"collecting the {marker} tests failed:\n{result.stdout}{result.stderr}")
    return [line for line in result.stdout.splitlines() if "::" in line]


def _lanes() -> list[list[str]]:
    """The suites in two lanes that the guest runs side by side (see suites.sh).

    The engines share /run/containerd and the image stores, so they keep to
    one lane; runc's bats run follows them there.  pyrunc's bats run, the
    longest suite, follows the project's tests in the other.  (With both bats
    runs after the project's tests, that lane took up to ~2800 s of the 3300 s
    budget on a slow machine.)  The harness gives each bats run cgroups of its
    own, so the two may overlap.
    """
    return [["pytest", "bats:pyrunc"],
            [*(f"{engine}:{rt}" for engine in ENGINES for rt in RUNTIMES), "bats:runc"]]


def _suite_names() -> list[str]:
    return [suite for lane in _lanes() for suite in lane]


@pytest.fixture(scope="module")
def guest(request: pytest.FixtureRequest) -> GuestRun:
    for tool in ("qemu-system-x86_64", "runc", "bats"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (scripts/setup.sh installs it)")
    harness = SHARED / "runc-bats" / "run.sh"
    if not harness.exists():
        pytest.fail(f"{harness} is missing: the shared material must sit beside the checkout")
    # What the guest cannot fetch (no network) is prepared here: runc's tests from
    # Debian's source package and the busybox image, outside /tmp (a tmpfs there).
    bats_cache = CACHE / "runc-bats"
    bats_cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(harness), "runc", "no-such-file"], capture_output=True, timeout=600,
                   env={**os.environ, "RUNC_BATS_CACHE": str(bats_cache)},
                   stdin=subprocess.DEVNULL, check=True)
    v2_tests = _marked_tests("cgroup2_host")
    files = [f for f in PYTEST_FILES if (GUEST_PROJECT / f).exists()]
    files += sorted({test.split("::")[0] for test in v2_tests} - set(files))

    results = CACHE / "runs" / f"{os.getpid()}-{time.monotonic_ns()}"
    results.mkdir(parents=True)
    request.addfinalizer(lambda: shutil.rmtree(results, ignore_errors=True))
    env = {
        "GUEST_PYTEST_FILES": " ".join(files),
        "GUEST_BATS_HARNESS": str(harness),
        "GUEST_BATS_FILES": " ".join(BATS_FILES),
        "GUEST_CLIENTS": str(SHARED / "clients"),
        "RUNC_BATS_CACHE": str(bats_cache),
        # Per case: TCG makes each runtime call 15-40x slower than on the host.
        "RUNC_BATS_TEST_TIMEOUT": "600",
        "RUNC_BATS_CMD_TIMEOUT": "240",
        "H_CMD_TIMEOUT": "300",
    }
    # Two lanes at once (an engine's daemons beside a bats run): more room than one.
    command = [str(VM), "--project", str(GUEST_PROJECT), "--results", str(results),
               "--timeout", str(GUEST_TIMEOUT), "--memory", "4096"]
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    command += ["--", "bash", str(SUITES), *_lanes()[0]]
    for lane in _lanes()[1:]:
        command += ["--", *lane]
    started = time.monotonic()
    console = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=GUEST_TIMEOUT + 120)
    seconds = time.monotonic() - started
    suites: dict[str, Suite] = {}
    for name in _suite_names():
        stem = name.replace(":", "-")
        status_file, log_file = results / f"{stem}.status", results / f"{stem}.log"
        log = log_file.read_text(errors="replace") if log_file.exists() else ""
        if status_file.exists():
            status, took = status_file.read_text().split()
            suites[name] = Suite(int(status), int(took), log)
        else:
            suites[name] = Suite(None, 0, log)
    summary = request.config.stash.setdefault(GUEST_SUMMARY, [])
    summary.append(f"guest run of {GUEST_PROJECT}: exit {console.returncode} "
                   f"in {seconds:.0f} s (boot, {len(suites)} suites, power-off)")
    summary += [line for line in console.stdout.splitlines() if line.startswith("== ")]
    if console.returncode not in (0, 1) and not any(s.status is not None for s in suites.values()):
        pytest.fail(f"the guest run failed (exit {console.returncode}):\n"
                    f"{console.stdout[-3000:]}\n{console.stderr[-3000:]}")
    return GuestRun(results, suites, v2_tests, seconds)


def _reported(guest: GuestRun, name: str) -> Suite:
    suite = guest.suites[name]
    assert suite.status is not None, (
        f"{name} never finished in the guest (timed out after {guest.seconds:.0f} s?):\n"
        f"{suite.log[-2000:]}")
    return suite


def _summary(request: pytest.FixtureRequest, line: str) -> None:
    request.config.stash.setdefault(GUEST_SUMMARY, []).append(line)


def _junit_outcomes(xml: Path) -> dict[str, str]:
    """'tests/test_x.py::test_y[p]' -> passed / failed / error / skipped."""
    outcomes = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        module, _, klass = case.get("classname", "").partition(".Test")
        node = module.replace(".", "/") + ".py"
        if klass:
            node += "::Test" + klass.replace(".", "::")
        node += "::" + case.get("name", "")
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[node] = kinds[0] if kinds else "passed"
    return outcomes


def test_project_tests_pass_on_a_cgroup2_host(guest: GuestRun,
                                              request: pytest.FixtureRequest) -> None:
    suite = _reported(guest, "pytest")
    _summary(request, f"pytest in the guest ({suite.seconds} s): {suite.final_line()}")
    xml = guest.results / "pytest.xml"
    assert xml.exists(), f"the inner pytest wrote no junit XML:\n{suite.log[-3000:]}"
    outcomes = _junit_outcomes(xml)
    bad = {node: kind for node, kind in outcomes.items() if kind in ("failed", "error")}
    assert not bad and suite.status == 0, (
        f"{suite.final_line()}\n{bad}\n{suite.log[-4000:]}")
    assert outcomes, "the inner pytest ran no test"
    not_run = [t for t in guest.cgroup2_host_tests if outcomes.get(t) != "passed"]
    assert not not_run, f"cgroup2_host tests that did not pass in the guest: {not_run}"
    _summary(request, f"  cgroup2_host tests passed there: {len(guest.cgroup2_host_tests)}")


def _cases(log: str, pattern: str) -> tuple[set[str], set[str]]:
    """(passed, failed) case names of a harness log.

    The engine scripts name steps with pids and temp paths ("start private
    containerd (pid 725)"): numbers and /tmp paths are masked so that runc's
    and pyrunc's steps compare.
    """
    passed: set[str] = set()
    failed: set[str] = set()
    for line in log.splitlines():
        match = re.match(pattern, line)
        if match:
            name = re.sub(r"\d+", "N", re.sub(r"/tmp/\S+", "TMP", match.group(2).strip()))
            (failed if match.group(1).startswith("not") else passed).add(name)
    return passed, failed


def _runtime_pair(guest: GuestRun, request: pytest.FixtureRequest, kind: str,
                  pattern: str) -> tuple[set[str], set[str], set[str]]:
    runc, pyrunc = _reported(guest, f"{kind}:runc"), _reported(guest, f"{kind}:pyrunc")
    for name, suite in (("runc", runc), ("pyrunc", pyrunc)):
        _summary(request, f"{kind} for {name} in the guest ({suite.seconds} s): "
                          f"{suite.final_line()}")
        for case in sorted(_cases(suite.log, pattern)[1]):
            _summary(request, f"  failed for {name}: {case}")
    runc_passed, _ = _cases(runc.log, pattern)
    pyrunc_passed, pyrunc_failed = _cases(pyrunc.log, pattern)
    assert runc_passed, f"runc passed no {kind} case in the guest:\n{runc.log[-3000:]}"
    return runc_passed, pyrunc_passed, pyrunc_failed


def test_runc_bats_pyrunc_passes_what_runc_passes_on_a_cgroup2_host(
        guest: GuestRun, request: pytest.FixtureRequest) -> None:
    runc_passed, pyrunc_passed, _ = _runtime_pair(
        guest, request, "bats", r"^(ok|not ok)\s+(\S+: .*)$")
    missing = sorted(runc_passed - pyrunc_passed - RUNC_INTERNAL_DEBUG_CASES)
    assert not missing, (f"runc passes these in the guest, pyrunc does not: {missing}\n"
                         + _tap_failures(guest.results / "bats-pyrunc-tap", missing))


def _tap_failures(tap_dir: Path, cases: list[str], limit: int = 6000) -> str:
    """The TAP comment block of each failed case ("file: name"), the commands and output."""
    blocks = []
    for case in cases:
        file, _, name = case.partition(": ")
        tap = tap_dir / f"{file}.tap"
        lines = tap.read_text(errors="replace").splitlines() if tap.exists() else []
        start = next((i for i, line in enumerate(lines)
                      if re.match(rf"not ok \d+ {re.escape(name)}$", line)), None)
        if start is None:
            continue
        end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("#")),
                   len(lines))
        blocks.append("\n".join(lines[start:end]))
    return "\n".join(blocks)[:limit]


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_pyrunc_passes_what_runc_passes_on_a_cgroup2_host(
        guest: GuestRun, request: pytest.FixtureRequest, engine: str) -> None:
    runc_passed, pyrunc_passed, _ = _runtime_pair(
        guest, request, engine, r"^(ok|not ok) \d+ - (.*)$")
    missing = sorted(runc_passed - pyrunc_passed)
    assert not missing, f"runc passes these {engine} steps in the guest, pyrunc does not: {missing}"


def test_systemd_cgroup_driver_on_a_systemd_cgroup2_host(request: pytest.FixtureRequest) -> None:
    """--systemd-cgroup beside runc, in a second boot with systemd as PID 1.

    The systemd_host tests (tests/test_systemd_cgroup.py) need systemd's D-Bus
    API; the guest booted with --systemd has it, and there a skip is a failure.
    """
    tests = _marked_tests("systemd_host")
    assert tests, "no systemd_host test was collected"
    files = sorted({test.split("::")[0] for test in tests})
    results = CACHE / "runs" / f"systemd-{os.getpid()}-{time.monotonic_ns()}"
    results.mkdir(parents=True)
    request.addfinalizer(lambda: shutil.rmtree(results, ignore_errors=True))
    inner = (".venv/bin/python -m pytest -p no:cacheprovider -ra -q -m systemd_host "
             '--junitxml="$CGROUP2_VM_RESULTS/systemd.xml" ' + " ".join(files))
    command = [str(VM), "--systemd", "--project", str(GUEST_PROJECT), "--results", str(results),
               "--timeout", str(SYSTEMD_GUEST_TIMEOUT), "--env", "PYRUNC_SYSTEMD_GUEST=1",
               "--", "bash", "-c", inner]
    started = time.monotonic()
    console = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=SYSTEMD_GUEST_TIMEOUT + 120)
    lines = [line for line in console.stdout.splitlines() if line.strip()]
    final = lines[-1] if lines else "(no output)"
    _summary(request, f"systemd guest ({time.monotonic() - started:.0f} s, boot included): "
                      f"{final}")
    xml = results / "systemd.xml"
    assert xml.exists(), f"the systemd guest wrote no junit XML:\n{console.stdout[-3000:]}"
    outcomes = _junit_outcomes(xml)
    not_passed = {test: outcomes.get(test, "not run") for test in tests
                  if outcomes.get(test) != "passed"}
    assert console.returncode == 0 and not not_passed, (
        f"{final}\n{not_passed}\n{console.stdout[-4000:]}")
