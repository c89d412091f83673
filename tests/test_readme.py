"""README's two opening commands are promises; CI runs the second one verbatim."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (PROJECT / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def test_ci_runs_the_test_command_readme_shows() -> None:
    demo, tests = _readme_commands()
    ci_lines = (PROJECT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines, f".ci/run must run README's test command: {tests!r}"


def test_readme_commands_need_no_sudo() -> None:
    """A fresh Debian 12 machine used as root has no sudo: the commands run as they are."""
    for command in _readme_commands():
        assert "sudo" not in command.split(), command


def test_readme_commands_name_files_that_exist() -> None:
    for command in _readme_commands():
        for word in command.split():
            if word.startswith("./"):
                assert (PROJECT / word).exists(), f"README names {word}, which does not exist"
