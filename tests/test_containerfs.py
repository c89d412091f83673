"""Reading a container's files must never reach the host, block, or read a device."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runpy_exec.containerfs import read_container_file
from runpy_exec.errors import PyruncError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A container root with the traps a hostile image could hold."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    (rootfs / "etc" / "passwd").symlink_to("/etc/shadow")  # absolute: must stay inside
    (rootfs / "etc" / "climb").symlink_to("../../../../../../etc/hostname")
    (rootfs / "etc" / "hostname").write_text("inside\n")
    (rootfs / "etc" / "magic").symlink_to("/proc/self/root/etc/hostname")
    os.mkfifo(rootfs / "etc" / "fifo")
    (rootfs / "etc" / "dir").mkdir()
    (rootfs / "etc" / "big").write_bytes(b"x" * 5000)
    (rootfs / "etc" / "latin1").write_bytes(b"caf\xe9:x:1:\n")
    return rootfs


@pytest.fixture
def alarm() -> Iterator[None]:
    """Turn a read that blocks (a FIFO with no writer) into a failure, not a hung test."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("read_container_file blocked")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(5)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def failure(root: Path, path: str) -> str:
    with pytest.raises(PyruncError) as error:
        read_container_file(str(root), path)
    assert error.value.exit_code == 255
    return str(error.value)


def test_regular_file(root: Path) -> None:
    assert read_container_file(str(root), "/etc/group") == "root:x:0:\n"
    assert read_container_file(str(root), "etc/group") == "root:x:0:\n"


def test_missing_file_is_none(root: Path) -> None:
    assert read_container_file(str(root), "/etc/nonexistent") is None
    assert read_container_file(str(root), "/etc/group/below-a-file") is None


def test_absolute_symlink_stays_in_the_root(root: Path) -> None:
    # etc/passwd -> /etc/shadow: the host's /etc/shadow must not be read.
    assert read_container_file(str(root), "/etc/passwd") is None
    (root / "etc" / "shadow").write_text("container shadow\n")
    assert read_container_file(str(root), "/etc/passwd") == "container shadow\n"


def test_dotdot_stays_in_the_root(root: Path) -> None:
    assert read_container_file(str(root), "/etc/climb") == "inside\n"
    assert read_container_file(str(root), "../../../../etc/hostname") == "inside\n"


def test_magic_links_are_refused(root: Path) -> None:
    # Inside a container root without /proc, the link just leads nowhere...
    assert read_container_file(str(root), "/etc/magic") is None
    # ...and where /proc is real, its magic links are not followed.
    assert "/proc/self/root/etc/hostname" in failure(Path("/"), "/proc/self/root/etc/hostname")
    assert read_container_file("/", "/proc/sys/kernel/ostype") == "Linux\n"


def test_fifo_is_refused_without_blocking(root: Path, alarm: None) -> None:
    assert failure(root, "/etc/fifo").endswith("/etc/fifo in " + str(root) +
                                               ": not a regular file")


def test_directory_is_refused(root: Path) -> None:
    assert failure(root, "/etc/dir").endswith("not a regular file")


def test_socket_is_refused(root: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "etc" / "sock"))
        assert failure(root, "/etc/sock").endswith("not a regular file")


@pytest.mark.root
def test_device_is_never_opened(root: Path, alarm: None) -> None:
    """A tty device whose open would block (or a tape that rewinds on open) is not opened."""
    os.mknod(root / "etc" / "tty", 0o600 | stat.S_IFCHR, os.makedev(5, 0))
    os.mknod(root / "etc" / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    assert failure(root, "/etc/tty").endswith("not a regular file")
    assert failure(root, "/etc/null").endswith("not a regular file")


def test_size_is_capped(root: Path) -> None:
    assert read_container_file(str(root), "/etc/big", limit=5000) == "x" * 5000
    with pytest.raises(PyruncError, match="larger than 4999 bytes"):
        read_container_file(str(root), "/etc/big", limit=4999)


def test_non_utf8_survives_as_surrogates(root: Path) -> None:
    text = read_container_file(str(root), "/etc/latin1")
    assert text is not None
    assert os.fsencode(text) == b"caf\xe9:x:1:\n"


def test_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PyruncError, match="cannot open the container's root"):
        read_container_file(str(tmp_path / "gone"), "/etc/passwd")


def test_no_fd_leaks(root: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    for path in ("/etc/group", "/etc/passwd", "/etc/dir", "/etc/big", "/etc/nonexistent"):
        with contextlib.suppress(PyruncError):
            read_container_file(str(root), path, limit=10)
    assert set(os.listdir("/proc/self/fd")) == before


@pytest.mark.root
def test_reads_a_running_containers_files(bundle: Path, tmp_path: Path) -> None:
    """Through /proc/<init pid>/root, as exec does: the busybox image's own passwd."""
    state_root, container_id = str(tmp_path / "runc-root"), f"cfs-{os.getpid()}"
    runc = ["runc", "--root", state_root]
    # The container inherits runc's stdio: pipes here would never reach EOF.
    with open(tmp_path / "runc.err", "w+") as err:
        started = subprocess.run([*runc, "run", "-d", "--bundle", str(bundle), container_id],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=err, timeout=60)
        err.seek(0)
        assert started.returncode == 0, err.read()
    try:
        state = subprocess.run([*runc, "state", container_id], capture_output=True, text=True,
                               check=True, timeout=60)
        pid = json.loads(state.stdout)["pid"]
        passwd = read_container_file(f"/proc/{pid}/root", "/etc/passwd")
        assert passwd is not None
        assert passwd.startswith("root:x:0:0:")
        assert passwd != Path("/etc/passwd").read_text()
    finally:
        subprocess.run([*runc, "delete", "--force", container_id], capture_output=True,
                       timeout=60)
