"""The pure resolution rules, checked against what runc 1.1.5 was seen to do.

Cases marked "runc:" reproduce an observed ``runc exec`` outcome on the
busybox rootfs (same /etc/passwd and /etc/group as below).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runpy_exec import resolve
from runpy_exec.errors import PyruncError
from runpy_exec.plan import CAPABILITY_NAMES, CapabilitySets, IoPriority, Rlimit, Scheduler
from runpy_exec.requests import ExecRequest
from runpy_exec.resolve import GroupEntry, PasswdEntry, ResolveError

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """\
root:x:0:
wheel:x:10:root
mail:x:8:
users:x:100:nobody,sync
staff:x:50: nobody , mail
nogroup:x:65534:
"""
USERS = resolve.parse_passwd(PASSWD)
GROUPS = resolve.parse_group(GROUP)

CAP_KILL, CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SYS_ADMIN, CAP_AUDIT_WRITE = 5, 10, 13, 21, 29
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
DEFAULT_SET = frozenset({CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE})
LAST_CAP = 40


def runc_default_process(**changes: Any) -> dict[str, Any]:
    """The process object of `runc spec` (terminal off), which runc's own tests start from."""
    process: dict[str, Any] = {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sleep", "1000"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"],
        "cwd": "/",
        "capabilities": {key: list(DEFAULT_CAPS)
                         for key in ("bounding", "effective", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    }
    process.update(changes)
    return process


def ignore(warning: str) -> None:
    """For tests about something else than warnings."""


def message(error: pytest.ExceptionInfo[PyruncError]) -> str:
    assert error.value.exit_code == 255
    return str(error.value)


# --- passwd and group ----------------------------------------------------------


def test_parse_passwd_reads_fields() -> None:
    assert USERS[3] == PasswdEntry("mail", 8, 8, "/var/spool/mail")
    assert [u.name for u in USERS] == ["root", "daemon", "sync", "mail", "nobody"]


def test_parse_passwd_skips_what_libc_skips() -> None:
    text = (
        "# a comment\n"
        "\n"
        "   \n"
        "+::::::\n"
        "-baduser::::::\n"
        "garbled:x:abc:0:x:/nope:/bin/sh\n"  # runc would read uid 0 here
        "short:x:5\n"
        ":x:6:6::/empty:/bin/sh\n"
        "  ok:x:7:70  \n"
        "neg:x:-1:0::/:/bin/sh\n"
    )
    assert resolve.parse_passwd(text) == [PasswdEntry("ok", 7, 70, "")]


def test_parse_group_members() -> None:
    by_name = {g.name: g for g in GROUPS}
    assert by_name["users"] == GroupEntry("users", 100, ("nobody", "sync"))
    assert by_name["staff"].members == ("nobody", "mail")
    assert by_name["root"].members == ()
    assert resolve.parse_group("g:x:1\n#c:x:2:\nbad:x:y:z\n") == [GroupEntry("g", 1, ())]


def test_parse_tolerates_non_utf8_surrogates() -> None:
    text = b"\xffuser:x:9:9::/h:/bin/sh\n".decode("utf-8", "surrogateescape")
    assert resolve.parse_passwd(text)[0].uid == 9


# --- --user --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # runc: no --user keeps the spec's ids; HOME from passwd.
        (None, resolve.ExecUser(0, 0, "/root")),
        ("", resolve.ExecUser(0, 0, "/root")),
        # runc: `--user 8` -> uid=8 gid=0 (the spec's gid, not passwd's 8), HOME=/var/spool/mail
        ("8", resolve.ExecUser(8, 0, "/var/spool/mail")),
        # runc: `--user 8:100` -> uid=8 gid=100
        ("8:100", resolve.ExecUser(8, 100, "/var/spool/mail")),
        # runc: `--user 65534` -> HOME=/home
        ("65534", resolve.ExecUser(65534, 0, "/home")),
        # runc: `--user 2147483647` works; a uid not in passwd gets HOME=/
        ("2147483647", resolve.ExecUser(2147483647, 0, "/")),
        ("4294967294", resolve.ExecUser(4294967294, 0, "/")),
        ("1000:1000", resolve.ExecUser(1000, 1000, "/")),
        ("+8", resolve.ExecUser(8, 0, "/var/spool/mail")),
        # Names (our extension): passwd gid, plus /etc/group membership when no group given.
        ("nobody", resolve.ExecUser(65534, 65534, "/home", (100, 50))),
        ("root", resolve.ExecUser(0, 0, "/root", (10,))),
        ("mail", resolve.ExecUser(8, 8, "/var/spool/mail", (50,))),
        ("nobody:nogroup", resolve.ExecUser(65534, 65534, "/home")),
        ("nobody:7", resolve.ExecUser(65534, 7, "/home")),
        ("0:users", resolve.ExecUser(0, 100, "/root")),
        ("1234:wheel", resolve.ExecUser(1234, 10, "/")),
    ],
)
def test_resolve_user(spec: str | None, expected: resolve.ExecUser) -> None:
    assert resolve.resolve_user(spec, 0, 0, USERS, GROUPS) == expected


