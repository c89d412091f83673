"""OCI device rules as a cgroup v2 device program (BPF_PROG_TYPE_CGROUP_DEVICE).

cgroup v2 has no devices.allow/devices.deny: the kernel asks the programs
attached to a cgroup (and to its ancestors) whether an open or mknod of a
device may go on.  :func:`compile_rules` turns the rules into raw eBPF
instructions, :func:`set_rules` loads and attaches them.

The program keeps the rules' meaning as runc gives it: rules are ordered and
the last one that matches decides, with nothing allowed when none matches.
So the rules are emitted last first, each a block that returns its verdict
when it matches and falls through to the next block otherwise.  A rule
matches when the type ("a": any), major and minor (-1 or missing: any) match
and, for an allow rule, the access asked for (r, w, m) is all among the
rule's; a deny rule matches when any of the access asked for is among its
own, so denying "w" refuses a read-write open as v1's devices.deny does.
"""

from __future__ import annotations

import os
import struct

from runpy_exec.errors import PyruncError

# create imports this module on every call: typing and collections.abc are
# for the type checker only (~8 ms a start).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }:
# access_type is (access << 16) | type.
_TYPES = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}
_ALL_ACCESS = 7
_MAX_NUMBER = 0x7FFFFFFF  # an immediate is a signed 32-bit number

# Instruction codes (class | operation | source).
_LDX_W = 0x61  # dst = *(u32 *)(src + off)
_AND32_K = 0x54
_RSH32_K = 0x74
_MOV32_X = 0xBC
_MOV64_K = 0xB7
_JNE_K = 0x55
_JNE_X = 0x5D
_JEQ_K = 0x15
_EXIT = 0x95

_R0, _R1, _R2, _R3, _R4, _R5 = range(6)
_NEXT = object()  # a jump to the next rule's block, resolved when the block is done


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _number(rule: Mapping[str, Any], key: str, where: str) -> int | None:
    value = rule.get(key)
    if value is None or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_NUMBER:
        raise PyruncError(f"{where}: {key} {value!r} is not a device number or -1")
    return value


def _block(rule: Mapping[str, Any], where: str) -> tuple[bytes, bool]:
    """One rule's instructions, and whether the rule matches every access (ends the program)."""
    kind = rule.get("type") or "a"
    if kind != "a" and kind not in _TYPES:
        raise PyruncError(f"{where}: type {kind!r} cannot be a cgroup device rule (a, b or c)")
    access_text = rule.get("access") or "rwm"
    if not isinstance(access_text, str) or not access_text or set(access_text) - set(_ACCESS):
        raise PyruncError(f"{where}: access {access_text!r} is not a subset of 'rwm'")
    access = sum(_ACCESS[letter] for letter in set(access_text))
    major, minor = _number(rule, "major", where), _number(rule, "minor", where)
    allow = bool(rule.get("allow"))
    steps: list[tuple[int, int, int, object, int]] = []
    if kind != "a":
        steps.append((_JNE_K, _R2, 0, _NEXT, _TYPES[kind]))
    if access != _ALL_ACCESS:
        steps.append((_MOV32_X, _R1, _R3, 0, 0))
        steps.append((_AND32_K, _R1, 0, 0, access))
        if allow:  # everything asked for is allowed by this rule
            steps.append((_JNE_X, _R1, _R3, _NEXT, 0))
        else:  # something asked for is denied by this rule
            steps.append((_JEQ_K, _R1, 0, _NEXT, 0))
    if major is not None:
        steps.append((_JNE_K, _R4, 0, _NEXT, major))
    if minor is not None:
        steps.append((_JNE_K, _R5, 0, _NEXT, minor))
    steps.append((_MOV64_K, _R0, 0, 0, int(allow)))
    steps.append((_EXIT, 0, 0, 0, 0))
    code = b"".join(
        _insn(op, dst, src, len(steps) - i - 1 if off is _NEXT else 0, imm)
        for i, (op, dst, src, off, imm) in enumerate(steps)
    )
    return code, len(steps) == 2


def compile_rules(rules: Sequence[Mapping[str, Any]],
                  field: str = "linux.resources.devices") -> bytes:
    """The device program for ``rules`` (OCI linux.resources.devices entries).

    A rule that the program cannot express raises a PyruncError naming the
    rule as ``field[index]``.
    """
    blocks = [_block(rule, f"{field}[{i}]") for i, rule in enumerate(rules)]
    code = [
        _insn(_LDX_W, _R2, _R1, 0),
        _insn(_AND32_K, _R2, imm=0xFFFF),  # device type
        _insn(_LDX_W, _R3, _R1, 0),
        _insn(_RSH32_K, _R3, imm=16),  # access asked for
        _insn(_LDX_W, _R4, _R1, 4),  # major
        _insn(_LDX_W, _R5, _R1, 8),  # minor
    ]
    for block, matches_everything in reversed(blocks):
        code.append(block)
        if matches_everything:
            # Earlier rules can never decide; the verifier refuses code that
            # cannot be reached, so it is left out.
            return b"".join(code)
    code.append(_insn(_MOV64_K, _R0, imm=0))  # no rule matched: deny
    code.append(_insn(_EXIT))
    return b"".join(code)


def set_rules(path: str, rules: Sequence[Mapping[str, Any]]) -> None:
    """Put a program for ``rules`` on the cgroup at ``path`` in place of any there.

    As runc does, the new program is attached before the old ones are
    detached, so there is no moment when the cgroup has no device filter
    (two programs at once only narrow access: every attached one must allow).
    """
    from runpy_exec.linux import bpf
    from runpy_exec.linux.cgroups.common import CgroupError

    program = compile_rules(rules)
    step = "open"
    try:
        cgroup_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            step = "list the device programs of"
            old = bpf.query(cgroup_fd)
            step = "load the device program for"
            program_fd = bpf.load_device_program(program)
            try:
                step = "attach the device program to"
                bpf.attach(cgroup_fd, program_fd)
            finally:
                os.close(program_fd)
            step = "detach the old device program from"
            for program_id in old:
                old_fd = bpf.program_fd(program_id)
                try:
                    bpf.detach(cgroup_fd, old_fd)
                finally:
                    os.close(old_fd)
        finally:
            os.close(cgroup_fd)
    except OSError as err:
        raise CgroupError(f"cgroup devices: {step} {path}: {err.strerror}", err.errno or 0) from err


def attached_programs(path: str) -> list[int]:
    """Ids of the device programs attached to the cgroup at ``path`` itself."""
    from runpy_exec.linux import bpf

    cgroup_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return bpf.query(cgroup_fd)
    finally:
        os.close(cgroup_fd)
