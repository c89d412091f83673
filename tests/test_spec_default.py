"""``pyrunc spec`` must write what ``runc spec`` writes.

runc's integration suite patches this file with jq, so the comparison is
byte for byte, not just semantic.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runpy_exec import oci
from runpy_exec.errors import PyruncError
from runpy_exec.spec_default import default_spec, spec_text, write_spec

RUNC = shutil.which("runc")
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")
NOBODY = 65534


def runc_spec(directory: Path, rootless: bool) -> bytes:
    assert RUNC is not None
    args = [RUNC, "spec", *(["--rootless"] if rootless else [])]
    subprocess.run(args, cwd=directory, check=True, capture_output=True)
    return (directory / "config.json").read_bytes()


@needs_runc
@pytest.mark.parametrize("rootless", [False, True])
def test_spec_matches_runc_field_by_field(tmp_path: Path, rootless: bool) -> None:
    expected: dict[str, Any] = json.loads(runc_spec(tmp_path, rootless))
    ours = default_spec(rootless)
    assert list(ours) == list(expected)
    for key in expected:
        assert ours[key] == expected[key], key


@needs_runc
@pytest.mark.parametrize("rootless", [False, True])
def test_written_file_is_byte_identical_to_runc(tmp_path: Path, rootless: bool) -> None:
    (tmp_path / "runc").mkdir()
    (tmp_path / "ours").mkdir()
    expected = runc_spec(tmp_path / "runc", rootless)
    write_spec(str(tmp_path / "ours"), rootless)
    assert (tmp_path / "ours" / "config.json").read_bytes() == expected


@needs_runc
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_rootless_spec_maps_the_calling_user_like_runc(tmp_path: Path) -> None:
    for name in ("runc", "ours"):
        (tmp_path / name).mkdir()
        os.chown(tmp_path / name, NOBODY, NOBODY)
    as_nobody: dict[str, Any] = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    assert RUNC is not None
    subprocess.run([RUNC, "spec", "--rootless"], cwd=tmp_path / "runc", check=True, **as_nobody)
    become_nobody_then_write = (
        "import os\n"
        "from runpy_exec.spec_default import write_spec\n"
        f"os.setegid({NOBODY}); os.seteuid({NOBODY})\n"
        "write_spec('.', True)\n"
    )
    subprocess.run(
        [sys.executable, "-c", become_nobody_then_write], cwd=tmp_path / "ours", check=True
    )
    ours = (tmp_path / "ours" / "config.json").read_bytes()
    assert ours == (tmp_path / "runc" / "config.json").read_bytes()
    assert json.loads(ours)["linux"]["uidMappings"][0]["hostID"] == NOBODY


@pytest.mark.parametrize("rootless", [False, True])
def test_load_spec_accepts_the_default_spec_unchanged(tmp_path: Path, rootless: bool) -> None:
    write_spec(str(tmp_path), rootless)
    assert oci.load_spec(str(tmp_path / "config.json")) == default_spec(rootless)


def test_text_layout_is_tab_indented_without_trailing_newline() -> None:
    text = spec_text(default_spec())
    assert text.startswith('{\n\t"ociVersion": "1.0.2-dev",\n\t"process": {\n\t\t"terminal": true,')
    assert text.endswith("\n\t}\n}")


def test_rootless_differences() -> None:
    plain, rootless = default_spec(False), default_spec(True)
    assert [ns["type"] for ns in rootless["linux"]["namespaces"]] == [
        "pid",
        "ipc",
        "uts",
        "mount",
        "user",
    ]
    assert "resources" in plain["linux"] and "resources" not in rootless["linux"]
    assert "gid=5" in plain["mounts"][2]["options"]
    assert "gid=5" not in rootless["mounts"][2]["options"]
    assert rootless["mounts"][5] == {
        "destination": "/sys",
        "type": "none",
        "source": "/sys",
        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
    }


def test_default_spec_is_a_fresh_copy_each_time() -> None:
    first = default_spec()
    first["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    first["linux"]["maskedPaths"].clear()
    assert default_spec() == json.loads(spec_text(default_spec()))
    assert "CAP_SYS_ADMIN" not in default_spec()["process"]["capabilities"]["bounding"]
    assert default_spec()["linux"]["maskedPaths"]


def test_existing_config_is_refused_and_kept(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("mine")
    with pytest.raises(PyruncError) as caught:
        write_spec(str(tmp_path), False)
    assert str(caught.value) == "File config.json exists. Remove it first"
    assert caught.value.exit_code == 1
    assert config.read_text() == "mine"


def test_file_mode_honours_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_spec(str(tmp_path), False)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "config.json").stat().st_mode) == 0o640


def test_missing_bundle_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(PyruncError) as caught:
        write_spec(str(missing), False)
    assert str(caught.value) == f"bundle {missing}: no such file or directory"


def test_bundle_that_is_a_file_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "file"
    plain.write_text("")
    with pytest.raises(PyruncError, match="not a directory"):
        write_spec(str(plain), False)