def test_resolve_user_uid_alone_keeps_the_default_gid() -> None:
    assert resolve.resolve_user("8", 3, 77, USERS, GROUPS).gid == 77
    assert resolve.resolve_user(None, 4, 77, USERS, GROUPS) == resolve.ExecUser(4, 77, "/bin")


@pytest.mark.parametrize(
    ("spec", "passwd", "expected"),
    [
        ("nobodyx", USERS, "exec failed: unable to find user nobodyx: no matching entries in "
                           "passwd file"),
        ("root", [], "exec failed: unable to find user root: no matching entries in passwd file"),
        ("0:nogroupx", USERS, "exec failed: unable to find group nogroupx: no matching entries "
                              "in group file"),
        ("-1", USERS, "exec failed: uid -1 is out of range: ids must be in 0-4294967294"),
        ("4294967295", USERS, "exec failed: uid 4294967295 is out of range: ids must be in "
                              "0-4294967294"),
        ("0:-5", USERS, "exec failed: gid -5 is out of range: ids must be in 0-4294967294"),
        ("8:", USERS, 'exec failed: invalid --user value "8:": want uid[:gid] or name[:group]'),
        (":8", USERS, 'exec failed: invalid --user value ":8": want uid[:gid] or name[:group]'),
    ],
)
def test_resolve_user_errors(spec: str, passwd: list[PasswdEntry], expected: str) -> None:
    with pytest.raises(PyruncError) as error:
        resolve.resolve_user(spec, 0, 0, passwd, GROUPS)
    assert message(error) == expected


def test_resolve_user_refuses_out_of_range_defaults() -> None:
    with pytest.raises(ResolveError, match="uid 4294967295 is out of range"):
        resolve.resolve_user(None, 4294967295, 0, USERS, GROUPS)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # runc: `-g 10 -g 10 -g 20` -> groups=10(wheel),20
        (["10", "10", "20"], (10, 20)),
        (["wheel", "users", "10"], (10, 100)),
        (["99999"], (99999,)),
        ([], ()),
    ],
)
def test_resolve_additional_gids(values: list[str], expected: tuple[int, ...]) -> None:
    assert resolve.resolve_additional_gids(values, GROUPS) == expected


def test_resolve_additional_gids_errors() -> None:
    with pytest.raises(PyruncError) as error:
        resolve.resolve_additional_gids(["-3"], GROUPS)
    assert message(error) == "exec failed: additional-gids must be a positive number -3"  # runc
    with pytest.raises(ResolveError, match="unable to find group nosuch"):
        resolve.resolve_additional_gids(["nosuch"], GROUPS)


# --- environment ---------------------------------------------------------------


def test_merge_env_like_runc() -> None:
    # runc: --env A=1 --env B=x,y=z --env A=2 --env PATH=/bin
    base = runc_default_process()["env"]
    merged = resolve.merge_env(base, ["A=1", "B=x,y=z", "A=2", "PATH=/bin"])
    assert merged == ["PATH=/bin", "TERM=xterm", "A=2", "B=x,y=z"]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("NOEQ", 'exec failed: invalid environment variable: "NOEQ"'),
        ("=v", 'exec failed: environment variable name can\'t be empty: "=v"'),
        ("A\0B=1", 'exec failed: environment variable name can\'t contain null(\\x00): '
                   '"A\\x00B=1"'),
        ("A=x\0y", 'exec failed: environment variable value can\'t contain null(\\x00): '
                   '"A=x\\x00y"'),
    ],
)
def test_merge_env_errors(entry: str, expected: str) -> None:
    with pytest.raises(PyruncError) as error:
        resolve.merge_env(["OK=1"], [entry])
    assert message(error) == expected
    with pytest.raises(PyruncError):
        resolve.merge_env([entry], [])


_names = st.sampled_from(["A", "B", "PATH", "HOME", "X_1"])
_values = st.text(alphabet=st.characters(blacklist_characters="\0"), max_size=8)
_entries = st.lists(st.tuples(_names, _values).map("=".join), max_size=12)


