"""Time `run -d` + `delete --force` of one busybox container, pyrunc beside runc.

Runs alternate (runc, pyrunc, runc, ...) so load on the machine falls on both
alike; medians are reported.  As root:

    .venv/bin/python benchmarks/bench_lifecycle.py [--runs N] [--pyrunc PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--pyrunc", default=str(PROJECT / ".venv" / "bin" / "pyrunc"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyrunc-bench-") as tmp:
        bundle = Path(tmp) / "bundle"
        subprocess.run([str(PROJECT / "examples" / "mk-busybox-bundle.sh"), "--no-terminal",
                        "--args", "sleep 3600", str(bundle)], check=True,
                       stdout=subprocess.DEVNULL)
        runtimes = {"runc": "runc", "pyrunc": args.pyrunc}
        times: dict[str, dict[str, list[float]]] = {
            name: {"run -d": [], "delete -f": []} for name in runtimes}
        for i in range(args.runs):
            for name, binary in runtimes.items():
                root = f"{tmp}/{name}-root"
                container = f"bench{i}"
                times[name]["run -d"].append(_timed(
                    [binary, "--root", root, "run", "-d", "--bundle", str(bundle), container]))
                times[name]["delete -f"].append(_timed(
                    [binary, "--root", root, "delete", "--force", container]))
    report = {name: {step: statistics.median(values) * 1000 for step, values in steps.items()}
              for name, steps in times.items()}
    print(json.dumps(report, indent=2), file=sys.stderr)
    print(f"{'step':<12}{'runc ms':>10}{'pyrunc ms':>12}{'ratio':>8}")
    for step in ("run -d", "delete -f"):
        runc_ms, pyrunc_ms = report["runc"][step], report["pyrunc"][step]
        print(f"{step:<12}{runc_ms:>10.1f}{pyrunc_ms:>12.1f}{pyrunc_ms / runc_ms:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
