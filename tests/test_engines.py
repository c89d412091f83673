"""podman, containerd and docker, each driving pyrunc as its runtime.

The engines are pyrunc's real callers: they pass flags in their own order,
read pid files the moment pyrunc exits, wait on the pid in them as
subreapers, parse the JSON error log and hand a console socket over.  The
scripts in ../shared/clients (beside the checkout, in CI too) set each engine
up offline in private temp dirs, run a fixed scenario through it and end with
"N passed, N failed"; with runc they pass in full.

The engines come from scripts/setup.sh.  Off CI a
machine without an engine skips its test; on CI a missing engine fails it,
so that a green run always means the engines were really driven.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PROJECT, pyrunc_binary

CLIENTS = PROJECT.parent / "shared" / "clients"
# The project's own engine scenarios (they reuse the shared harness's helpers).
SCENARIOS = Path(__file__).resolve().parent / "engines"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")
# Long enough for the script's own per-command timeouts to have fired on a
# wedged step; then it gets SIGTERM so its trap stops the daemons it started.
TERM_GRACE = 90

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _require(binaries: list[str]) -> None:
    missing = [name for name in binaries if shutil.which(name) is None]
    if not missing:
        return
    message = (
        f"{', '.join(missing)} not installed "
        "(scripts/setup.sh installs the engines)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _run_client(script: str, timeout: float, directory: Path = CLIENTS) -> str:
    """Run one client script against pyrunc; return its stdout.

    The script gets its own session: on timeout it is sent SIGTERM first
    (its trap stops containerd/dockerd/conmon and unmounts), and only
    what is still alive after the grace period is killed as a group.
    """
    path = directory / script
    if not path.exists():
        pytest.fail(f"{path} is missing: the shared material must sit beside the checkout")
    proc = subprocess.Popen(
        [str(path), pyrunc_binary()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=TERM_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"{script} did not finish within {timeout:.0f} s:\n{out}")
    return out


def _assert_all_passed(script: str, out: str) -> None:
    lines = out.strip().splitlines()
    match = SUMMARY.match(lines[-1]) if lines else None
    assert match, f"{script} printed no final 'N passed, N failed' line:\n{out}"
    failing = "\n".join(line for line in lines if line.startswith(("not ok", "#   ")))
    assert match.group(2) == "0", (
        f"{script}: {lines[-1]}\n{failing}\n"
        f"(rerun with CLIENT_TRACE=/tmp/calls.log {CLIENTS / script} {pyrunc_binary()} "
        "to see every call the engine made)"
    )
    assert int(match.group(1)) > 0, f"{script} ran no step:\n{out}"


def test_podman_drives_pyrunc() -> None:
    _require(["podman", "conmon"])
    _assert_all_passed("podman.sh", _run_client("podman.sh", timeout=300))


def test_containerd_drives_pyrunc() -> None:
    _require(["containerd", "ctr", "containerd-shim-runc-v2"])
    _assert_all_passed("containerd.sh", _run_client("containerd.sh", timeout=300))


def test_docker_drives_pyrunc() -> None:
    _require(["dockerd", "docker", "containerd", "containerd-shim-runc-v2"])
    _assert_all_passed("docker.sh", _run_client("docker.sh", timeout=300))


def test_docker_update_reaches_pyrunc_and_the_process_inside() -> None:
    """docker update -> containerd -> shim -> "pyrunc update --resources -": the
    memory, pids and CPU limits a process inside reads, and a refused limit that
    leaves the old one in place."""
    _require(["dockerd", "docker", "containerd", "containerd-shim-runc-v2"])
    out = _run_client("docker-update.sh", timeout=300, directory=SCENARIOS)
    _assert_all_passed("docker-update.sh", out)