@given(_entries, _entries)
def test_merge_env_last_value_wins_at_first_place(base: list[str], overrides: list[str]) -> None:
    merged = resolve.merge_env(base, overrides)
    everything = base + overrides
    names = [entry.partition("=")[0] for entry in merged]
    assert names == list(dict.fromkeys(e.partition("=")[0] for e in everything))
    for entry in merged:
        name = entry.partition("=")[0]
        assert entry == [e for e in everything if e.partition("=")[0] == name][-1]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (["A=1"], ["A=1", "HOME=/root"]),
        (["HOME=/x", "A=1"], ["HOME=/x", "A=1"]),  # runc: --env HOME=/x kept
        (["HOME=", "A=1"], ["HOME=/root", "A=1"]),  # runc: --env HOME= replaced
        (["HOME==", "A=1"], ["HOME==", "A=1"]),
        (["HOMEX=1"], ["HOMEX=1", "HOME=/root"]),
    ],
)
def test_ensure_home(env: list[str], expected: list[str]) -> None:
    assert resolve.ensure_home(env, "/root") == expected


# --- capabilities --------------------------------------------------------------


def test_cap_numbers_follow_the_kernel() -> None:
    assert resolve.cap_number("CAP_CHOWN") == 0
    assert resolve.cap_number("CAP_NET_RAW") == CAP_NET_RAW
    assert resolve.cap_number("CAP_SYS_ADMIN") == CAP_SYS_ADMIN
    assert resolve.cap_number("CAP_CHECKPOINT_RESTORE") == 40
    # runc knows only the exact upper-case CAP_ name (it warned about these).
    assert resolve.cap_number("NET_RAW") is None
    assert resolve.cap_number("cap_net_raw") is None


def test_cap_table_matches_python_prctl_if_present() -> None:
    prctl = pytest.importorskip("prctl")
    for number, name in enumerate(CAPABILITY_NAMES):
        if hasattr(prctl, f"CAP_{name}"):
            assert getattr(prctl, f"CAP_{name}") == number


def test_default_spec_caps() -> None:
    # runc: CapBnd/CapPrm/CapEff 0x20000420, CapInh 0, CapAmb 0 (no inheritable list).
    spec = runc_default_process()["capabilities"]
    caps, warnings = resolve.resolve_capabilities(spec, [], False, LAST_CAP)
    assert caps == CapabilitySets(bounding=DEFAULT_SET, effective=DEFAULT_SET,
                                  permitted=DEFAULT_SET)
    assert sum(1 << c for c in caps.bounding) == 0x20000420
    assert warnings == []


def test_exec_cap_adds_to_bounding_effective_permitted() -> None:
    # runc: --cap CAP_SYS_ADMIN -> 0x20200420 in bnd/prm/eff, inheritable untouched.
    spec = runc_default_process()["capabilities"]
    caps, _ = resolve.resolve_capabilities(spec, ["CAP_SYS_ADMIN"], False, LAST_CAP)
    for found in (caps.bounding, caps.effective, caps.permitted):
        assert sum(1 << c for c in found) == 0x20200420
    assert caps.inheritable == frozenset()
    assert caps.ambient == frozenset()


def test_ambient_keeps_only_inheritable_and_permitted() -> None:
    # runc, spec with inheritable=ambient=[CAP_KILL], --cap CAP_SYS_ADMIN: CapAmb 0x20.
    spec = dict(runc_default_process()["capabilities"], inheritable=["CAP_KILL"],
                ambient=["CAP_KILL"])
    caps, _ = resolve.resolve_capabilities(spec, ["CAP_SYS_ADMIN"], False, LAST_CAP)
    assert caps.ambient == frozenset({CAP_KILL})
    assert caps.inheritable == frozenset({CAP_KILL})
    spec["inheritable"] = ["CAP_KILL", "CAP_SYS_ADMIN"]
    caps, _ = resolve.resolve_capabilities(spec, ["CAP_SYS_ADMIN"], False, LAST_CAP)
    assert caps.ambient == frozenset({CAP_KILL, CAP_SYS_ADMIN})


def test_unknown_caps_are_skipped_with_runcs_warning() -> None:
    # runc warned "ignoring unknown or unavailable capabilities: [CAP_FOO]" and ran.
    spec = dict(runc_default_process()["capabilities"])
    spec["bounding"] = [*DEFAULT_CAPS, "NET_RAW", "CAP_BPF"]
    caps, warnings = resolve.resolve_capabilities(spec, ["CAP_FOO"], False, last_cap=38)
    assert caps.bounding == DEFAULT_SET
    assert warnings == ["ignoring unknown or unavailable capabilities: [CAP_BPF CAP_FOO NET_RAW]"]


