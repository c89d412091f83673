"""Namespaces made by one forked child and joined by another, through setns."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest

from runpy_exec.errors import PyruncError
from runpy_exec.linux import namespaces, syscalls
from tests.forking import run_child

pytestmark = pytest.mark.root



def wait_child(pid: int, report_fd: int) -> None:
    with os.fdopen(report_fd, "rb") as f:
        report = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report


def in_child(body: Callable[[], None]) -> None:
    wait_child(*run_child(body))


class Holder:
    """A child that enters new namespaces, says "ready", and stays until told to go."""

    def __init__(self, flags: int, then: Callable[[], None] = lambda: None) -> None:
        ready_r, ready_w = os.pipe()
        self._done_r, self._done_w = os.pipe()

        def body() -> None:
            syscalls.unshare(flags)
            then()
            os.write(ready_w, b"r")
            os.read(self._done_r, 1)

        self.pid, self._report = run_child(body)
        os.close(ready_w)
        assert os.read(ready_r, 1) == b"r", "the namespace holder failed before it was ready"
        os.close(ready_r)

    def release(self) -> None:
        os.write(self._done_w, b"d")
        wait_child(self.pid, self._report)
        os.close(self._done_r)
        os.close(self._done_w)


def test_table_matches_proc_and_clone_flags() -> None:
    names = {ns.proc_name for ns in namespaces.NAMESPACES}
    assert names <= set(os.listdir("/proc/self/ns"))
    assert namespaces.clone_flag("network") == syscalls.CLONE_NEWNET
    assert namespaces.clone_flag("mount") == syscalls.CLONE_NEWNS
    with pytest.raises(PyruncError, match="'bogus'"):
        namespaces.clone_flag("bogus")


def test_join_uts_namespace_of_another_process() -> None:
    holder = Holder(syscalls.CLONE_NEWUTS, lambda: socket.sethostname("pyrunc-uts-test"))
    try:
        assert not namespaces.same_namespace(holder.pid, "uts")
        assert namespaces.same_namespace(holder.pid, "ipc")
        host_name = socket.gethostname()

        def join() -> None:
            fds = namespaces.open_namespaces(holder.pid, ["uts"])
            namespaces.join(fds)
            assert socket.gethostname() == "pyrunc-uts-test"
            assert namespaces.same_namespace(holder.pid, "uts")

        in_child(join)
        assert socket.gethostname() == host_name
    finally:
        holder.release()


def test_open_namespaces_in_join_order_and_join_several() -> None:
    holder = Holder(syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWNET)
    try:
        fds = namespaces.open_namespaces(holder.pid, ["network", "uts", "ipc"])
        try:
            assert [t for t, _ in fds] == ["ipc", "uts", "network"]

            def join() -> None:
                namespaces.join(fds)
                for oci_type in ("ipc", "uts", "network"):
                    assert namespaces.same_namespace(holder.pid, oci_type)
                assert socket.if_nameindex() == [(1, "lo")]

            in_child(join)
        finally:
            for _, fd in fds:
                os.close(fd)
    finally:
        holder.release()


def test_joining_the_wrong_kind_of_namespace_is_refused() -> None:
    fd = os.open("/proc/self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
    try:

        def join() -> None:
            with pytest.raises(PyruncError, match="join ipc namespace: setns: Invalid argument"):
                namespaces.join([("ipc", fd)])

        in_child(join)
    finally:
        os.close(fd)


def test_open_missing_process_names_the_path() -> None:
    with pytest.raises(PyruncError, match=r"/proc/999999999/ns/uts"):
        namespaces.open_namespaces(999999999, ["uts"])


def test_id_maps_for_a_new_user_namespace() -> None:
    holder = Holder(syscalls.CLONE_NEWUSER)
    try:
        namespaces.write_id_maps(
            holder.pid,
            [(0, 100000, 65536)],
            [{"containerID": 0, "hostID": 200000, "size": 1000}],
            deny_setgroups=True,
        )
        with open(f"/proc/{holder.pid}/uid_map") as f:
            assert f.read().split() == ["0", "100000", "65536"]
        with open(f"/proc/{holder.pid}/gid_map") as f:
            assert f.read().split() == ["0", "200000", "1000"]
        with open(f"/proc/{holder.pid}/setgroups") as f:
            assert f.read().strip() == "deny"
        with pytest.raises(PyruncError, match="uid_map"):
            namespaces.write_id_maps(holder.pid, [(0, 0, 1)], [])  # a map is written only once
    finally:
        holder.release()
