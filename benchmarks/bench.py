#!/usr/bin/env python3
"""Every command engines call, timed for pyrunc, runc and crun on the same host.

Run as root, on the project's virtualenv:
``.venv/bin/python benchmarks/bench.py [--rounds N] [--concurrent N] [--json FILE]``.

Why it is built this way:

* crun 1.8 refuses a hybrid cgroup host whose v2 mount has a controller, so
  the whole benchmark re-runs itself in a private mount namespace without
  the unified mount (``unshare -m`` + ``umount /sys/fs/cgroup/unified``), and
  all three runtimes run there alike.
* Each runtime works on containers it created itself, from one busybox
  bundle, under a ``--root`` of its own.  ``pyrunc exec`` into runc's
  container is timed too (engines may mix them), and exec into a container
  under docker's seccomp profile (engines always give one), with create and
  start of such a container; ``update -r FILE`` and ``features`` as well.
* Besides the foreground execs, ``exec -d -p FILE --pid-file F``: what
  containerd's shim runs for every exec, so for every Kubernetes exec probe.
  pyrunc forks its waiter there (re-spawned as a bare interpreter for a
  process that outlives 0.5 s), which runc does not have to.  Its CPU
  includes what the command leaves behind (pyrunc's waiter, runc's process),
  waited for as their subreaper after the command's wall time has ended.
* Two regimes: "spaced", each command 50 ms after the previous one, as exec
  probes and an engine's status checks come; and "back to back".  The kernel
  makes the first ``cgroup.procs`` write after an idle spell wait for an RCU
  grace period, so the regimes differ for exec and create.
* Rounds interleave the runtimes (in a new random order every round) and
  report medians and p90: these machines are shared and their load drifts,
  and only ratios taken from interleaved runs mean anything there.
* 50 concurrent ``exec ID true`` are measured in CPU seconds (the children's
  rusage), three times per runtime, interleaved.
* Memory: the resident set of a foreground ``exec ID sleep`` while it waits
  (and its peak), and of a detached exec's waiter (runc and crun leave no
  process behind: their pid file names the process itself).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import prctl

REPO = Path(__file__).resolve().parent.parent
MK_BUNDLE = REPO / "examples" / "mk-busybox-bundle.sh"
DEFAULT_PYRUNC = REPO / ".venv" / "bin" / "pyrunc"
UNIFIED = "/sys/fs/cgroup/unified"
SPACING = 0.05
RANDOM_SEED = 1

# command -> (largest pyrunc/runc ratio allowed back to back, spaced); None: no bar
BARS: dict[str, tuple[float | None, float | None]] = {
    "exec ID true": (1.2, 0.8),
    "exec -p p.json ID": (1.2, 0.8),
    "exec (runc's container)": (1.2, 0.8),
    "exec, docker's profile": (1.2, 0.8),
    "state": (2.5, 2.5), "kill": (2.5, 2.5), "delete": (2.5, 2.5), "list": (2.5, 2.5),
    "start": (2.5, 2.5), "pause": (2.5, 2.5), "resume": (2.5, 2.5),
    "ps": (2.0, 2.0), "create": (2.0, 2.0), "run -d": (2.0, 2.0), "delete -f": (2.0, 2.0),
    "create, docker's profile": (2.0, 2.0), "start, docker's profile": (2.5, 2.5),
    # The title: every engine-called command within 2.5x runc.
    "update -r FILE": (2.5, 2.5), "features": (2.5, 2.5),
}
CPU_BAR = 1.3
INTERPRETER_ROW = "python alone (reference)"
# The issue sets no bar for it: shown beside the foreground exec -p.
DETACHED_ROW = "exec -d -p p.json --pid-file F ID"
WAITER_BAR_KIB = 9 * 1024


def main() -> int:
    args = _parse_args()
    if os.geteuid() != 0:
        print("bench.py: must run as root (it starts containers)", file=sys.stderr)
        return 2
    if _has_unified_mount() and not os.environ.get("BENCH_IN_NAMESPACE"):
        # The same benchmark, in a mount namespace of its own without the v2 mount.
        os.environ["BENCH_IN_NAMESPACE"] = "1"
        script = 'umount /sys/fs/cgroup/unified && exec "$@"'
        os.execvp("unshare", ["unshare", "-m", "sh", "-c", script, "sh",
                              sys.executable, *sys.argv])
    runtimes = {"runc": shutil.which("runc"), "crun": shutil.which("crun"),
                "pyrunc": os.path.abspath(args.pyrunc)}
    missing = [name for name, path in runtimes.items() if not path]
    if missing:
        print(f"bench.py: not found on PATH: {', '.join(missing)}", file=sys.stderr)
        return 2
    bench = Bench({name: str(path) for name, path in runtimes.items()}, args)
    try:
        bench.setup()
        report = bench.run()
    finally:
        bench.cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    _print_report(report)
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--concurrent", type=int, default=50,
                        help="execs started at once for the CPU figure (default 50)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--pyrunc", default=str(DEFAULT_PYRUNC),
                        help=f"the pyrunc executable (default {DEFAULT_PYRUNC})")
    return parser.parse_args()


def _has_unified_mount() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == UNIFIED for line in f)


class Bench:
    def __init__(self, runtimes: dict[str, str], args: argparse.Namespace) -> None:
        self.runtimes = runtimes
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="pyrunc-bench-"))
        self.bundle = self.work / "bundle"
        self.seccomp_bundle = self.work / "bundle-seccomp"
        self.process_file = self.work / "process.json"
        # What containerd sends on an in-place resize, as a file (runc update -r).
        self.resources_file = self.work / "resources.json"
        self.roots = {name: str(self.work / f"root-{name}") for name in runtimes}
        self.long_running = {name: f"bench-{name}-{os.getpid()}" for name in runtimes}
        self.confined = {name: f"bench-{name}-{os.getpid()}-seccomp" for name in runtimes}
        self.times: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
        self.random = random.Random(RANDOM_SEED)

    def rt(self, name: str, *argv: str) -> list[str]:
        return [self.runtimes[name], "--root", self.roots[name], *argv]

    def setup(self) -> None:
        _check([str(MK_BUNDLE), str(self.bundle), "--no-terminal", "--args", "sleep 3600"])
        config = json.loads((self.bundle / "config.json").read_text())
        self.process_file.write_text(json.dumps(dict(config["process"], args=["true"])))
        self.resources_file.write_text(json.dumps({"pids": {"limit": 1000},
                                                   "cpu": {"shares": 512}}))
        # The same container under the seccomp profile docker gave every container
        # (in 2019): engines always give one, and exec must apply it.
        sys.path.insert(0, str(REPO))
        from tests.old_profiles import docker_2019_profile

        shutil.copytree(self.bundle, self.seccomp_bundle, symlinks=True)
        config["linux"]["seccomp"] = docker_2019_profile()
        (self.seccomp_bundle / "config.json").write_text(json.dumps(config))
        for name, ctr in self.long_running.items():
            _check(self.rt(name, "run", "-d", "--bundle", str(self.bundle), ctr))
            _check(self.rt(name, "run", "-d", "--bundle", str(self.seccomp_bundle),
                           self.confined[name]))

    def cleanup(self) -> None:
        for name in self.runtimes:
            listed = subprocess.run(self.rt(name, "list", "-q"), capture_output=True,
                                    text=True, check=False).stdout.split()
            for ctr in listed:
                subprocess.run(self.rt(name, "delete", "-f", ctr), capture_output=True,
                               check=False)
        shutil.rmtree(self.work, ignore_errors=True)

    def run(self) -> dict[str, Any]:
        self._round(0, record=False)  # warm-up: page cache, bytecode
        for index in range(1, self.args.rounds + 1):
            self._round(index, record=True)
        cpu = self._concurrent_cpu()
        memory = self._memory()
        return {
            "rounds": self.args.rounds,
            "versions": {name: _first_line([path, "--version"])
                         for name, path in self.runtimes.items()},
            "python": sys.version.split()[0],
            "loadavg_1min_at_end": os.getloadavg()[0],
            "commands": self._stats(),
            "concurrent_cpu_seconds": cpu,
            "memory_kib": memory,
        }

    def _round(self, index: int, record: bool) -> None:
        for regime in ("spaced", "back to back"):
            for name in self.random.sample(list(self.runtimes), len(self.runtimes)):
                for command, argv, after in self._steps(name, index):
                    if regime == "spaced":
                        time.sleep(SPACING)
                    elapsed = _timed(argv, leaves_a_process=command == DETACHED_ROW)
                    if record:
                        self.times.setdefault((command, regime, name), []).append(elapsed)
                    if after is not None:
                        after()

    def _steps(self, name: str, index: int) -> list[tuple[str, list[str], Any]]:
        ctr = self.long_running[name]
        fresh, other = f"b{index}-{name}-c", f"b{index}-{name}-r"
        confined = f"b{index}-{name}-s"
        pid_file = self.work / f"{fresh}.pid"
        steps: list[tuple[str, list[str], Any]] = [
            ("exec ID true", self.rt(name, "exec", ctr, "true"), None),
            ("exec -p p.json ID", self.rt(name, "exec", "-p", str(self.process_file), ctr),
             None),
            # What containerd's shim runs for every exec, and so for every Kubernetes
            # exec probe: detached, the process given in a file, a pid file to read.
            (DETACHED_ROW, self.rt(name, "exec", "-d", "-p", str(self.process_file),
                                   "--pid-file", str(self.work / f"exec-{name}.pid"), ctr),
             None),
            ("exec, docker's profile", self.rt(name, "exec", self.confined[name], "true"), None),
            ("state", self.rt(name, "state", ctr), None),
            ("list", self.rt(name, "list"), None),
            ("ps", self.rt(name, "ps", ctr), None),
            ("pause", self.rt(name, "pause", ctr), None),
            ("resume", self.rt(name, "resume", ctr), None),
            ("create", self.rt(name, "create", "--bundle", str(self.bundle), "--pid-file",
                               str(pid_file), fresh), None),
            ("start", self.rt(name, "start", fresh), None),
            ("kill", self.rt(name, "kill", fresh, "KILL"), lambda: _wait_gone(pid_file)),
            ("delete", self.rt(name, "delete", fresh), None),
            ("run -d", self.rt(name, "run", "-d", "--bundle", str(self.bundle), other), None),
            ("delete -f", self.rt(name, "delete", "-f", other), None),
            # What engines do: every container they create has a seccomp profile.
            ("create, docker's profile", self.rt(name, "create", "--bundle",
                                                 str(self.seccomp_bundle), confined), None),
            ("start, docker's profile", self.rt(name, "start", confined),
             lambda: _check(self.rt(name, "delete", "-f", confined))),
            ("update -r FILE", self.rt(name, "update", "-r", str(self.resources_file), ctr),
             None),
        ]
        if name != "crun":  # crun 1.8 has no features command
            # Bare, as dockerd and containerd run it when they start: it reads no
            # state, so it is given no --root either.
            steps.append(("features", [self.runtimes[name], "features"], None))
        if name == "pyrunc":
            steps.append(("exec (runc's container)",
                          [self.runtimes["pyrunc"], "--root", self.roots["runc"], "exec",
                           self.long_running["runc"], "true"], None))
            # No command at all: the interpreter pyrunc runs on, started and ended
            # (with site, as pyrunc's script has it), the floor under every row.
            steps.append((INTERPRETER_ROW, [_interpreter_of(self.runtimes["pyrunc"]), "-c",
                                            "import os; os._exit(0)"], None))
        return steps

    def _stats(self) -> list[dict[str, Any]]:
        rows = []
        commands = list(dict.fromkeys(command for command, _, _ in self.times))
        for command in commands:
            for regime in ("back to back", "spaced"):
                row: dict[str, Any] = {"command": command, "regime": regime}
                for name in self.runtimes:
                    key = (command, regime, name)
                    if command == "exec (runc's container)":
                        key = (command, regime, "pyrunc") if name == "pyrunc" else (
                            "exec ID true", regime, name)
                    if key in self.times:
                        row[name] = _summary(self.times[key])
                for base in ("runc", "crun"):
                    if "pyrunc" in row and base in row:
                        row[f"pyrunc/{base}"] = row["pyrunc"]["median_ms"] / row[base]["median_ms"]
                        row[f"cpu pyrunc/{base}"] = (row["pyrunc"]["cpu_ms"]
                                                     / max(row[base]["cpu_ms"], 0.5))
                bar = BARS.get(command, (None, None))[0 if regime == "back to back" else 1]
                row["bar"] = bar
                row["pass"] = None if bar is None else row.get("pyrunc/runc", 99) <= bar
                rows.append(row)
        return rows

    def _concurrent_cpu(self) -> dict[str, Any]:
        seconds: dict[str, list[float]] = {name: [] for name in self.runtimes}
        failures: dict[str, int] = {name: 0 for name in self.runtimes}
        for _ in range(3):
            for name in self.random.sample(list(self.runtimes), len(self.runtimes)):
                argv = self.rt(name, "exec", self.long_running[name], "true")
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                         for _ in range(self.args.concurrent)]
                failures[name] += sum(proc.wait() != 0 for proc in procs)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                seconds[name].append(after.ru_utime - before.ru_utime
                                     + after.ru_stime - before.ru_stime)
        result: dict[str, Any] = {
            name: {"median_s": statistics.median(values), "all": values,
                   "failed": failures[name]} for name, values in seconds.items()}
        result["pyrunc/runc"] = result["pyrunc"]["median_s"] / result["runc"]["median_s"]
        result["pyrunc/crun"] = result["pyrunc"]["median_s"] / result["crun"]["median_s"]
        result["bar"] = CPU_BAR
        result["pass"] = result["pyrunc/runc"] <= CPU_BAR and not failures["pyrunc"]
        return result

    def _memory(self) -> dict[str, Any]:
        memory: dict[str, Any] = {}
        for name in self.runtimes:
            waiting, peak = _waiting_rss(self.rt(name, "exec", self.long_running[name],
                                                 "sleep", "2"))
            pid_file = self.work / f"detached-{name}.pid"
            _check(self.rt(name, "exec", "-d", "--pid-file", str(pid_file),
                           self.long_running[name], "sleep", "2"))
            time.sleep(1)
            pid = int(pid_file.read_text())
            detached = _status_kib(pid, "VmRSS") if name == "pyrunc" else None
            _wait_gone(pid_file)
            memory[name] = {"waiting_exec": waiting, "waiting_exec_peak": peak,
                            "detached_waiter": detached}
        memory["bars"] = {
            "waiting_exec <= runc": memory["pyrunc"]["waiting_exec"]
            <= memory["runc"]["waiting_exec"],
            "detached_waiter <= 9 MiB": (memory["pyrunc"]["detached_waiter"] or 0)
            <= WAITER_BAR_KIB,
        }
        return memory


def _timed(argv: list[str], leaves_a_process: bool = False) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, with the children it reaped).

    A detached exec leaves a process behind (pyrunc its waiter, runc the exec'd
    process itself), reparented away from the command and so outside its CPU:
    with ``leaves_a_process``, this process is made their subreaper, waits for
    them, and counts their CPU too.  Wall time still ends when the command does.
    """
    if leaves_a_process:
        prctl.set_child_subreaper(True)
    try:
        with tempfile.TemporaryFile() as err:
            # stderr to a file, not a pipe: a detached container inherits it and
            # would hold a pipe open (and the reader blocked) for its whole life.
            start = time.perf_counter()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                err.seek(0)
                raise SystemExit(f"bench.py: {' '.join(argv)} exited {proc.returncode}: "
                                 f"{err.read().decode(errors='replace').strip()}")
        cpu = usage.ru_utime + usage.ru_stime
        while leaves_a_process:
            try:
                _, _, left_behind = os.wait4(-1, 0)
            except ChildProcessError:
                break
            cpu += left_behind.ru_utime + left_behind.ru_stime
    finally:
        if leaves_a_process:
            prctl.set_child_subreaper(False)
    return elapsed, cpu