def test_net_raw_needs_the_global_flag() -> None:
    spec = {key: ["CAP_NET_RAW", "CAP_KILL"] for key in resolve._CAP_SETS}
    caps, warnings = resolve.resolve_capabilities(spec, ["CAP_NET_RAW"], False, LAST_CAP)
    for key in resolve._CAP_SETS:
        assert getattr(caps, key) == frozenset({CAP_KILL})
    assert warnings == ["ignoring --cap CAP_NET_RAW: raw sockets need the global --net-raw"]
    caps, warnings = resolve.resolve_capabilities(spec, ["CAP_NET_RAW"], True, LAST_CAP)
    assert all(CAP_NET_RAW in getattr(caps, key) for key in resolve._CAP_SETS)
    assert warnings == []


def test_no_capabilities_object_means_none_at_all() -> None:
    # runc: a spec without capabilities gives an exec'd process empty sets, bounding too.
    caps, _ = resolve.resolve_capabilities(None, [], True, LAST_CAP)
    assert caps == CapabilitySets()
    caps, _ = resolve.resolve_capabilities(None, ["CAP_KILL"], True, LAST_CAP)
    assert caps.bounding == caps.permitted == caps.effective == frozenset({CAP_KILL})


# --- rlimits, scheduling, cpus -------------------------------------------------


def test_parse_rlimits() -> None:
    limits = resolve.parse_rlimits([
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
        {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1},
        {"type": "RLIMIT_LOCKS", "soft": 1, "hard": 1},
    ])
    assert limits == (
        Rlimit(resource.RLIMIT_NOFILE, 1024, 4096),
        Rlimit(resource.RLIMIT_CORE, resource.RLIM_INFINITY, resource.RLIM_INFINITY),
        Rlimit(10, 1, 1),
    )


def test_rlimit_infinity_is_accepted_by_setrlimit() -> None:
    """2^64-1 from JSON would overflow the resource module; the plan's value must not."""
    (limit,) = resolve.parse_rlimits([{"type": "RLIMIT_CORE", "soft": 0, "hard": 2**64 - 1}])
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard != resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_CORE's hard limit is finite here; setting infinity needs root")
    resource.setrlimit(limit.resource, (soft, limit.hard))
    assert resource.getrlimit(resource.RLIMIT_CORE) == (soft, hard)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"type": "RLIMIT_FOO", "soft": 1, "hard": 1},
         "exec failed: wrong rlimit value: RLIMIT_FOO"),
        ({"type": "RLIMIT_NOFILE", "soft": 9, "hard": 5},
         "exec failed: rlimit RLIMIT_NOFILE: soft limit 9 is above hard limit 5"),
    ],
)
def test_parse_rlimits_errors(item: dict[str, Any], expected: str) -> None:
    with pytest.raises(PyruncError) as error:
        resolve.parse_rlimits([item])
    assert message(error) == expected


def test_parse_scheduler() -> None:
    assert resolve.parse_scheduler({"policy": "SCHED_OTHER", "nice": 5}) == Scheduler(
        os.SCHED_OTHER, 5, 0)
    assert resolve.parse_scheduler({"policy": "SCHED_FIFO", "priority": 10}) == Scheduler(
        os.SCHED_FIFO, 0, 10)
    reset = resolve.parse_scheduler({"policy": "SCHED_BATCH",
                                     "flags": ["SCHED_FLAG_RESET_ON_FORK"]})
    assert reset.policy == os.SCHED_BATCH | os.SCHED_RESET_ON_FORK


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"policy": "SCHED_DEADLINE", "runtime": 1}, "SCHED_DEADLINE' is not supported"),
        ({"policy": "SCHED_NOPE"}, "is not supported"),
        ({"policy": "SCHED_OTHER", "nice": 20}, "invalid scheduler.nice: 20"),
        ({"policy": "SCHED_RR"}, "invalid scheduler.priority: 0"),
        ({"policy": "SCHED_OTHER", "priority": 3}, "only be specified for SCHED_FIFO"),
        ({"policy": "SCHED_OTHER", "period": 3}, "only for SCHED_DEADLINE"),
        ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_RECLAIM"]}, "SCHED_FLAG_RECLAIM"),
    ],
)
def test_parse_scheduler_errors(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ResolveError, match=fragment):
        resolve.parse_scheduler(spec)


