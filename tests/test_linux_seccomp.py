"""Seccomp profiles compiled in the parent and loaded in a forked child, as the runtime does."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from runpy_exec import create_cmd
from runpy_exec.errors import PyruncError
from runpy_exec.linux import seccomp
from runpy_exec.linux.proc import status_field
from tests.forking import in_child

pytestmark = pytest.mark.root

_libc = ctypes.CDLL(None, use_errno=True)
QUERY_PERSONALITY = 0xFFFFFFFF



def allow_all_but(*rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": list(rules),
    }


def personality(persona: int) -> int:
    result: int = _libc.personality(ctypes.c_ulong(persona))
    return -ctypes.get_errno() if result == -1 else result


def test_errno_action_returns_errno_ret(tmp_path: os.PathLike[str]) -> None:
    flt = seccomp.prepare(
        allow_all_but(
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
        )
    )
    target = os.path.join(tmp_path, "d")

    def body() -> None:
        assert seccomp.load(flt) is None
        with pytest.raises(OSError) as mkdir_error:
            os.mkdir(target)
        assert mkdir_error.value.errno == errno.EXDEV
        with pytest.raises(OSError) as rmdir_error:
            os.rmdir(str(tmp_path))
        assert rmdir_error.value.errno == errno.EPERM
        assert status_field("self", "Seccomp") == "2"

    in_child(body, allow_signal=True)
    assert not os.path.exists(target)
    os.mkdir(target)  # the parent is not filtered
    os.rmdir(target)


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"])
def test_kill_action_kills_with_sigsys(action: str) -> None:
    flt = seccomp.prepare(allow_all_but({"names": ["getppid"], "action": action}))

    def body() -> None:
        seccomp.load(flt)
        os.getppid()

    status = in_child(body, allow_signal=True)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_argument_condition() -> None:
    flt = seccomp.prepare(
        allow_all_but(
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": QUERY_PERSONALITY, "op": "SCMP_CMP_NE"}],
            }
        )
    )

    def body() -> None:
        seccomp.load(flt)
        assert personality(QUERY_PERSONALITY) >= 0
        assert personality(0) == -errno.EPERM

    in_child(body, allow_signal=True)


def test_conditions_on_one_argument_are_alternatives() -> None:
    addr_no_randomize = 0x0040000
    read_implies_exec = 0x0400000
    flt = seccomp.prepare(
        allow_all_but(
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.EACCES,
                "args": [
                    {"index": 0, "value": addr_no_randomize, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": read_implies_exec, "op": "SCMP_CMP_EQ"},
                ],
            }
        )
    )

    def body() -> None:
        seccomp.load(flt)
        assert personality(addr_no_randomize) == -errno.EACCES
        assert personality(read_implies_exec) == -errno.EACCES
        assert personality(QUERY_PERSONALITY) >= 0

    in_child(body, allow_signal=True)


def test_masked_eq_uses_value_as_mask_and_value_two_as_result() -> None:
    addr_no_randomize = 0x0040000
    flt = seccomp.prepare(
        allow_all_but(
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "args": [
                    {
                        "index": 0,
                        "value": addr_no_randomize,
                        "valueTwo": addr_no_randomize,
                        "op": "SCMP_CMP_MASKED_EQ",
                    }
                ],
            }
        )
    )

    def body() -> None:
        seccomp.load(flt)
        assert personality(addr_no_randomize | 0x0000008) == -errno.EPERM
        assert personality(0) >= 0

    in_child(body, allow_signal=True)


def test_unknown_syscall_names_are_skipped() -> None:
    flt = seccomp.prepare(
        allow_all_but(
            {"names": ["no_such_syscall", "mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
        )
    )

    def body() -> None:
        seccomp.load(flt)
        with pytest.raises(PermissionError):
            os.mkdir("/nonexistent-parent/child")

    in_child(body, allow_signal=True)


def test_filter_flags_are_accepted_and_loaded() -> None:
    profile = allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"})
    profile["flags"] = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    flt = seccomp.prepare(profile)

    def body() -> None:
        seccomp.load(flt)
        with pytest.raises(PermissionError):
            os.mkdir("/nonexistent-parent/child")

    in_child(body, allow_signal=True)


def test_notify_returns_the_listener_fd() -> None:
    profile = allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"})
    with pytest.raises(PyruncError, match="listenerPath"):
        seccomp.prepare(profile)
    profile["listenerPath"] = "/run/some-agent.sock"
    flt = seccomp.prepare(profile)
    assert flt.notify and flt.listener_path == "/run/some-agent.sock"

    def body() -> None:
        fd = seccomp.load(flt)
        assert fd is not None
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:seccomp notify"

    in_child(body, allow_signal=True)


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"defaultAction": "SCMP_ACT_FOO"}, "SCMP_ACT_FOO"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "default action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}, "Z80"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]}, "FLAG_X"),
        (
            allow_all_but({"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0}]}),
            "operator",
        ),
        (
            allow_all_but(
                {
                    "names": ["read"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 6, "op": "SCMP_CMP_EQ"}],
                }
            ),
            "index 6",
        ),
    ],
)
def test_invalid_profiles_are_refused(profile: dict[str, Any], message: str) -> None:
    with pytest.raises(PyruncError, match=message):
        seccomp.prepare(profile)


def raw_syscall_errno(number: int, *args: int) -> int:
    """Call syscall ``number``; 0 on success, else its errno."""
    result = _libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
    return ctypes.get_errno() if result == -1 else 0


def test_syscalls_newer_than_the_profile_fail_with_enosys() -> None:
    """An old Docker-shaped profile: close_range and clone3 are newer than it, so
    they get ENOSYS (callers fall back); an old syscall it leaves out keeps EPERM."""
    import pyseccomp

    from tests.old_profiles import docker_2019_profile

    flt = seccomp.prepare(docker_2019_profile())
    number = {name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
              for name in ("close_range", "clone3", "faccessat2", "acct")}

    def body() -> None:
        seccomp.load(flt)
        assert raw_syscall_errno(number["close_range"], 1000, 1000, 0) == errno.ENOSYS
        assert raw_syscall_errno(number["clone3"], 0, 0) == errno.ENOSYS
        assert raw_syscall_errno(number["faccessat2"], -100, 0, 0, 0) == errno.ENOSYS
        assert raw_syscall_errno(number["acct"], 0) == errno.EPERM
        assert os.getpid() > 0

    in_child(body)


@pytest.mark.parametrize("default", ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG"])
def test_no_enosys_rules_under_a_permissive_default(default: str) -> None:
    """runc adds its ENOSYS stub only under a denying default: here newer syscalls pass."""
    import pyseccomp

    flt = seccomp.prepare(allow_all_but({"names": ["acct"], "action": "SCMP_ACT_ERRNO"})
                          | {"defaultAction": default})
    close_range = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "close_range")

    def body() -> None:
        seccomp.load(flt)
        assert raw_syscall_errno(close_range, 1000, 1000, 0) == 0

    in_child(body)


def test_numbers_beyond_libseccomp_get_enosys_too() -> None:
    """runc v1.5.1 seccomp.bats: syscall 1000, which no table has, fails with ENOSYS under
    a denying profile with several architectures (libseccomp cannot name it)."""
    flt = seccomp.prepare({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["read", "write", "exit_group", "getpid"],
                      "action": "SCMP_ACT_ALLOW"}]})

    def body() -> None:
        seccomp.load(flt)
        assert raw_syscall_errno(1000, 0, 0, 0) == errno.ENOSYS
        assert raw_syscall_errno(163, 0) == errno.EPERM  # acct: old, and not allowed
        assert os.getpid() > 0

    in_child(body)


def test_a_kept_program_is_the_compiled_filter(tmp_path: os.PathLike[str]) -> None:
    """What create keeps is the program libseccomp would load, and loaded as it is
    (with the profile's flags) it acts as the compiled filter does."""
    profile = allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": errno.EDOM})
    profile["flags"] = ["SECCOMP_FILTER_FLAG_LOG"]
    compiled = seccomp.prepare(profile)
    create_cmd._keep_seccomp_program(compiled, str(tmp_path))
    code = seccomp.kept_program(str(tmp_path))
    assert code is not None and code == seccomp.program_of(compiled)
    assert sorted(os.listdir(tmp_path)) == [seccomp.PROGRAM_FILE]
    kept = seccomp.from_program(code, profile)
    assert kept.syscall_filter is None and kept.flags == 2  # SECCOMP_FILTER_FLAG_LOG

    def body() -> None:
        assert seccomp.load(kept) is None
        with pytest.raises(PermissionError):
            os.mkdir("/nonexistent-parent/child")
        assert personality(QUERY_PERSONALITY) == -errno.EDOM
        assert status_field(os.getpid(), "Seccomp") == "2"

    in_child(body, allow_signal=True)


def test_no_program_is_kept_for_a_filter_with_a_listener(tmp_path: os.PathLike[str]) -> None:
    """Only libseccomp's own load hands back a listener's fd: such a filter is compiled
    at every exec, and nothing is kept for it."""
    profile = allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"})
    profile["listenerPath"] = "/run/some-agent.sock"
    create_cmd._keep_seccomp_program(seccomp.prepare(profile), str(tmp_path))
    assert seccomp.kept_program(str(tmp_path)) is None
    assert os.listdir(tmp_path) == []


def test_a_torn_program_is_not_used(tmp_path: os.PathLike[str]) -> None:
    """Not whole 8-byte instructions: exec compiles the profile instead of loading it."""
    with open(os.path.join(tmp_path, seccomp.PROGRAM_FILE), "wb") as f:
        f.write(b"\x06\x00\x00\x00\x00\x00\xff\x7f\x06\x00")
    assert seccomp.kept_program(str(tmp_path)) is None
    with pytest.raises(ValueError, match="8-byte"):
        seccomp.from_program(b"\x06\x00\x00\x00\x00\x00", {})


def test_create_compiles_a_profile_once_and_keeps_the_program_by_profile(
        tmp_path: os.PathLike[str]) -> None:
    """compiled() compiles on the first create with a profile; the program goes to the
    container's directory and, under a digest of the profile, to the cache; a later
    create with the same profile gets that program back, one with another profile does
    not, and a damaged entry is compiled again."""
    cache = os.path.join(tmp_path, "cache")
    state = os.path.join(tmp_path, "state")
    os.mkdir(state)
    profile = allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    first = seccomp.compiled(profile, cache)
    assert first.syscall_filter is None and first.program is not None
    assert os.path.dirname(first.cache_path) == cache and not os.path.exists(cache)
    create_cmd._keep_seccomp_program(first, state)
    expected = seccomp.program_of(seccomp.prepare(profile))
    assert seccomp.kept_program(state) == expected
    assert os.listdir(cache) == [os.path.basename(first.cache_path)]
    assert (os.stat(cache).st_mode & 0o777, os.stat(first.cache_path).st_mode & 0o777) == (
        0o700, 0o600)

    again = seccomp.compiled(profile, cache)
    assert again.cache_path == "" and again.program is not None
    assert again.program.code == expected and again.flags == first.flags

    other = seccomp.compiled(allow_all_but({"names": ["rmdir"], "action": "SCMP_ACT_ERRNO",
                                            "errnoRet": 1}), cache)
    assert other.cache_path not in ("", first.cache_path)

    with open(first.cache_path, "wb") as f:
        f.write(expected[:-3])
    assert seccomp.compiled(profile, cache).cache_path == first.cache_path


def test_a_cached_program_is_loaded_without_pyseccomp(tmp_path: os.PathLike[str]) -> None:
    """The point of the cache: a create that finds its profile's program imports no
    pyseccomp (~15 ms), and the filter it loads acts as the compiled one."""
    cache = os.path.join(tmp_path, "cache")
    profile = allow_all_but({"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": errno.EDOM})
    create_cmd._keep_seccomp_program(seccomp.compiled(profile, cache), str(tmp_path))
    script = ("import json, sys\n"
              "from runpy_exec.linux import seccomp\n"
              f"flt = seccomp.compiled(json.loads({json.dumps(json.dumps(profile))}), "
              f"{cache!r})\n"
              "print(flt.cache_path == '' and flt.program is not None, 'pyseccomp' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["True", "False"]
    cached = seccomp.compiled(profile, cache)

    def body() -> None:
        assert seccomp.load(cached) is None
        assert personality(QUERY_PERSONALITY) == -errno.EDOM

    in_child(body)


def test_a_profile_with_a_listener_is_not_cached(tmp_path: os.PathLike[str]) -> None:
    profile = allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"})
    profile["listenerPath"] = "/run/some-agent.sock"
    flt = seccomp.compiled(profile, os.path.join(tmp_path, "cache"))
    assert flt.notify and flt.syscall_filter is not None and flt.cache_path == ""
    create_cmd._keep_seccomp_program(flt, str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_libseccomp_version_is_the_one_pyseccomp_loads() -> None:
    import pyseccomp

    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    lib = pyseccomp._libseccomp
    lib.seccomp_version.restype = ctypes.POINTER(Version)
    version = lib.seccomp_version().contents
    assert seccomp.libseccomp_version() == f"{version.major}.{version.minor}.{version.micro}"


def test_the_cache_key_is_the_same_without_the_builtin_sha256() -> None:
    """Python 3.12 has no _sha256 (pyproject allows it): hashlib's digest is the same key."""
    profile = allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    script = ("import json, sys\n"
              "sys.modules['_sha256'] = None  # import _sha256 raises ImportError now\n"
              "from runpy_exec.linux import seccomp\n"
              f"print(seccomp._cache_key(json.loads({json.dumps(json.dumps(profile))})))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    key = seccomp._cache_key(profile)
    assert key is not None and len(key) == 64
    assert done.stdout.strip() == key