def _interpreter_of(script: str) -> str:
    """The interpreter on the script's #! line (pip writes the venv's there)."""
    with open(script, "rb") as f:
        first = f.readline().decode().strip()
    return first[2:].split()[0] if first.startswith("#!") else sys.executable


def _check(argv: list[str]) -> None:
    _timed(argv)


def _wait_gone(pid_file: Path) -> None:
    """Until the process named in ``pid_file`` has exited (a pidfd turns readable)."""
    import select

    try:
        pidfd = os.pidfd_open(int(pid_file.read_text()))
    except ProcessLookupError:
        return
    try:
        select.select([pidfd], [], [], 10)
    finally:
        os.close(pidfd)


def _status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _waiting_rss(argv: list[str]) -> tuple[int, int]:
    """The runtime's resident set while the process runs (median of samples after the
    first second), and the highest VmHWM seen."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    start = time.monotonic()
    samples, peak = [], 0
    while proc.poll() is None:
        rss, hwm = _status_kib(proc.pid, "VmRSS"), _status_kib(proc.pid, "VmHWM")
        peak = max(peak, hwm or 0)
        if rss and time.monotonic() - start > 1.0:
            samples.append(rss)
        time.sleep(0.02)
    if proc.returncode != 0:
        raise SystemExit(f"bench.py: {' '.join(argv)} exited {proc.returncode}")
    return int(statistics.median(samples)) if samples else 0, peak


def _summary(runs: list[tuple[float, float]]) -> dict[str, float]:
    ms = sorted(wall * 1000 for wall, _ in runs)
    p90 = statistics.quantiles(ms, n=10, method="inclusive")[8] if len(ms) > 1 else ms[0]
    cpu = statistics.median(cpu * 1000 for _, cpu in runs)
    return {"median_ms": statistics.median(ms), "p90_ms": p90, "cpu_ms": cpu, "n": len(ms)}


def _first_line(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = (result.stdout or result.stderr).splitlines()
    return lines[0] if lines else "?"


def _print_report(report: dict[str, Any]) -> None:
    print(f"{report['rounds']} rounds, runtimes interleaved in a new order each round; "
          f"1-min load at the end {report['loadavg_1min_at_end']:.1f}")
    for name, version in report["versions"].items():
        print(f"  {name}: {version}")
    print()
    header = (f"{'command':<35}{'regime':<14}{'runc med/p90':>14}{'crun med/p90':>14}"
              f"{'pyrunc med/p90':>16}{'/runc':>7}{'/crun':>7}{'bar':>6}"
              f"{'cpu runc/crun/pyrunc':>24}{'/runc':>7}{'/crun':>7}")
    print(header + "  (wall and CPU ms, medians)")
    for row in report["commands"]:
        def cell(name: str, width: int, row: dict[str, Any] = row) -> str:
            if name not in row:
                return f"{'-':>{width}}"
            return f"{row[name]['median_ms']:.1f}/{row[name]['p90_ms']:.1f}".rjust(width)

        bar = "" if row["bar"] is None else (
            f"{row['bar']:g}" + (" ok" if row["pass"] else " NO"))
        cpu = "/".join(f"{row[n]['cpu_ms']:.0f}" if n in row else "-"
                       for n in ("runc", "crun", "pyrunc"))
        def ratio(key: str, row: dict[str, Any] = row) -> str:
            return f"{row[key]:>7.2f}" if key in row else f"{'-':>7}"

        print(f"{row['command']:<35}{row['regime']:<14}{cell('runc', 14)}{cell('crun', 14)}"
              f"{cell('pyrunc', 16)}{ratio('pyrunc/runc')}{ratio('pyrunc/crun')}  {bar:<6}"
              f"{cpu:>18}{ratio('cpu pyrunc/runc')}{ratio('cpu pyrunc/crun')}")
    cpu = report["concurrent_cpu_seconds"]
    print()
    print("CPU seconds for concurrent `exec ID true` (median of 3; failures):")
    for name in ("runc", "crun", "pyrunc"):
        print(f"  {name:<8}{cpu[name]['median_s']:>7.2f} s  failed {cpu[name]['failed']}")
    print(f"  pyrunc/runc {cpu['pyrunc/runc']:.2f} (bar {cpu['bar']:g}: "
          f"{'ok' if cpu['pass'] else 'NO'}), pyrunc/crun {cpu['pyrunc/crun']:.2f}")
    print()
    print("Resident memory (MiB): waiting foreground exec (peak), detached waiter")
    for name in ("runc", "crun", "pyrunc"):
        m = report["memory_kib"][name]
        detached = "no process" if m["detached_waiter"] is None else (
            f"{m['detached_waiter'] / 1024:.1f}")
        print(f"  {name:<8}{m['waiting_exec'] / 1024:>6.1f} ({m['waiting_exec_peak'] / 1024:.1f})"
              f"   {detached}")
    for bar, ok in report["memory_kib"]["bars"].items():
        print(f"  {bar}: {'ok' if ok else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