def test_parse_io_priority() -> None:
    assert resolve.parse_io_priority({"class": "IOPRIO_CLASS_BE", "priority": 4}) == IoPriority(
        2, 4)
    assert resolve.ioprio_class("IOPRIO_CLASS_RT") == 1
    assert resolve.ioprio_class("IOPRIO_CLASS_IDLE") == 3
    with pytest.raises(ResolveError, match="ioPriority.priority: 8"):
        resolve.parse_io_priority({"class": "IOPRIO_CLASS_BE", "priority": 8})
    with pytest.raises(ResolveError, match="IOPRIO_CLASS_NONE"):
        resolve.ioprio_class("IOPRIO_CLASS_NONE")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0-3,7", {0, 1, 2, 3, 7}),
        ("5", {5}),
        ("2-2", {2}),
        ("0-1,1-2\n", {0, 1, 2}),
    ],
)
def test_parse_cpu_list(text: str, expected: set[int]) -> None:
    assert resolve.parse_cpu_list(text) == expected


@pytest.mark.parametrize("text", ["", ",", "1,", "a", "3-1", "1-", "-1", "1 - 2", "0x1",
                                  "99999999", "1:2"])
def test_parse_cpu_list_errors(text: str) -> None:
    with pytest.raises(PyruncError) as error:
        resolve.parse_cpu_list(text)
    assert message(error).startswith("exec failed: invalid cpu list")


def _format_cpus(cpus: frozenset[int]) -> str:
    """The kernel's compact list form, to check that parsing inverts it."""
    ranges: list[str] = []
    for cpu in sorted(cpus):
        if ranges and ranges[-1].rpartition("-")[2] == str(cpu - 1):
            ranges[-1] = f"{ranges[-1].partition('-')[0]}-{cpu}"
        else:
            ranges.append(str(cpu))
    return ",".join(ranges)


@given(st.frozensets(st.integers(0, 300), min_size=1))
def test_parse_cpu_list_round_trip(cpus: frozenset[int]) -> None:
    assert resolve.parse_cpu_list(_format_cpus(cpus)) == cpus


def test_cpu_list_agrees_with_sysfs() -> None:
    with open("/sys/devices/system/cpu/online") as f:
        online = resolve.parse_cpu_list(f.read())
    assert os.sched_getaffinity(0) <= online


# --- exec flags ----------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("3:3", (3, 3)), ("10:4", (10, 4)),
                                                 ("0:7", (0, 7))])
def test_parse_pass_fd(value: str, expected: tuple[int, int]) -> None:
    assert resolve.parse_pass_fd(value) == expected


@pytest.mark.parametrize("value", ["3", "a:b", "-1:3", "3:-1", "3:", ":3", "3:4:5", " 3:4",
                                   "３:4"])
def test_parse_pass_fd_errors(value: str) -> None:
    with pytest.raises(PyruncError) as error:
        resolve.parse_pass_fd(value)
    assert message(error).startswith(f"exec failed: invalid --pass-fd value \"{value}\"")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5s", 5.0), ("1m30s", 90.0), ("250ms", 0.25), ("2", 2.0), ("1.5", 1.5),
        ("1h", 3600.0), ("1.5h", 5400.0), ("100us", 1e-4), ("100\u00b5s", 1e-4),
        ("10ns", 1e-8), ("0", 0.0), (".5s", 0.5), ("1h2m3s4ms", 3723.004), ("2s2s", 4.0),
    ],
)
def test_parse_duration(value: str, seconds: float) -> None:
    assert resolve.parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "s", "5x", "-5s", "+5s", "5 s", "1..5s", ".", "5s5",
                                   "1e3", "inf", "nan", "5S", "1m 30s"])
def test_parse_duration_errors(value: str) -> None:
    with pytest.raises(PyruncError) as error:
        resolve.parse_duration(value)
    assert message(error).startswith("exec failed: invalid duration")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/", ((), "")),
        ("", ((), "")),
        ("foobar", ((), "foobar")),
        ("/a//b/", ((), "a/b")),
        ("a/../b", ((), "b")),
        ("memory:submem", (("memory",), "submem")),
        ("cpu,cpuacct:subcpu", (("cpu", "cpuacct"), "subcpu")),
        ("whaaat:/", (("whaaat",), "")),
    ],
)
def test_validate_cgroup_subpath(value: str, expected: tuple[tuple[str, ...], str]) -> None:
    assert resolve.validate_cgroup_subpath(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("..", "exec failed: .. is not a sub cgroup path"),  # runc's wording (exec.bats)
        ("/..", "exec failed: /.. is not a sub cgroup path"),
        ("a/../../b", "exec failed: a/../../b is not a sub cgroup path"),
        ("cpu:../x", "exec failed: ../x is not a sub cgroup path"),
        ("a:b:c", "exec failed: invalid --cgroup argument: a:b:c"),
        (":x", "exec failed: invalid --cgroup argument: :x (empty controller name)"),
        ("cpu,:x", "exec failed: invalid --cgroup argument: cpu,:x (empty controller name)"),
    ],
)
def test_validate_cgroup_subpath_errors(value: str, expected: str) -> None:
    with pytest.raises(PyruncError) as error:
        resolve.validate_cgroup_subpath(value)
    assert message(error) == expected


