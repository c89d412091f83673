"""Fuzzing ``exec`` and ``create`` with generated bad input, against a real container.

Hypothesis generates invalid process.json files, config.json files and
command lines: a wrong JSON type at every field, numbers beyond any range
(negative, above 2^64, 5000 digits), an escaped NUL in an argument, raw NUL
bytes and non-UTF-8 bytes, truncated files, nesting 100 000 deep; beside
them the files that are no files (a directory, a FIFO, /dev/zero, a symlink
loop, 10 MB of JSON).  Every one must give a non-zero exit, no "Traceback"
and no "internal error", within a timeout (a timeout counts as a hang);
afterwards nothing is left in the container's cgroup and ``state`` still
works.  Runs are derandomized (a fixed seed) so CI sees the same cases each
time; ``pytest -s`` prints the counts.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Runtime
from tests.exec_support import cgroup_pids

pytestmark = pytest.mark.root

Path_ = tuple[str | int, ...]

BASE_PROCESS: dict[str, Any] = {
    "args": ["true"], "cwd": "/", "env": ["PATH=/bin:/usr/bin"], "terminal": False,
    "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
    "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"],
                     "permitted": ["CAP_CHOWN"]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}],
    "consoleSize": {"height": 10, "width": 10}, "noNewPrivileges": True, "oomScoreAdj": 0,
}

# Every field of BASE_PROCESS, with its JSON type.
PROCESS_FIELDS: list[tuple[Path_, type]] = [
    (("args",), list), (("args", 0), str), (("cwd",), str), (("env",), list),
    (("env", 0), str), (("terminal",), bool), (("user",), dict), (("user", "uid"), int),
    (("user", "gid"), int), (("user", "additionalGids"), list),
    (("user", "additionalGids", 0), int), (("capabilities",), dict),
    (("capabilities", "bounding"), list), (("capabilities", "bounding", 0), str),
    (("capabilities", "effective"), list), (("rlimits",), list), (("rlimits", 0), dict),
    (("rlimits", 0, "type"), str), (("rlimits", 0, "soft"), int),
    (("rlimits", 0, "hard"), int), (("consoleSize",), dict), (("consoleSize", "height"), int),
    (("noNewPrivileges",), bool), (("oomScoreAdj",), int),
]

# Fields of the test bundle's config.json (tests/conftest.py), with their JSON type.
CONFIG_FIELDS: list[tuple[Path_, type]] = [
    (("ociVersion",), str), (("root",), dict), (("root", "path"), str),
    (("root", "readonly"), bool), (("process",), dict), (("process", "args"), list),
    (("process", "args", 0), str), (("process", "cwd"), str), (("process", "env"), list),
    (("process", "user"), dict), (("process", "user", "uid"), int),
    (("process", "rlimits"), list), (("process", "capabilities"), dict),
    (("hostname",), str), (("mounts",), list), (("mounts", 0), dict),
    (("mounts", 0, "destination"), str), (("mounts", 0, "options"), list),
    (("linux",), dict), (("linux", "namespaces"), list), (("linux", "namespaces", 0), dict),
    (("linux", "namespaces", 0, "type"), str), (("linux", "maskedPaths"), list),
    (("linux", "readonlyPaths"), list),
]

TIMEOUT = 30
DEEP = 100_000


def huge_ints() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(min_value=2**64, max_value=2**200),
                     st.integers(min_value=-(2**200), max_value=-(2**63) - 1))


def values_not_of(kind: type) -> st.SearchStrategy[Any]:
    """JSON values that are never of ``kind`` (null is left out: optional fields take it)."""
    scalars: list[st.SearchStrategy[Any]] = [
        st.booleans(), st.integers(), huge_ints(), st.floats(allow_nan=False),
        st.text(max_size=20), st.just([]), st.lists(st.integers(), max_size=3),
        st.just({}), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    ]
    wrong = st.one_of(*scalars).filter(
        lambda v: not (isinstance(v, kind) and (kind is not int or not isinstance(v, bool)))
        and not (kind is float and isinstance(v, int)))
    if kind is int:
        return st.one_of(wrong, huge_ints())
    return wrong


def set_at(document: Any, path: Path_, value: Any) -> None:
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@st.composite
def broken_documents(draw: st.DrawFn, base: dict[str, Any],
                     fields: list[tuple[Path_, type]], nul_path: Path_) -> bytes:
    """One invalid JSON document, as the bytes of a file."""
    how = draw(st.sampled_from(["wrong type", "wrong type", "wrong type", "huge digits",
                                "nested", "escaped NUL", "raw bytes", "truncated"]))
    document = copy.deepcopy(base)
    if how in ("wrong type", "huge digits", "nested"):
        path, kind = draw(st.sampled_from(fields))
        if how == "wrong type":
            set_at(document, path, draw(values_not_of(kind)))
            return json.dumps(document).encode()
        marker = -987654321
        set_at(document, path, marker)
        text = json.dumps(document)
        filler = "[" * DEEP if how == "nested" else "9" * 5000
        return text.replace(str(marker), filler).encode()
    if how == "escaped NUL":
        set_at(document, nul_path, draw(st.text(max_size=5)) + "\x00" + draw(st.text(max_size=5)))
        return json.dumps(document).encode()
    encoded = json.dumps(document).encode()
    position = draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    if how == "truncated":
        return encoded[:position]
    return encoded[:position] + draw(st.sampled_from([b"\x00", b"\xff", b"\xc3\x28"])) \
        + encoded[position:]


def special_files(directory: Path) -> Iterator[tuple[str, str]]:
    """(name, path) of files that are no small regular file."""
    fifo = directory / "fifo"
    os.mkfifo(fifo)
    (directory / "dir").mkdir()
    loop = directory / "loop"
    loop.symlink_to(loop)
    ten = directory / "ten-megabytes.json"
    ten.write_text("[" + "1," * (5 * 1024 * 1024) + "]")
    yield from [("fifo", str(fifo)), ("directory", str(directory / "dir")),
                ("/dev/zero", "/dev/zero"), ("/dev/urandom", "/dev/urandom"),
                ("symlink loop", str(loop)), ("10 MB", str(ten))]


class Tally:
    """What the cases did; failures are collected, not raised, so hypothesis does
    not spend CI's minutes shrinking them: the test fails at the end with all of them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.failures: list[str] = []

    def run(self, argv: list[str], want_status: int, what: str) -> None:
        self.counts["cases"] += 1
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.counts["hangs"] += 1
            self.failures.append(f"hang: {what}")
            return
        err = done.stderr.decode(errors="replace")
        if "Traceback" in err or "internal error" in err:
            self.counts["tracebacks"] += 1
            self.failures.append(f"traceback: {what}: {err[-300:]}")
        elif done.returncode == 0:
            self.counts["accepted"] += 1
            self.failures.append(f"accepted: {what}")
        elif done.returncode != want_status or len(err.strip().splitlines()) != 1:
            self.failures.append(f"exit {done.returncode} / not one line: {what}: {err[:300]}")

    def report(self, name: str) -> None:
        print(f"\nfuzz {name}: {self.counts['cases']} cases, {self.counts['tracebacks']} "
              f"tracebacks, {self.counts['hangs']} hangs, {self.counts['accepted']} accepted")
        assert self.failures == [], self.failures[:10]


