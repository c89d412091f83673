"""A container's cgroup as a transient systemd scope, asked for over D-Bus.

With ``--systemd-cgroup`` the container's cgroup belongs to systemd, as with
runc's systemd driver: ``StartTransientUnit`` makes ``<prefix>-<name>.scope``
in the slice of the ``slice:prefix:name`` cgroupsPath, with ``Delegate=yes``
(the subtree is the container's to manage) and the limits systemd knows as
unit properties, so a ``systemctl daemon-reload`` does not reset them; pyrunc
then writes the cgroup files itself as well, as runc does.  ``StopUnit`` ends
it.

The D-Bus client is jeepney: pure Python (no C extension or libdbus/GLib to
build against), no dependencies of its own, a blocking API that is all a
one-shot command needs, and kept up to date on PyPI.  It is imported only
here, and this module only with ``--systemd-cgroup``: exec never pays for it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

from runpy_exec.errors import PyruncError

BUS_SOCKET = "/run/dbus/system_bus_socket"
_MANAGER = "org.freedesktop.systemd1.Manager"
_MAX_U64 = 2**64 - 1
# systemd's own default for its clients (and runc's): a job may take this long.
_AUTH_TIMEOUT = 20.0
_JOB_TIMEOUT = 60.0


def unit_name(prefix: str, name: str) -> str:
    """runc's rule: "<prefix>-<name>.scope", the dash kept even for an empty prefix."""
    return f"{prefix}-{name}.scope"


def slice_path(slice_name: str) -> str:
    """The cgroup directory of a slice: "a-b.slice" is /a.slice/a-b.slice; "-.slice" is /."""
    if slice_name == "-.slice":
        return "/"
    path, prefix = "", ""
    for word in slice_name.removesuffix(".slice").split("-"):
        path += f"/{prefix}{word}.slice"
        prefix += f"{word}-"
    return path


def resource_properties(resources: Mapping[str, Any]) -> list[tuple[str, tuple[str, Any]]]:
    """The spec's limits that systemd has properties for (runc's set, the simple ones)."""
    props: list[tuple[str, tuple[str, Any]]] = []
    memory = resources.get("memory") or {}
    if (limit := memory.get("limit")) and limit > 0:
        props.append(("MemoryMax", ("t", limit)))
    cpu = resources.get("cpu") or {}
    if shares := cpu.get("shares"):
        # The v1 -> v2 mapping the cgroup files get too (cgroups/v2.py).
        props.append(("CPUWeight", ("t", 1 + ((shares - 2) * 9999) // 262142)))
    quota = cpu.get("quota") or 0
    if quota:
        period = cpu.get("period") or 100000
        per_sec = _MAX_U64 if quota < 0 else quota * 1_000_000 // period
        if quota > 0:
            # systemd keeps this to 10 ms steps; round up so the limit is never tighter.
            per_sec = -(-per_sec // 10000) * 10000
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    pids = resources.get("pids") or {}
    if (tasks := pids.get("limit")) is not None:
        props.append(("TasksMax", ("t", _MAX_U64 if tasks < 0 else max(tasks, 1))))
    return props


def check_available() -> None:
    """A host where systemd is not PID 1 or its bus is missing: a one-line error."""
    if not os.path.isdir("/run/systemd/system"):
        raise PyruncError("--systemd-cgroup: systemd is not running on this host")
    if not os.path.exists(BUS_SOCKET):
        raise PyruncError(f"--systemd-cgroup: no D-Bus system bus at {BUS_SOCKET}")


def start_scope(unit: str, slice_name: str, pid: int, description: str,
                resources: Mapping[str, Any]) -> None:
    """Make the scope holding ``pid`` and wait until systemd has started it."""
    properties = [
        ("Description", ("s", description)),
        ("Slice", ("s", slice_name)),
        ("Delegate", ("b", True)),
        ("PIDs", ("au", [pid])),
        # Accounting on, as runc asks: the controllers are then enabled for the scope.
        ("MemoryAccounting", ("b", True)),
        ("CPUAccounting", ("b", True)),
        ("IOAccounting", ("b", True)),
        ("TasksAccounting", ("b", True)),
        ("DefaultDependencies", ("b", False)),
        *resource_properties(resources),
    ]
    with _connection() as bus:
        bus.run_job(unit, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                    (unit, "replace", properties, []))


def stop_scope(unit: str) -> None:
    """Stop the scope (killing what is left in it); one already gone is fine."""
    with _connection() as bus:
        bus.run_job(unit, "StopUnit", "ss", (unit, "replace"), missing_ok=True)


class _Bus:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def run_job(self, unit: str, method: str, signature: str, args: tuple[Any, ...],
                missing_ok: bool = False) -> None:
        """Call a Manager method that queues a job, then wait for its JobRemoved."""
        from jeepney import DBusAddress, MatchRule, new_method_call
        from jeepney.bus_messages import message_bus
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg

        manager = DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                              interface=_MANAGER)
        removed = MatchRule(type="signal", interface=_MANAGER, member="JobRemoved",
                            path="/org/freedesktop/systemd1")
        try:
            # The match first: a job can end before its method returns.
            unwrap_msg(self._conn.send_and_get_reply(message_bus.AddMatch(removed),
                                                     timeout=_JOB_TIMEOUT))
            unwrap_msg(self._conn.send_and_get_reply(
                new_method_call(manager, "Subscribe"), timeout=_JOB_TIMEOUT))
            with self._conn.filter(removed, bufsize=64) as signals:
                reply = self._conn.send_and_get_reply(
                    new_method_call(manager, method, signature, args), timeout=_JOB_TIMEOUT)
                try:
                    (job,) = unwrap_msg(reply)
                except DBusErrorResponse as err:
                    if missing_ok and err.name == "org.freedesktop.systemd1.NoSuchUnit":
                        return
                    detail = " ".join(str(d) for d in err.data) or err.name
                    raise PyruncError(f"--systemd-cgroup: {method} {unit}: {detail}") from None
                deadline = time.monotonic() + _JOB_TIMEOUT
                while True:
                    signal = self._conn.recv_until_filtered(
                        signals, timeout=max(deadline - time.monotonic(), 0.001))
                    _id, path, _unit, result = signal.body
                    if path == job:
                        break
        except TimeoutError:
            raise PyruncError(f"--systemd-cgroup: {method} {unit}: systemd did not answer "
                              f"within {_JOB_TIMEOUT:.0f}s") from None
        except OSError as err:
            raise PyruncError(f"--systemd-cgroup: {method} {unit}: D-Bus: "
                              f"{err.strerror or err}") from None
        if result != "done":
            raise PyruncError(f"--systemd-cgroup: {method} {unit}: the job ended {result!r}")


@contextlib.contextmanager
def _connection() -> Iterator[_Bus]:
    from jeepney.io.blocking import open_dbus_connection

    check_available()
    try:
        # jeepney's default of 1 s is too short for a loaded host (dbus-daemon
        # answers the authentication late); a bus that is there answers within this.
        conn = open_dbus_connection(bus="SYSTEM", auth_timeout=_AUTH_TIMEOUT)
    except (OSError, ValueError) as err:
        raise PyruncError(f"--systemd-cgroup: cannot connect to the D-Bus system bus at "
                          f"{BUS_SOCKET}: {getattr(err, 'strerror', None) or err}") from None
    try:
        yield _Bus(conn)
    finally:
        conn.close()
