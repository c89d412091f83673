"""The checked-in JSON Schemas must be exactly what the models generate.

exec validates against the packaged copy without importing the models, so a
model edit without regeneration would make exec and create disagree silently.
"""

from __future__ import annotations

import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from runpy_exec import oci, validate
from runpy_exec.validate import SchemaValidator

REPO = Path(__file__).resolve().parent.parent
COPIES = {
    "schemas/": oci.TOP_LEVEL_SCHEMA_DIR,
    "runpy_exec/schemas/": Path(validate.PACKAGE_SCHEMA_DIR),
}
GENERATED = oci.schema_texts()


@pytest.mark.parametrize("copy", sorted(COPIES))
@pytest.mark.parametrize("name", sorted(GENERATED))
def test_schema_file_is_current(copy: str, name: str) -> None:
    path = COPIES[copy] / name
    on_disk = path.read_text(encoding="utf-8") if path.exists() else None
    assert on_disk == GENERATED[name], (
        f"{copy}{name} is stale or missing; regenerate with `{oci.REGENERATE_COMMAND}`"
    )


def test_copies_are_the_three_schemas_and_nothing_else() -> None:
    for directory in COPIES.values():
        assert sorted(p.name for p in directory.glob("*.json")) == sorted(GENERATED)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_fast_validator_supports_every_keyword_the_schemas_use(name: str) -> None:
    SchemaValidator(json.loads(GENERATED[name]))


def test_write_schemas_writes_the_generated_texts(tmp_path: Path) -> None:
    oci.write_schemas(tmp_path / "out")
    written = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir()}
    assert written == GENERATED


def test_schemas_state_the_required_fields() -> None:
    config = json.loads(GENERATED["config.schema.json"])
    process = json.loads(GENERATED["process.schema.json"])
    state = json.loads(GENERATED["state.schema.json"])
    assert config["required"] == ["process", "root"]
    assert process["required"] == ["args", "cwd"]
    assert "required" not in process["$defs"]["User"]
    assert process["$defs"]["User"]["properties"]["uid"]["anyOf"][0]["minimum"] == 0
    assert state["required"] == ["ociVersion", "id", "status", "bundle"]


def test_package_data_ships_the_packaged_schemas() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["runpy_exec"]
    for name in GENERATED:
        assert any(fnmatch(f"schemas/{name}", pattern) for pattern in patterns), name
