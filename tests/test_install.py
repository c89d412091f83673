"""pyrunc as a plain ``pip install`` leaves it, not as scripts/setup.sh does.

setup.sh installs the checkout in editable mode, so the rest of the suite never
runs the command pip writes from the wheel, nor the package files the wheel
carries.  Both matter: the ``pyrunc`` script is our own launcher (pip's
console-script wrapper would import ``re`` on every exec probe) and pip must
keep it that way when it rewrites its ``#!python`` line; and ``exec -p``
validates against the JSON schemas shipped as package data.

The install is as a user's: a new virtualenv from the same interpreter, and
``pip install`` of the project's files, built in pip's isolated build
environment (setuptools comes from the package index, as setup.sh's install
gets it).  Only the runtime dependencies are lent from the project's virtualenv
by a .pth line, so that the test downloads nothing more; the new
virtualenv's own site-packages comes first on sys.path, so every pyrunc module
is the installed one (checked below).
"""

from __future__ import annotations

import binascii
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROJECT, Runtime, imported_modules, pyrunc_binary

pytestmark = pytest.mark.root

# What a developer's checkout holds that is not the project's.
_NOT_SHIPPED = shutil.ignore_patterns(".git", ".venv", "build", "demo", "__pycache__",
                                      "*.egg-info", ".mypy_cache", ".ruff_cache",
                                      ".pytest_cache")
# Never imported by a fast-path command (README "Speed"; tests/test_fastargs.py
# holds the checkout to it too).
_SLOW_MODULES = {"re", "typing", "typer", "click", "pydantic", "json", "subprocess", "enum"}


class Install:
    def __init__(self, venv: Path) -> None:
        self.venv = venv
        self.python = venv / "bin" / "python"
        self.pyrunc = venv / "bin" / "pyrunc"
        self.package = Path(subprocess.run(
            [str(self.python), "-c", "import runpy_exec, os; "
             "print(os.path.dirname(os.path.abspath(runpy_exec.__file__)))"],
            check=True, capture_output=True, text=True, cwd="/").stdout.strip())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    base = tmp_path_factory.mktemp("pip-install")
    source = base / "src"
    shutil.copytree(PROJECT, source, ignore=_NOT_SHIPPED, symlinks=True)
    venv = base / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)],
                   check=True, capture_output=True)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps",
                           "--disable-pip-version-check", "-q", str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}{done.stderr}"
    new_site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    lent = sysconfig.get_paths()["purelib"]  # this (the project's) virtualenv's
    (new_site / "site-packages" / "lent-dependencies.pth").write_text(lent + "\n")
    install = Install(venv)
    yield install
    # features keeps a cache entry per install directory: none for one that is gone.
    from runpy_exec import features

    entry = f"{binascii.crc32(str(install.package).encode()):08x}.json"
    Path(features.CACHE_DIR, entry).unlink(missing_ok=True)


def test_pip_installs_our_launcher_with_its_own_interpreter_line(installed: Install) -> None:
    script = installed.pyrunc.read_bytes()
    first, _, body = script.partition(b"\n")
    ours = (PROJECT / "scripts" / "pyrunc").read_bytes().partition(b"\n")[2]
    assert first == b"#!" + bytes(installed.python), first
    assert body == ours  # not pip's console-script wrapper


def test_the_installed_package_is_the_one_that_runs(installed: Install) -> None:
    assert installed.package.is_relative_to(installed.venv), installed.package
    assert (installed.package / "schemas" / "process.schema.json").is_file()


def _imported(command: list[str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``command`` (a script and its arguments) under -X importtime."""
    interpreter = Path(command[0]).read_text().partition("\n")[0][2:]
    result = subprocess.run([interpreter, "-X", "importtime", *command], capture_output=True,
                            text=True, timeout=60, cwd="/")
    return result, imported_modules(result.stderr)


def test_engine_commands_load_the_same_modules_as_the_checkout(installed: Install,
                                                                tmp_path: Path) -> None:
    root = str(tmp_path / "root")
    # The first features call of an install probes the host and keeps the answer.
    for pyrunc in (str(installed.pyrunc), pyrunc_binary()):
        subprocess.run([pyrunc, "features"], check=True, capture_output=True)
    for args in (["features"], ["--root", root, "list"], ["--root", root, "state", "nosuch"]):
        from_install, install_modules = _imported([str(installed.pyrunc), *args])
        from_checkout, checkout_modules = _imported([pyrunc_binary(), *args])
        assert from_install.returncode == from_checkout.returncode, (args, from_install.stderr)
        ours = {name for name in install_modules if name.startswith("runpy_exec")}
        assert ours, args
        assert ours == {name for name in checkout_modules if name.startswith("runpy_exec")}
        assert not install_modules & _SLOW_MODULES, (args, install_modules & _SLOW_MODULES)
    features_out, _ = _imported([str(installed.pyrunc), "features"])
    document = json.loads(features_out.stdout)
    assert document["ociVersionMax"] and document["linux"]["namespaces"]


def test_exec_with_a_process_file_runs_from_the_install(installed: Install, rt: Runtime,
                                                        ctr: str, tmp_path: Path) -> None:
    """The install's exec validates process.json against the schemas the wheel carried."""
    process = {"args": ["sh", "-c", "echo from-pip $(id -u)"], "cwd": "/",
               "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin:/usr/bin"]}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    installed_rt = Runtime(str(installed.pyrunc), rt.root)
    done = installed_rt("exec", "-p", str(path), ctr)
    assert (done.returncode, done.stdout, done.stderr) == (0, "from-pip 0\n", "")
    path.write_text(json.dumps({**process, "args": "sh"}))  # a string, not a list
    bad = installed_rt("exec", "-p", str(path), ctr)
    assert bad.returncode == 255 and "args" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_typer_command_line_runs_from_the_install(installed: Install) -> None:
    done = subprocess.run([str(installed.pyrunc), "exec", "--help"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "100"})
    assert done.returncode == 0 and "--process" in done.stdout, done.stderr