def test_validate_cgroup_args() -> None:
    assert resolve.validate_cgroup_args(["memory:submem", "cpu,cpuacct:subcpu"]) == [
        (("memory",), "submem"), (("cpu", "cpuacct"), "subcpu")]
    assert resolve.validate_cgroup_args(["foo"]) == [((), "foo")]
    with pytest.raises(ResolveError, match=r"foo \(missing <controller>: prefix\)"):
        resolve.validate_cgroup_args(["memory:a", "foo"])


@pytest.mark.parametrize(
    ("cwd", "expected"),
    [
        ("", "exec failed: Cwd property must not be empty"),  # runc
        ("rel", "exec failed: Cwd must be an absolute path"),  # runc
        ("/a\0b", 'exec failed: cwd "/a\\x00b" contains a NUL byte'),
    ],
)
def test_check_cwd(cwd: str, expected: str) -> None:
    with pytest.raises(PyruncError) as error:
        resolve.check_cwd(cwd)
    assert message(error) == expected
    resolve.check_cwd("/tmp/../etc")


# --- whole processes -----------------------------------------------------------


def exec_plan(process: dict[str, Any], warnings: list[str] | None = None, net_raw: bool = False,
              **flags: Any) -> Any:
    request = ExecRequest("ctr", **flags)
    sink = [] if warnings is None else warnings
    return resolve.resolve_exec(process, request, PASSWD, GROUP, net_raw, LAST_CAP,
                                warn=sink.append)


def test_resolve_exec_defaults() -> None:
    plan = exec_plan(runc_default_process(terminal=True, oomScoreAdj=123,
                                          user={"uid": 0, "gid": 0, "umask": 63}),
                     args=("echo", "hi"))
    assert plan.args == ["echo", "hi"]
    assert plan.cwd == "/"
    assert plan.env == [*runc_default_process()["env"], "HOME=/root"]
    assert (plan.uid, plan.gid, plan.additional_gids) == (0, 0, ())
    assert plan.capabilities.bounding == DEFAULT_SET
    assert plan.rlimits == (Rlimit(resource.RLIMIT_NOFILE, 1024, 1024),)
    assert plan.no_new_privileges is True
    assert plan.terminal is False  # runc: the spec's terminal is not the exec's
    assert plan.oom_score_adj == 123  # runc: an exec'd process showed the container's 123
    assert plan.umask is None  # runc: an exec'd process kept 0022 under umask 63
    assert plan.scheduler is None and plan.io_priority is None
    assert plan.cpu_affinity_initial is None and plan.console_size is None


def test_resolve_exec_flags() -> None:
    process = runc_default_process(user={"uid": 0, "gid": 0, "additionalGids": [5]},
                                   apparmorProfile="spec-profile",
                                   consoleSize={"height": 24, "width": 80})
    plan = exec_plan(process, args=("id",), cwd="/tmp", env=("A=1", "HOME=/h"), user="8:100",
                     additional_gids=("wheel", "5"), caps=("CAP_SYS_ADMIN",), tty=True,
                     process_label="label_t")
    assert (plan.uid, plan.gid, plan.additional_gids) == (8, 100, (5, 10))
    assert plan.cwd == "/tmp"
    assert plan.env[-2:] == ["A=1", "HOME=/h"]
    assert CAP_SYS_ADMIN in plan.capabilities.bounding
    assert plan.terminal is True
    assert plan.console_size == (24, 80)
    assert plan.apparmor_profile == "spec-profile"
    assert plan.selinux_label == "label_t"
    assert exec_plan(process, args=("id",), apparmor="other").apparmor_profile == "other"


