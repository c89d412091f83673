#!/usr/bin/env python3
"""Wall time and peak RSS of ``pyrunc exec`` against ``runc exec``, on one container.

Run as root: ``benchmarks/bench_exec.py [--runs N] [--warmup N] [--json] [--pyrunc PATH]``.

Why it is built this way:

* One container, started by runc, serves both runtimes (pyrunc execs into
  runc's containers), so both pay for the same namespaces, cgroups and rootfs.
* The commands are run in turn, round after round, rather than in blocks: these
  machines are shared and their load drifts, and interleaving spreads the drift
  over every command alike.  Medians (and p90) rather than means, for the same
  reason.  Each round's order is shuffled (see :func:`_time_rounds`).
* ``pyrunc`` is called by its path in the virtualenv: a pyenv shim in front of
  it would add a second interpreter start to every run.
* Whether pyrunc's modules had bytecode cached changes its start-up by tens of
  milliseconds (PYTHONDONTWRITEBYTECODE keeps Python from writing any), so the
  report says which it was.
* The issue's bars: the flag path at most 8x runc, the --process path at most
  10x.  ``python -I -S -c pass`` is timed alongside as the floor no Python
  program can go under.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MK_BUNDLE = REPO / "examples" / "mk-busybox-bundle.sh"
DEFAULT_PYRUNC = REPO / ".venv" / "bin" / "pyrunc"
BARS = {"flags": 8.0, "--process": 10.0}  # path -> the largest pyrunc/runc ratio allowed
SLEEP_SECONDS = 2
RSS_POLL_SECONDS = 0.02
RANDOM_SEED = 1  # the order of each round is shuffled, the same way on every run

# The snippet the pyrunc interpreter runs to say whether its own modules have
# bytecode that it will use: present, and either hash-based or stamped with the
# source's current mtime and size.
_BYTECODE_PROBE = """
import importlib.util, json, os, runpy_exec
top = runpy_exec.__path__[0]
total = cached = 0
for d, _, names in os.walk(top):
    for n in names:
        if not n.endswith(".py"):
            continue
        src = os.path.join(d, n)
        total += 1
        try:
            with open(importlib.util.cache_from_source(src), "rb") as f:
                head = f.read(16)
        except OSError:
            continue
        st = os.stat(src)
        flags = int.from_bytes(head[4:8], "little")
        fresh = (int.from_bytes(head[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
                 and int.from_bytes(head[12:16], "little") == st.st_size & 0xFFFFFFFF)
        cached += bool(flags or fresh)
print(json.dumps({"package": top, "modules": total, "cached": cached}))
"""


@dataclass(frozen=True)
class Case:
    """One command line timed in every round; ``runtime`` and ``path`` pair it for ratios."""

    label: str
    argv: list[str]
    runtime: str  # "runc", "pyrunc" or "python"
    path: str  # "flags", "--process" or "floor"


def main() -> int:
    args = _parse_args()
    if os.geteuid() != 0:
        print("bench_exec.py: must run as root (it starts a container)", file=sys.stderr)
        return 2
    runc = shutil.which("runc")
    if runc is None:
        print("bench_exec.py: runc not found on PATH", file=sys.stderr)
        return 2
    # Turn kill's SIGTERM into SystemExit so that the container is still deleted.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    pyrunc = os.path.abspath(args.pyrunc)
    interpreter = _interpreter_of(pyrunc)
    work = Path(tempfile.mkdtemp(prefix="pyrunc-bench-"))
    root = str(work / "state")
    container_id = f"bench-{os.getpid()}"
    try:
        bundle = work / "bundle"
        _check([str(MK_BUNDLE), str(bundle), "--no-terminal", "--args", "sleep 3600"])
        _start(runc, root, bundle, container_id, work / "runc-run.log")
        process_file = _write_process_file(bundle, work)
        cases = _cases(runc, pyrunc, interpreter, root, container_id, process_file)
        for _ in range(args.warmup):
            for case in cases:
                _time_once(case)
        times = _time_rounds(cases, args.runs)
        rss = {
            "pyrunc": _peak_rss([pyrunc, "--root", root, "exec", container_id,
                                 "sleep", str(SLEEP_SECONDS)]),
            "runc": _peak_rss([runc, "--root", root, "exec", container_id,
                               "sleep", str(SLEEP_SECONDS)]),
        }
        report = _report(cases, times, rss, args, pyrunc, runc, interpreter)
    finally:
        # Also after a failed `run -d`, which can leave a created container behind.
        subprocess.run([runc, "--root", root, "delete", "-f", container_id],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        _print_table(report)
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time `pyrunc exec` against `runc exec` on one busybox container (as root).")
    parser.add_argument("--runs", type=_positive, default=30,
                        help="timed runs of each command (default 30)")
    parser.add_argument("--warmup", type=_non_negative, default=3,
                        help="untimed rounds first, to fill the page cache (default 3)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--pyrunc", default=str(DEFAULT_PYRUNC),
                        help=f"the pyrunc executable (default {DEFAULT_PYRUNC})")
    return parser.parse_args()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return value


def _interpreter_of(script: str) -> list[str]:
    """The command line in the script's ``#!`` line: the floor and the probe use that Python."""
    with open(script, "rb") as f:
        first = f.readline().decode(errors="replace").strip()
    if not first.startswith("#!"):
        raise SystemExit(f"bench_exec.py: {script} is not a script with a #! line")
    return first[2:].split()


def _check(argv: list[str]) -> None:
    """Run a setup step; on failure, show what it said and stop."""
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"bench_exec.py: {' '.join(argv)} exited {result.returncode}:\n"
                         f"{result.stdout}{result.stderr}")


def _start(runc: str, root: str, bundle: Path, container_id: str, log: Path) -> None:
    """``runc run -d`` with stdio on /dev/null and its errors in ``log``.

    A detached container keeps the stdio it was started with: a pipe would
    stay open (and a reader of it blocked) until the container died.
    """
    argv = [runc, "--root", root, "--log", str(log), "run", "-d", "--bundle", str(bundle),
            container_id]
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        said = log.read_text() if log.exists() else ""
        raise SystemExit(f"bench_exec.py: {' '.join(argv)} exited {result.returncode}:\n{said}")


def _write_process_file(bundle: Path, work: Path) -> str:
    """The container's own process with ``args: ["true"]``: what `exec -p` callers send."""
    config = json.loads((bundle / "config.json").read_text())
    process = dict(config["process"], args=["true"])
    path = work / "process.json"
    path.write_text(json.dumps(process))
    return str(path)


def _cases(runc: str, pyrunc: str, interpreter: list[str], root: str, container_id: str,
           process_file: str) -> list[Case]:
    return [
        Case("runc exec ID true", [runc, "--root", root, "exec", container_id, "true"],
             "runc", "flags"),
        Case("pyrunc exec ID true", [pyrunc, "--root", root, "exec", container_id, "true"],
             "pyrunc", "flags"),
        Case("runc exec -p p.json ID",
             [runc, "--root", root, "exec", "-p", process_file, container_id],
             "runc", "--process"),
        Case("pyrunc exec -p p.json ID",
             [pyrunc, "--root", root, "exec", "-p", process_file, container_id],
             "pyrunc", "--process"),
        Case("python -I -S -c pass", [*interpreter, "-I", "-S", "-c", "pass"], "python", "floor"),
    ]


def _time_once(case: Case) -> float:
    """Seconds for one run, stdio on /dev/null so no pipe or terminal is part of it."""
    start = time.perf_counter()
    result = subprocess.run(case.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        # Run it again with its output kept: a failing command is not worth timing.
        _check(case.argv)
        raise SystemExit(f"bench_exec.py: {case.label} exited {result.returncode}, then passed")
    return elapsed


def _time_rounds(cases: list[Case], runs: int) -> dict[str, list[float]]:
    """Each round runs every case once, in a new order.

    A fixed order would give each command the same predecessor every time,
    and the predecessor matters: right after a write to cgroup.procs the
    kernel lets the next one skip an RCU grace period (~7 ms here), so
    whichever exec followed the other runtime's would look faster.
    """
    order = random.Random(RANDOM_SEED)
    times: dict[str, list[float]] = {case.label: [] for case in cases}
    for _ in range(runs):
        for case in order.sample(cases, len(cases)):
            times[case.label].append(_time_once(case))
    return times


def _peak_rss(argv: list[str]) -> int:
    """Peak RSS in KiB of the runtime's own process while it waits on a ``sleep``.

    The last VmHWM read from /proc/PID/status before it exits: that process's
    memory alone.  wait4's ru_maxrss would not do: it is never lowered by
    execve, so it starts out at the RSS of whoever spawned the process (this
    benchmark's own Python), and it also counts the children it reaped.
    """
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = _vmhwm(proc.pid) or peak
        time.sleep(RSS_POLL_SECONDS)
    if proc.returncode != 0:
        _check(argv)
        raise SystemExit(f"bench_exec.py: {' '.join(argv)} exited {proc.returncode}, then passed")
    return peak


def _vmhwm(pid: int) -> int:
    """VmHWM in KiB, or 0 once the process is a zombie (its memory is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    p90 = statistics.quantiles(ms, n=10, method="inclusive")[8] if len(ms) > 1 else ms[0]
    return {"median_ms": statistics.median(ms), "p90_ms": p90, "min_ms": ms[0]}


def _report(cases: list[Case], times: dict[str, list[float]], rss: dict[str, int],
            args: argparse.Namespace, pyrunc: str, runc: str,
            interpreter: list[str]) -> dict[str, Any]:
    stats = {case.label: _stats(times[case.label]) for case in cases}
    ratios = {}
    for path, bar in BARS.items():
        median = {case.runtime: stats[case.label]["median_ms"]
                  for case in cases if case.path == path}
        ratio = median["pyrunc"] / median["runc"]
        ratios[path] = {"ratio": ratio, "bar": bar, "pass": ratio <= bar}
    return {
        "runs": args.runs,
        "warmup": args.warmup,
        "pyrunc": pyrunc,
        "runc": runc,
        "runc_version": _first_line([runc, "--version"]),
        "python": _first_line([*interpreter, "--version"]),
        "loadavg_1min": os.getloadavg()[0],  # other people's tests on the same cores
        "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        "bytecode": _bytecode(interpreter),
        "commands": stats,
        "ratios": ratios,
        "peak_rss_kib": rss,
    }


def _first_line(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = (result.stdout or result.stderr).splitlines()
    return lines[0] if result.returncode == 0 and lines else "?"


def _bytecode(interpreter: list[str]) -> dict[str, Any]:
    # From "/": with -c the current directory comes first on sys.path, and a
    # checkout there would shadow the runpy_exec that pyrunc imports.
    result = subprocess.run([*interpreter, "-c", _BYTECODE_PROBE], capture_output=True,
                            text=True, check=False, cwd="/")
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1]}
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def _print_table(report: dict[str, Any]) -> None:
    code = report["bytecode"]
    if "error" in code:
        bytecode = f"unknown ({code['error']})"
    else:
        bytecode = f"{code['cached']}/{code['modules']} runpy_exec modules with usable .pyc"
    print(f"{report['runs']} runs of each command, interleaved in shuffled rounds, after "
          f"{report['warmup']} warm-up rounds")
    print(f"pyrunc: {report['pyrunc']} ({report['python']}; {bytecode}; "
          f"PYTHONDONTWRITEBYTECODE={report['pythondontwritebytecode'] or 'unset'})")
    print(f"runc:   {report['runc']} ({report['runc_version']})")
    print(f"1-minute load average at the end: {report['loadavg_1min']:.2f}")
    print()
    print(f"{'command':<28}{'median ms':>11}{'p90 ms':>9}{'min ms':>9}")
    for label, s in report["commands"].items():
        print(f"{label:<28}{s['median_ms']:>11.1f}{s['p90_ms']:>9.1f}{s['min_ms']:>9.1f}")
    print()
    print(f"{'path':<12}{'pyrunc/runc':>12}{'bar':>8}  result")
    for path, r in report["ratios"].items():
        verdict = "PASS" if r["pass"] else "FAIL"
        print(f"{path:<12}{r['ratio']:>11.2f}x{'<= ' + format(r['bar'], 'g') + 'x':>8}  {verdict}")
    print()
    print(f"peak RSS (VmHWM) of a non-detached `exec ID sleep {SLEEP_SECONDS}`")
    for runtime, kib in report["peak_rss_kib"].items():
        print(f"{runtime:<12}{kib / 1024:>8.1f} MiB")


if __name__ == "__main__":
    sys.exit(main())
