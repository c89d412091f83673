"""The detached exec's waiter as the process it is: a bare interpreter started
for every detached exec, so what it imports is paid on every Kubernetes exec probe.

No container is needed: a harness forks a child, hands the waiter its pidfd on
fd 3 as ``waiter.become`` does, and execs the waiter's own command line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import imported_modules

PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)

HARNESS = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from runpy_exec import waiter

status = int(sys.argv[2])
pid = os.fork()
if pid == 0:
    import time
    time.sleep(0.2)
    os._exit(status)
os.dup2(os.pidfd_open(pid), waiter.PIDFD)
argv = waiter.waiter_argv(pid, None)
argv[1:1] = ["-X", "importtime"]
os.execv(argv[0], argv)
"""


def test_the_waiter_imports_nothing_but_itself_and_exits_with_the_status() -> None:
    bare = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", "-c", "pass"],
                          capture_output=True, text=True, timeout=30)
    assert bare.returncode == 0, bare.stderr
    waited = subprocess.run([sys.executable, "-c", HARNESS, PACKAGE_PARENT, "7"],
                            capture_output=True, text=True, timeout=30)
    assert waited.returncode == 7, waited.stderr
    baseline = imported_modules(bare.stderr)
    assert "encodings" in baseline  # importtime's lines were read
    assert imported_modules(waited.stderr) - baseline == {"runpy_exec", "runpy_exec.waiter"}
