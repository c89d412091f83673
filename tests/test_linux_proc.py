"""/proc readers, against real processes (including one with a hostile command name)."""

from __future__ import annotations

import os
import signal
import time

import prctl
import pytest

from runpy_exec.linux import proc, syscalls


def fork_named(name: str) -> tuple[int, int]:
    """A child that renames itself (comm) and waits; returns (pid, fd to release it)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        prctl.set_name(name)
        os.write(ready_w, b"r")
        os.read(done_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    os.read(ready_r, 1)
    os.close(ready_r)
    return pid, done_w


def test_start_time_past_a_command_name_with_spaces_and_parens() -> None:
    pid, release = fork_named(") 1 2 (x y) Z")
    try:
        with open(f"/proc/{pid}/stat") as f:
            assert ") 1 2 (x y) Z)" in f.read()
        start = proc.start_time(pid)
        assert start >= proc.start_time(os.getpid())
        assert proc.state(pid) in ("S", "R")
        assert proc.is_alive_with_start_time(pid, start)
        assert not proc.is_alive_with_start_time(pid, start + 1)
    finally:
        os.write(release, b"d")
        os.close(release)
    deadline = time.monotonic() + 5
    while proc.state(pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not proc.is_alive_with_start_time(pid, start)  # a zombie is not alive
    os.waitpid(pid, 0)
    assert not proc.is_alive_with_start_time(pid, start)
    with pytest.raises(ProcessLookupError):
        proc.start_time(pid)


def test_status_fields() -> None:
    assert proc.status_field("self", "Pid") == str(os.getpid())
    assert proc.status_field(os.getpid(), "Name") == proc.status_field("self", "Name")
    assert proc.status_field("self", "NoSuchField") is None
    with pytest.raises(ProcessLookupError):
        proc.status_field(999999999, "Pid")


def test_ns_pid_outside_a_pid_namespace_is_the_pid() -> None:
    assert proc.ns_pid(os.getpid()) == int(str(proc.status_field("self", "NSpid")).split()[-1])


@pytest.mark.root
def test_ns_pid_is_the_pid_inside_the_innermost_namespace() -> None:
    ready_r, ready_w = os.pipe()
    holder = os.fork()
    if holder == 0:
        syscalls.unshare(syscalls.CLONE_NEWPID)
        inner = os.fork()  # the first child in a new pid namespace is its pid 1
        if inner == 0:
            os.write(ready_w, b"r")
            signal.pause()
        os.waitpid(inner, 0)
        os._exit(0)
    os.close(ready_w)
    os.read(ready_r, 1)
    os.close(ready_r)
    inner_pid = int(proc.status_field(holder, "NSpid") or 0)  # holder stays in ours
    with open(f"/proc/{holder}/task/{holder}/children") as f:
        children = f.read().split()
    try:
        assert inner_pid == holder
        assert len(children) == 1
        assert proc.ns_pid(int(children[0])) == 1
    finally:
        os.kill(int(children[0]), signal.SIGKILL)
        os.waitpid(holder, 0)
