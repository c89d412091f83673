"""runc's own integration tests, run against pyrunc: the peer suite for behaviour.

The harness lives in ../shared (beside the checkout, in CI too); it prints one
line per case and ends with "N passed, N failed, N skipped".
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import PROJECT, pyrunc_binary

HARNESS = PROJECT.parent / "shared" / "runc-bats" / "run.sh"

LIFECYCLE_FILES = [
    "create", "start", "start_detached", "start_hello", "run", "state", "list", "kill",
    "delete", "ps", "spec", "version", "help", "root", "no_pivot", "mask", "dev", "pause",
    "umask",
]
EXEC_FILES = ["exec", "tty", "cwd"]
# These two grep runc's own internal debug lines ("nsexec", "child process in init()"),
# which no other runtime prints.
RUNC_INTERNAL_DEBUG_CASES = {"exec: runc --debug exec", "exec: runc --debug --log exec"}

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _run_harness(files: list[str]) -> tuple[str, list[str]]:
    if not HARNESS.exists():
        pytest.fail(f"{HARNESS} is missing: the shared material must sit beside the checkout")
    result = subprocess.run([str(HARNESS), pyrunc_binary(), *files], capture_output=True,
                            text=True, timeout=1800, stdin=subprocess.DEVNULL)
    lines = result.stdout.splitlines()
    summary = next((line for line in reversed(lines) if re.match(r"\d+ passed", line)), "")
    failed = [line.split(None, 2)[2] for line in lines if line.startswith("not ok")]
    assert summary, f"no summary line from the harness:\n{result.stdout}\n{result.stderr}"
    return summary, failed


def test_runc_lifecycle_suite_passes() -> None:
    summary, failed = _run_harness(LIFECYCLE_FILES)
    assert failed == [], f"{summary}; failing: {failed}"


def test_runc_exec_suite_passes() -> None:
    summary, failed = _run_harness(EXEC_FILES)
    unexpected = [name for name in failed if name not in RUNC_INTERNAL_DEBUG_CASES]
    assert unexpected == [], f"{summary}; failing: {unexpected}"
