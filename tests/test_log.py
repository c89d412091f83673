"""Log records in the two shapes runc's callers parse, and where they go."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runpy_exec import log
from runpy_exec.errors import PyruncError
from runpy_exec.requests import GlobalOptions

EPOCH = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.fixture(autouse=True)
def _clean_log() -> Iterator[None]:
    log.reset()
    yield
    log.reset()


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC0")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_text_record_quotes_like_logrus(utc: None) -> None:
    assert log.format_record("error", "plain-word_1.2/x@y^z+", EPOCH, json_format=False) == (
        'time="2023-11-14T22:13:20Z" level=error msg=plain-word_1.2/x@y^z+\n'
    )
    assert log.format_record("debug", 'say "hi"\\\n\tnow\x01\x7f é', EPOCH, json_format=False) == (
        'time="2023-11-14T22:13:20Z" level=debug msg="say \\"hi\\"\\\\\\n\\tnow\\x01\\x7f é"\n'
    )
    assert log.format_record("warning", "", EPOCH, json_format=False).endswith(" msg=\n")


def test_json_record_has_logrus_keys_in_order(utc: None) -> None:
    line = log.format_record("error", "exec failed: nope", EPOCH, json_format=True)
    assert line == '{"level":"error","msg":"exec failed: nope","time":"2023-11-14T22:13:20Z"}\n'


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_json_record_round_trips_any_message(msg: str) -> None:
    line = log.format_record("error", msg, EPOCH, json_format=True)
    assert line.endswith("}\n") and line.count("\n") == 1
    assert json.loads(line)["msg"] == msg


@pytest.mark.parametrize(
    ("tz", "stamp"),
    [("UTC0", "2023-11-14T22:13:20Z"), ("IST-5:30", "2023-11-15T03:43:20+05:30"),
     ("EST5", "2023-11-14T17:13:20-05:00")],
)  # fmt: skip
def test_time_is_local_rfc3339(tz: str, stamp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        assert f'"time":"{stamp}"' in log.format_record("error", "m", EPOCH, json_format=True)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_configure_creates_the_log_file_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text("earlier\n")
    log.configure(GlobalOptions(log=str(path)))
    assert path.exists()
    log.warning("w")
    log.reset()
    lines = path.read_text().splitlines()
    assert lines[0] == "earlier"
    assert re.fullmatch(r'time="[^"]+" level=warning msg=w', lines[1])


def test_configure_reports_an_unusable_path(tmp_path: Path) -> None:
    with pytest.raises(PyruncError, match="cannot open log file .*: No such file or directory"):
        log.configure(GlobalOptions(log=str(tmp_path / "missing" / "log")))


def test_log_file_is_not_inherited_by_exec(tmp_path: Path) -> None:
    log.configure(GlobalOptions(log=str(tmp_path / "log")))
    assert log._fd is not None
    assert not os.get_inheritable(log._fd)


def test_error_goes_to_stderr_plainly_and_to_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log"
    log.configure(GlobalOptions(log=str(path), log_format="json"))
    log.error("it broke\non two lines")
    assert capsys.readouterr() == ("", "it broke on two lines\n")
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert (record["level"], record["msg"]) == ("error", "it broke\non two lines")


def test_without_a_log_file_error_is_only_the_plain_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log.configure(GlobalOptions())
    log.error("no such container")
    assert capsys.readouterr() == ("", "no such container\n")


def test_warnings_and_debug_go_to_stderr_without_a_log_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log.configure(GlobalOptions(debug=True))
    log.warning("careful")
    log.debug("detail")
    err = capsys.readouterr().err.splitlines()
    assert [re.sub(r'^time="[^"]+" ', "", line) for line in err] == [
        "level=warning msg=careful",
        "level=debug msg=detail",
    ]


def test_debug_records_only_with_debug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "log"
    log.configure(GlobalOptions(log=str(path), log_format="json"))
    log.debug("hidden")
    log.configure(GlobalOptions(log=str(path), log_format="json", debug=True))
    log.debug("shown")
    assert capsys.readouterr() == ("", "")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["level"], r["msg"]) for r in records] == [("debug", "shown")]


def test_reset_closes_the_file_and_forgets_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log"
    log.configure(GlobalOptions(log=str(path), debug=True))
    log.reset()
    log.error("after reset")
    log.debug("after reset")
    assert path.read_text() == ""
    assert capsys.readouterr().err == "after reset\n"
