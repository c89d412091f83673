"""The pieces of exec sessions that need no container: names, sizes, frames, detach keys."""

from __future__ import annotations

import pytest

from runpy_exec import sessions
from runpy_exec.errors import PyruncError
from runpy_exec.sessions import client, protocol, start


def test_frames_split_across_reads_are_reassembled() -> None:
    reader = protocol.FrameReader(protocol.FROM_CLIENT)
    data = protocol.frame(protocol.INPUT, b"ls\r") + protocol.winsize(40, 120)
    assert reader.feed(data[:3]) == []
    assert reader.feed(data[3:9]) == [(protocol.INPUT, b"ls\r")]
    frames = reader.feed(data[9:])
    assert frames == [(protocol.WINSIZE, b"\x00\x28\x00\x78")]
    assert protocol.parse_winsize(frames[0][1]) == (40, 120)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\n",  # an unknown type byte
    protocol.HEADER.pack(protocol.INPUT, protocol.MAX_INPUT + 1),  # longer than allowed
    protocol.HEADER.pack(protocol.OUTPUT, 1),  # a waiter's frame, sent by a client
    protocol.HEADER.pack(protocol.HELLO, 1 << 31),
])
def test_a_client_s_garbage_is_refused_before_it_is_buffered(data: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.FrameReader(protocol.FROM_CLIENT).feed(data)


def test_winsize_must_be_exactly_four_bytes() -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_winsize(b"\x00\x01\x02")


@pytest.mark.parametrize(("value", "keys"), [
    ("ctrl-p,ctrl-q", b"\x10\x11"),
    ("ctrl-a,d", b"\x01d"),
    ("ctrl-@", b"\x00"),
    ("ctrl-[,ctrl-_", b"\x1b\x1f"),
    ("x", b"x"),
])
def test_detach_keys_in_docker_s_syntax(value: str, keys: bytes) -> None:
    assert client.parse_detach_keys(value) == keys


@pytest.mark.parametrize("value", ["", "ctrl-", "ctrl-pp", "ctrl-1", "ab", "ctrl-p,,ctrl-q"])
def test_bad_detach_keys(value: str) -> None:
    with pytest.raises(PyruncError, match="invalid detach keys"):
        client.parse_detach_keys(value)


def test_detach_sequence_is_found_across_reads_and_never_sent() -> None:
    scanner = client.DetachScanner(b"\x10\x11")
    assert scanner.feed(b"ab\x10") == (b"ab", False)
    assert scanner.feed(b"\x11") == (b"", True)


def test_a_half_sequence_followed_by_another_key_is_sent_whole() -> None:
    scanner = client.DetachScanner(b"\x10\x11")
    assert scanner.feed(b"\x10") == (b"", False)
    assert scanner.feed(b"x") == (b"\x10x", False)
    assert scanner.feed(b"\x10\x10\x11") == (b"\x10", True)


@pytest.mark.parametrize(("value", "size"), [("40x120", (40, 120)), ("1X1", (1, 1)),
                                             ("65535x65535", (65535, 65535))])
def test_sizes(value: str, size: tuple[int, int]) -> None:
    assert sessions.parse_size(value) == size


@pytest.mark.parametrize("value", ["", "40", "x", "40x", "0x80", "40x0", "-1x80", "40x80x2",
                                   "65536x1", "4０x80", " 40x80"])
def test_malformed_sizes(value: str) -> None:
    with pytest.raises(PyruncError, match="invalid size"):
        sessions.parse_size(value)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "a b", "x" * 65])
def test_session_names_follow_the_container_id_rules(name: str) -> None:
    with pytest.raises(PyruncError, match="invalid session name"):
        sessions.check_name(name)


def test_login_shell_is_the_first_entry_s_and_falls_back_to_sh() -> None:
    passwd = "root:x:0:0:root:/root:/bin/ash\nalt:x:0:0::/:/bin/bash\nnoshell:x:5:5::/:\n"
    assert start.login_shell(passwd, 0) == "/bin/ash"
    assert start.login_shell(passwd, 5) == "/bin/sh"
    assert start.login_shell(passwd, 1000) == "/bin/sh"
    assert start.login_shell(None, 0) == "/bin/sh"