def test_resolve_exec_named_user_brings_membership_groups() -> None:
    plan = exec_plan(runc_default_process(), args=("id",), user="nobody",
                     additional_gids=("100", "7"))
    assert (plan.uid, plan.gid, plan.additional_gids) == (65534, 65534, (100, 50, 7))
    assert "HOME=/home" in plan.env


def test_resolve_exec_no_new_privs_only_turns_on() -> None:
    assert exec_plan(runc_default_process(noNewPrivileges=False), args=("x",),
                     no_new_privs=True).no_new_privileges
    assert exec_plan(runc_default_process(), args=("x",)).no_new_privileges


def test_resolve_exec_scheduling_extensions() -> None:
    process = runc_default_process(scheduler={"policy": "SCHED_BATCH", "nice": 3},
                                   ioPriority={"class": "IOPRIO_CLASS_IDLE", "priority": 0},
                                   execCPUAffinity={"initial": "0-1", "final": "1"})
    plan = exec_plan(process, args=("x",))
    assert plan.scheduler == Scheduler(os.SCHED_BATCH, 3, 0)
    assert plan.io_priority == IoPriority(3, 0)
    assert (plan.cpu_affinity_initial, plan.cpu_affinity_final) == ({0, 1}, {1})


@pytest.mark.parametrize(
    ("process", "flags", "expected"),
    [
        (runc_default_process(), {}, "exec failed: process args cannot be empty"),  # runc
        (runc_default_process(), {"args": ("x",), "cwd": "rel"},
         "exec failed: Cwd must be an absolute path"),
        (runc_default_process(), {"args": ("x",), "env": ("NOEQ",)},
         'exec failed: invalid environment variable: "NOEQ"'),
        (runc_default_process(), {"args": ("x",), "user": "nobodyx"},
         "exec failed: unable to find user nobodyx: no matching entries in passwd file"),
        (runc_default_process(), {"args": ("x",), "additional_gids": ("-3",)},
         "exec failed: additional-gids must be a positive number -3"),
        (runc_default_process(rlimits=[{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]),
         {"args": ("x",)}, "exec failed: wrong rlimit value: RLIMIT_FOO"),
        (runc_default_process(), {"args": ("a\0b",)},
         'exec failed: argument "a\\x00b" contains a NUL byte'),
    ],
)
def test_resolve_exec_errors(process: dict[str, Any], flags: dict[str, Any],
                             expected: str) -> None:
    with pytest.raises(PyruncError) as error:
        exec_plan(process, **flags)
    assert message(error) == expected


def test_resolve_exec_reports_warnings() -> None:
    warnings: list[str] = []
    exec_plan(runc_default_process(), warnings, args=("x",), caps=("CAP_FOO", "CAP_NET_RAW"))
    assert warnings == ["ignoring unknown or unavailable capabilities: [CAP_FOO]",
                        "ignoring --cap CAP_NET_RAW: raw sockets need the global --net-raw"]


def test_resolve_exec_without_passwd_file() -> None:
    request = ExecRequest("ctr", args=("x",), user="1000")
    plan = resolve.resolve_exec(runc_default_process(), request, None, None, False, LAST_CAP,
                                warn=ignore)
    assert (plan.uid, plan.gid) == (1000, 0)
    assert "HOME=/" in plan.env


def file_plan(process: dict[str, Any], container: dict[str, Any] | None = None,
              warnings: list[str] | None = None, **flags: Any) -> Any:
    sink = [] if warnings is None else warnings
    return resolve.resolve_process_file(
        process, container or runc_default_process(), PASSWD, GROUP, False, LAST_CAP,
        ExecRequest("ctr", **flags), warn=sink.append)


def test_process_file_replaces_the_process() -> None:
    # runc -p {"args":[...],"cwd":"/tmp","env":["X=1"],"user":{"uid":8,"gid":8}}:
    # /tmp, uid=8 gid=8, env X=1 + HOME=/var/spool/mail, CapBnd 0x20000420, NoNewPrivs 0.
    process = {"args": ["/bin/sh"], "cwd": "/tmp", "env": ["X=1"], "user": {"uid": 8, "gid": 8}}
    container = runc_default_process(oomScoreAdj=123, apparmorProfile="ctr-profile",
                                     scheduler={"policy": "SCHED_BATCH"})
    warnings: list[str] = []
    plan = file_plan(process, container, warnings, cwd="/etc", env=("Y=2",), user="1:1",
                     caps=("CAP_SYS_ADMIN",), no_new_privs=True, additional_gids=("10",),
                     tty=True)
    assert plan.cwd == "/tmp"
    assert (plan.uid, plan.gid, plan.additional_gids) == (8, 8, ())
    assert plan.env == ["X=1", "HOME=/var/spool/mail"]
    assert plan.capabilities.bounding == DEFAULT_SET
    assert plan.no_new_privileges is False
    assert plan.rlimits == ()  # runc: the exec'd process kept the runtime's own limit
    assert plan.terminal is False
    assert plan.oom_score_adj == 123
    assert plan.apparmor_profile == "ctr-profile"
    assert plan.scheduler == Scheduler(os.SCHED_BATCH)
    assert warnings == ["ignoring --cwd, --env, --user, --additional-gids, --cap, "
                        "--no-new-privs: --process replaces the whole process"]


def test_process_file_capabilities() -> None:
    # runc: {"capabilities": {"bounding": ["CAP_KILL"]}} -> CapBnd 0x20, and {} -> all zero.
    base = {"args": ["x"], "cwd": "/"}
    plan = file_plan({**base, "capabilities": {"bounding": ["CAP_KILL"]}})
    assert plan.capabilities == CapabilitySets(bounding=frozenset({CAP_KILL}))
    assert file_plan({**base, "capabilities": {}}).capabilities == CapabilitySets()
    assert file_plan({**base, "capabilities": None}).capabilities.bounding == DEFAULT_SET
    raw = file_plan({**base, "capabilities": {"bounding": ["CAP_NET_RAW"]}})
    assert raw.capabilities.bounding == frozenset()


def test_process_file_home_and_terminal() -> None:
    # runc: uid 12345 (not in passwd) with HOME= -> HOME=/
    plan = file_plan({"args": ["x"], "cwd": "/", "env": ["HOME="], "terminal": True,
                      "user": {"uid": 12345, "gid": 0, "additionalGids": [5, 5, 6]}})
    assert plan.env == ["HOME=/"]
    assert plan.terminal is True
    assert plan.additional_gids == (5, 6)  # runc: groups=5(tty),6(disk)


@pytest.mark.parametrize(
    ("process", "expected"),
    [
        ({"args": [], "cwd": "rel"}, "exec failed: Cwd must be an absolute path"),  # runc
        ({"args": [], "cwd": ""}, "exec failed: Cwd property must not be empty"),  # runc
        ({"args": [], "cwd": "/"}, "exec failed: args must not be empty"),  # runc
        ({"args": ["true"], "cwd": "/", "rlimits": [{"type": "RLIMIT_FOO", "hard": 1,
                                                    "soft": 1}]},
         "exec failed: wrong rlimit value: RLIMIT_FOO"),  # runc
    ],
)
def test_process_file_errors(process: dict[str, Any], expected: str) -> None:
    with pytest.raises(PyruncError) as error:
        file_plan(process)
    assert message(error) == expected


def test_container_process_for_init() -> None:
    process = runc_default_process(terminal=True, user={"uid": 8, "gid": 8, "umask": 63},
                                   execCPUAffinity={"initial": "0", "final": "0"})
    plan = resolve.resolve_container_process(process, PASSWD, GROUP, False, LAST_CAP,
                                             warn=ignore)
    assert (plan.uid, plan.gid, plan.umask, plan.terminal) == (8, 8, 63, True)
    assert plan.args == ["sleep", "1000"]
    assert plan.env[-1] == "HOME=/var/spool/mail"
    assert plan.cpu_affinity_initial is None and plan.cpu_affinity_final is None


def test_container_process_errors_are_creates_own() -> None:
    with pytest.raises(PyruncError) as error:
        resolve.resolve_container_process(runc_default_process(cwd="rel"), PASSWD, GROUP,
                                          False, LAST_CAP, warn=ignore)
    assert error.value.exit_code == 1
    assert str(error.value) == "Cwd must be an absolute path"


def test_warnings_go_to_the_log_by_default(capfd: pytest.CaptureFixture[str]) -> None:
    from runpy_exec import log

    log.reset()
    exec_plan_request = ExecRequest("ctr", args=("x",), caps=("CAP_FOO",))
    resolve.resolve_exec(runc_default_process(), exec_plan_request, PASSWD, GROUP, False,
                         LAST_CAP)
    assert "ignoring unknown or unavailable capabilities: [CAP_FOO]" in capfd.readouterr().err


def test_import_stays_cheap() -> None:
    """The exec hot path: no pydantic, typer, json or dataclasses pulled in by resolve."""
    code = ("import sys; import runpy_exec.resolve; "
            "print(' '.join(m for m in ('dataclasses', 'pydantic', 'typer', 'json', "
            "'runpy_exec.oci') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
