#!/usr/bin/env python3
"""An idle exec session's cost, and how long ``pyrunc attach`` takes to show it.

Run as root: ``benchmarks/bench_sessions.py [--runs N] [--pyrunc PATH]``.

One busybox container (pyrunc's own, under a temporary --root) gets one
session whose shell has printed more than the 64 KiB ring buffer holds.
Reported:

* the waiter's memory: VmRSS, split into anonymous and file-backed pages
  (most of the file-backed part is the interpreter and libraries, shared
  with every other pyrunc), and its peak (VmHWM);
* attach latency, over N attaches from a fresh pty: from starting
  ``pyrunc attach`` to the replay's last line on the screen, and to the
  first typed key echoed back; each attach then detaches with ctrl-p ctrl-q.
  ``pyrunc exec bench true`` is timed alongside, for scale: a whole exec
  through the same fast command-line path.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pyrunc", default=str(PROJECT / ".venv" / "bin" / "pyrunc"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sessions-"))
    root, bundle = work / "root", work / "bundle"
    pyrunc = [args.pyrunc, "--root", str(root)]
    subprocess.run([str(PROJECT / "examples" / "mk-busybox-bundle.sh"), str(bundle)], check=True,
                   capture_output=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["sleep", "3600"])
    (bundle / "config.json").write_text(json.dumps(config))
    subprocess.run([*pyrunc, "run", "-d", "-b", str(bundle), "bench"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        pid_file = work / "waiter.pid"
        subprocess.run([*pyrunc, "exec", "--session", "s", "--pid-file", str(pid_file), "bench",
                        "sh", "-c", "seq 1 15000; echo end-of-output; exec sh"], check=True)
        waiter = int(pid_file.read_text())
        time.sleep(1.0)  # idle: the output is in the ring, nobody attached
        memory = _memory(waiter)
        replay, echo, state = [], [], []
        for _ in range(args.runs):
            shown, echoed = _attach_once(pyrunc)
            replay.append(shown)
            echo.append(echoed)
            started = time.monotonic()
            subprocess.run([*pyrunc, "exec", "bench", "true"], check=True, capture_output=True)
            state.append(time.monotonic() - started)
        print(f"idle waiter (pid {waiter}): VmRSS {memory['VmRSS']} kB "
              f"(anonymous {memory['RssAnon']} kB, file-backed {memory['RssFile']} kB), "
              f"VmHWM {memory['VmHWM']} kB")
        for label, samples in (("attach -> replay shown", replay),
                               ("attach -> first key echoed", echo),
                               ("pyrunc exec bench true (for scale)", state)):
            ordered = sorted(samples)
            print(f"{label}: median {statistics.median(ordered) * 1000:.1f} ms, "
                  f"p90 {ordered[int(len(ordered) * 0.9) - 1] * 1000:.1f} ms, "
                  f"min {ordered[0] * 1000:.1f} ms ({len(ordered)} runs)")
    finally:
        subprocess.run([*pyrunc, "delete", "--force", "bench"], check=False)
        shutil.rmtree(work, ignore_errors=True)


def _memory(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def _attach_once(pyrunc: list[str]) -> tuple[float, float]:
    master, replica = os.openpty()
    started = time.monotonic()
    proc = subprocess.Popen([*pyrunc, "attach", "bench", "s"], stdin=replica, stdout=replica,
                            stderr=replica, start_new_session=True)
    os.close(replica)
    seen = b""
    try:
        seen = _read_until(master, seen, b"end-of-output")
        shown = time.monotonic() - started
        os.write(master, b"Q")
        _read_until(master, seen, b"Q")
        echoed = time.monotonic() - started
        os.write(master, b"\x15\x10\x11")  # erase the line, then detach
        if proc.wait(timeout=30) != 0:
            raise SystemExit(f"attach exited {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return shown, echoed


def _read_until(fd: int, seen: bytes, wanted: bytes) -> bytes:
    start = len(seen)
    deadline = time.monotonic() + 30
    while wanted not in seen[start:]:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise SystemExit(f"{wanted!r} never came")
        seen += os.read(fd, 65536)
    return seen


if __name__ == "__main__":
    main()
