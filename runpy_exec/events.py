"""``pyrunc events``: a container's resource usage and OOM kills as JSON lines.

Each line is what ``runc events`` prints: ``{"type":"stats","id":ID,"data":{...}}``
every interval (the first at once), and ``{"type":"oom","id":ID}`` as soon as
the kernel's OOM killer kills a process of the container.  The stream ends
with status 0 when the container's init exits or on SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import sys
import time
from typing import Any

from runpy_exec import state as store
from runpy_exec.errors import PyruncError

# How often the OOM-kill counter is looked at between two stats lines.
_OOM_POLL = 0.1

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0}


def parse_interval(text: str) -> float:
    """A Go duration ("5s", "100ms", "1m30s"), which must be positive."""
    pos, seconds = (1, 0.0) if text == "0" else (0, 0.0)
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise PyruncError(f"--interval {text!r}: not a duration like 5s or 100ms")
    if seconds <= 0:
        raise PyruncError(f"--interval {text!r}: duration must be greater than 0")
    return seconds


def _emit(kind: str, container_id: str, data: dict[str, Any] | None = None) -> None:
    event: dict[str, Any] = {"type": kind, "id": container_id}
    if data is not None:
        event["data"] = data
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class _Stop(Exception):
    """SIGINT or SIGTERM arrived: end the stream cleanly."""


def _stop(signum: int, frame: Any) -> None:
    raise _Stop


def events(root: str, container_id: str, interval: float, once: bool) -> None:
    from runpy_exec.linux.cgroups import stats

    container = store.load(root, container_id)
    if store.status_of(container) == "stopped":
        raise PyruncError(f"container {container_id!r} is not running")
    paths = container.cgroup_paths
    if once:
        _emit("stats", container_id, stats.stats(paths))
        return
    try:
        pidfd = os.pidfd_open(container.init_pid)
    except ProcessLookupError:
        raise PyruncError(f"container {container_id!r} is not running") from None
    previous = {signum: signal.signal(signum, _stop) for signum in (signal.SIGINT,
                                                                    signal.SIGTERM)}
    try:
        ooms = stats.oom_kills(paths)
        next_stats = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_stats:
                _emit("stats", container_id, stats.stats(paths))
                next_stats = now + interval
            wait = min(_OOM_POLL, max(0.0, next_stats - time.monotonic()))
            if select.select([pidfd], [], [], wait)[0]:
                return  # the init exited: the container stopped
            count = stats.oom_kills(paths)
            if count > ooms:
                _emit("oom", container_id)
            ooms = count
    except _Stop:
        return
    except BrokenPipeError:
        # The reader went away (events | head -1): nothing left to tell.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    finally:
        os.close(pidfd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