def fuzz_settings(max_examples: int) -> settings:
    """A fixed seed (derandomize) and no example database: CI runs the same cases each time."""
    return settings(derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), max_examples=max_examples)


def test_fuzz_exec_process_json(rt: Runtime, ctr: str, init: int, tmp_path: Path) -> None:
    base_file = tmp_path / "base.json"
    base_file.write_text(json.dumps(BASE_PROCESS))
    exec_ = [rt.binary, "--root", str(rt.root), "exec"]
    ok = subprocess.run([*exec_, "-p", str(base_file), ctr], capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr  # the cases below fail for their fault, not the base's
    tally = Tally()
    path = tmp_path / "process.json"

    @fuzz_settings(80)
    @given(broken_documents(BASE_PROCESS, PROCESS_FIELDS, ("args", 0)))
    def case(document: bytes) -> None:
        path.write_bytes(document)
        tally.run([*exec_, "-p", str(path), ctr], 255, repr(document[:200]))

    case()
    (tmp_path / "special").mkdir()
    for name, special in special_files(tmp_path / "special"):
        tally.run([*exec_, "-p", special, ctr], 255, name)
    tally.report("exec -p")
    assert cgroup_pids(init) == {init}
    assert rt.state(ctr)["status"] == "running"


def test_fuzz_create_config_json(rt: Runtime, ctr: str, init: int, bundle: Path,
                                 tmp_path: Path) -> None:
    base = json.loads((bundle / "config.json").read_text())
    create = [rt.binary, "--root", str(rt.root), "create", "--bundle", str(bundle)]
    tally = Tally()
    container_id = f"fuzz{os.getpid()}"
    left: list[str] = []

    @fuzz_settings(40)
    @given(broken_documents(base, CONFIG_FIELDS, ("process", "args", 0)))
    def case(document: bytes) -> None:
        (bundle / "config.json").write_bytes(document)
        tally.run([*create, container_id], 1, repr(document[:200]))
        if (rt.root / container_id).exists():
            left.append(repr(document[:200]))
            rt("delete", "--force", container_id)

    case()
    (tmp_path / "special").mkdir()
    for name, special in special_files(tmp_path / "special"):
        (bundle / "config.json").unlink()
        (bundle / "config.json").symlink_to(special)
        tally.run([*create, container_id], 1, name)
    tally.report("create config.json")
    assert left == []
    assert cgroup_pids(init) == {init}
    assert rt.state(ctr)["status"] == "running"


def fd_numbers() -> st.SearchStrategy[str]:
    return st.one_of(huge_ints().map(str), st.integers(max_value=-1).map(str),
                     st.integers(min_value=2**31, max_value=2**80).map(str),
                     st.text(alphabet="abcxyz+-.", min_size=1, max_size=6))


def command_lines() -> st.SearchStrategy[list[str]]:
    """exec flags with values no kernel or Go type takes."""
    return st.one_of(
        fd_numbers().map(lambda v: ["--preserve-fds", v]),
        fd_numbers().map(lambda v: ["--exec-fd", v]),
        st.tuples(fd_numbers(), st.integers(0, 10).map(str)).map(
            lambda p: ["--pass-fd", f"{p[0]}:{p[1]}"]),
        st.tuples(st.integers(0, 2).map(str), fd_numbers()).map(
            lambda p: ["--pass-fd", f"{p[0]}:{p[1]}"]),
        st.tuples(st.integers(min_value=10**10), st.sampled_from(["h", "m", "s", ""])).map(
            lambda p: ["--timeout", f"{p[0]}{p[1]}"]),
        st.text(alphabet="-xyz.", min_size=1, max_size=8).filter(
            lambda v: not v.startswith("-") or len(v) > 1).map(lambda v: ["--timeout", v + "q"]),
        st.integers(min_value=2**32).map(lambda v: ["-u", str(v)]),
        st.integers(max_value=-1).map(lambda v: ["-u", f"0:{v}"]),
        st.integers(min_value=2**32).map(lambda v: ["-g", str(v)]),
        st.text(alphabet="ABCXYZ_", min_size=1, max_size=10).map(
            lambda v: ["--cap", f"CAP_FUZZ_{v}"]),
        st.text(alphabet="abc/", max_size=10).map(lambda v: ["--cgroup", f"../{v}"]),
    )


def test_fuzz_exec_command_lines(rt: Runtime, ctr: str, init: int) -> None:
    tally = Tally()
    exec_ = [rt.binary, "--root", str(rt.root), "exec"]

    @fuzz_settings(70)
    @given(st.lists(command_lines(), min_size=1, max_size=3), st.booleans())
    def case(flag_groups: list[list[str]], detach: bool) -> None:
        flags = [arg for group in flag_groups for arg in group]
        if detach:
            flags.insert(0, "-d")
        tally.run([*exec_, *flags, ctr, "sleep", "7"], 255, " ".join(flags)[:200])

    case()
    tally.report("exec command lines")
    assert cgroup_pids(init) == {init}
    assert rt.state(ctr)["status"] == "running"
