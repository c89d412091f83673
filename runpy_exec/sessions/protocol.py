"""The framed protocol between a session's waiter and its clients.

Every message is one frame: a type byte, a 4-byte big-endian length, then
that many bytes.  The waiter accepts from a client only a HELLO first, then
INPUT (keystrokes) and WINSIZE frames, each with a bounded length; anything
else, or a HELLO that does not come in time, drops that client alone.  A
client cannot make the waiter do anything but write keys to the pty and
resize it (and, with a KILL hello, signal the process).
"""

from __future__ import annotations

import struct

from runpy_exec.errors import PyruncError

# client -> waiter
HELLO = b"H"  # payload: mode byte, then mode-specific bytes
INPUT = b"I"  # keystrokes
WINSIZE = b"W"  # rows, cols: two big-endian u16
# waiter -> client
OUTPUT = b"O"  # bytes the process wrote to its terminal
EXIT = b"X"  # the process's status, a big-endian u32; the last frame
INFO = b"J"  # a JSON object (answer to a QUERY or KILL hello)

# HELLO modes
ATTACH = b"a"  # then one byte: 1 to replay the buffer, 0 not to
QUERY = b"q"  # answer INFO and close
KILL = b"k"  # then one byte: the signal; answer INFO, then EXIT when the process ends

HEADER = struct.Struct(">cI")
MAX_INPUT = 4096
# What each side accepts, by type: the longest payload.
FROM_CLIENT = {HELLO: 2, INPUT: MAX_INPUT, WINSIZE: 4}
FROM_WAITER = {OUTPUT: 1 << 20, EXIT: 4, INFO: 1 << 16}


class ProtocolError(PyruncError):
    """A peer sent something outside the protocol."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def winsize(rows: int, cols: int) -> bytes:
    return frame(WINSIZE, struct.pack(">HH", rows, cols))


def parse_winsize(payload: bytes) -> tuple[int, int]:
    if len(payload) != 4:
        raise ProtocolError("winsize frame of the wrong length")
    rows, cols = struct.unpack(">HH", payload)
    return rows, cols


class FrameReader:
    """Splits a byte stream into frames, refusing unknown types and oversized lengths."""

    def __init__(self, accepted: dict[bytes, int]) -> None:
        self.accepted = accepted
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buffer)
            limit = self.accepted.get(kind)
            if limit is None:
                raise ProtocolError(f"unknown frame type {kind!r}")
            if length > limit:
                raise ProtocolError(f"frame {kind!r} of {length} bytes (at most {limit})")
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[HEADER.size:end])))
            del self._buffer[:end]
        return frames
