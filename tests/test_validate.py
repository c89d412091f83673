"""The fast process.json validator must agree with the pydantic models.

Documents are generated from the schemas themselves, so every field the
model has is exercised; each node is usually valid and sometimes wrong in one
of the ways users get it wrong (wrong type, null, out of range, missing,
unknown key).  Both validators must accept the same documents, return the same
cleaned dict, and on rejection name the same JSON path with the same message.
exec only validates process documents; config documents are checked too
because they reach the map-typed fields (annotations, sysctl, rdma) that
process documents lack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from runpy_exec import oci, validate
from runpy_exec.errors import PyruncError
from runpy_exec.validate import SchemaValidator, Violation, load_process_fast, validate_process

PROCESS_SCHEMA: dict[str, Any] = json.loads(
    Path(validate.PACKAGE_SCHEMA_DIR, "process.schema.json").read_text()
)
CONFIG_SCHEMA: dict[str, Any] = json.loads(
    Path(validate.PACKAGE_SCHEMA_DIR, "config.schema.json").read_text()
)
# Both schemas come from the same model classes, so a shared name is one model.
DEFS: dict[str, Any] = {**CONFIG_SCHEMA["$defs"], **PROCESS_SCHEMA["$defs"]}

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.lists(st.integers(min_value=-3, max_value=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
UNKNOWN_KEYS = st.dictionaries(
    st.text(min_size=1, max_size=6).map(lambda name: "x-" + name), JUNK, max_size=2
)


def _mostly(
    valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any], odds: int = 60
) -> st.SearchStrategy[Any]:
    """``invalid`` about once in ``odds`` draws: a document has dozens of nodes,
    and a fair share of whole documents must still come out valid."""
    return st.integers(min_value=0, max_value=odds).flatmap(lambda n: invalid if n == 0 else valid)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return DEFS[ref.rsplit("/", 1)[1]] if ref else schema


def _valid_ish(schema: dict[str, Any], junk: bool) -> st.SearchStrategy[Any]:
    def maybe(
        valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]
    ) -> st.SearchStrategy[Any]:
        return _mostly(valid, invalid, 10) if junk else valid

    schema = _resolve(schema)
    if "anyOf" in schema:
        inner = next(b for b in schema["anyOf"] if b.get("type") != "null")
        return st.one_of(st.none(), node(inner, junk))
    if "enum" in schema:
        return maybe(st.sampled_from(schema["enum"]), st.sampled_from(["", "bogus"]))
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema["type"]
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = schema.get("minimum", -(2**64)), schema.get("maximum", 2**64)
        edges = st.sampled_from([low - 1, low, high, high + 1])
        return maybe(st.integers(min_value=low, max_value=high), edges)
    if kind == "string":
        if schema.get("pattern") == "^/":
            return maybe(st.text(max_size=8).map(lambda s: "/" + s), st.text(max_size=3))
        return st.text(max_size=8)
    if kind == "array":
        least = schema.get("minItems", 0)
        size = max(0, least - 1) if junk else least
        return st.lists(node(schema["items"], junk), min_size=size, max_size=3)
    if kind == "object" and "properties" in schema:
        return model_documents(schema, junk)
    values = node(schema["additionalProperties"], junk)
    return st.dictionaries(st.text(max_size=4), values, max_size=2)


def model_documents(schema: dict[str, Any], junk: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Objects for one model: optional fields come and go, unknown keys are
    sprinkled in, and with ``junk`` a present field is sometimes dropped."""
    required = set(schema.get("required", ()))
    props = schema["properties"]
    base = st.fixed_dictionaries(
        {name: node(sub, junk) for name, sub in props.items() if name in required},
        optional={name: node(sub, junk) for name, sub in props.items() if name not in required},
    )

    def disturb(drawn: tuple[dict[str, Any], int, dict[str, Any]]) -> dict[str, Any]:
        document, drop, extra = drawn
        document = dict(document)
        if junk and drop < len(document):
            del document[sorted(document)[drop]]
        document.update(extra)
        return document

    return st.tuples(base, st.integers(min_value=0, max_value=150), UNKNOWN_KEYS).map(disturb)


def node(schema: dict[str, Any], junk: bool) -> st.SearchStrategy[Any]:
    valid = _valid_ish(schema, junk)
    return _mostly(valid, JUNK) if junk else valid


VALID_PROCESSES = model_documents(PROCESS_SCHEMA, junk=False)
PROCESS_DOCUMENTS = _mostly(model_documents(PROCESS_SCHEMA, junk=True), JUNK, 30)
VALID_CONFIGS = model_documents(CONFIG_SCHEMA, junk=False)
CONFIG_DOCUMENTS = model_documents(CONFIG_SCHEMA, junk=True)
CONFIG_VALIDATOR = SchemaValidator(CONFIG_SCHEMA)


def config_verdicts(document: Any) -> tuple[tuple[bool, Any], tuple[bool, Any]]:
    """(pydantic, fast) verdicts on a config document."""
    try:
        model = oci.Spec.model_validate(document)
        reference: tuple[bool, Any] = (True, model.model_dump(by_alias=True, exclude_none=True))
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        reference = (False, (tuple(first["loc"]), first["msg"]))
    try:
        fast: tuple[bool, Any] = (True, CONFIG_VALIDATOR.validate(document))
    except Violation as violation:
        fast = (False, (violation.loc, violation.msg))
    return reference, fast


def pydantic_verdict(document: Any) -> tuple[bool, Any]:
    try:
        model = oci.Process.model_validate(document)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        return False, (tuple(first["loc"]), first["msg"])
    return True, model.model_dump(by_alias=True, exclude_none=True)


def fast_verdict(document: Any) -> tuple[bool, Any]:
    try:
        return True, validate_process(document)
    except Violation as violation:
        return False, (violation.loc, violation.msg)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PROCESS_DOCUMENTS)
def test_fast_validator_agrees_with_pydantic(document: Any) -> None:
    assert fast_verdict(document) == pydantic_verdict(document)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALID_PROCESSES)
def test_valid_documents_are_accepted_and_cleaned_alike(document: Any) -> None:
    accepted, cleaned = pydantic_verdict(document)
    assert accepted, cleaned
    assert fast_verdict(document) == (True, cleaned)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONFIG_DOCUMENTS)
def test_fast_validator_agrees_with_pydantic_on_configs(document: Any) -> None:
    reference, fast = config_verdicts(document)
    assert fast == reference


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALID_CONFIGS)
def test_valid_configs_are_accepted_and_cleaned_alike(document: Any) -> None:
    reference, fast = config_verdicts(document)
    assert reference[0], reference
    assert fast == reference


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALID_CONFIGS)
def test_a_checked_configs_process_passes_the_process_check_unchanged(document: Any) -> None:
    """exec takes the process of a config pyrunc's create checked without checking it
    again (exec_cmd._container_process): that is sound only while the cleaned process
    is what the process check would make of it."""
    cleaned = CONFIG_VALIDATOR.validate(document)
    if "process" in cleaned:
        assert validate.validate_process(cleaned["process"]) == cleaned["process"]


def test_generated_documents_include_accepted_and_rejected_ones() -> None:
    """Guards the agreement property against a generator that only makes junk."""
    outcomes: set[str] = set()

    @settings(max_examples=300, database=None, deadline=None)
    @given(PROCESS_DOCUMENTS)
    def collect(document: Any) -> None:
        accepted, detail = pydantic_verdict(document)
        if accepted:
            outcomes.add("accepted")
        else:
            outcomes.add("rejected nested" if len(detail[0]) >= 2 else "rejected")

    collect()
    assert outcomes == {"accepted", "rejected", "rejected nested"}


RUNC_PROCESS: dict[str, Any] = {
    "terminal": True,
    "user": {"uid": 0, "gid": 0, "additionalGids": [10, 20]},
    "args": ["sh", "-c", "echo hi"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {
        kind: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        for kind in ("bounding", "effective", "permitted", "ambient")
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": True,
}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {**RUNC_PROCESS, "user": {"uid": "0", "gid": 0}},
            "user.uid: Input should be a valid integer",
        ),
        (
            {**RUNC_PROCESS, "user": {"gid": -1}},
            "user.gid: Input should be greater than or equal to 0",
        ),
        (
            {**RUNC_PROCESS, "user": {"uid": 0, "gid": 0, "additionalGids": [1, -1]}},
            "user.additionalGids[1]: Input should be greater than or equal to 0",
        ),
        ({**RUNC_PROCESS, "cwd": "tmp"}, "cwd: String should match pattern '^/'"),
        (
            {**RUNC_PROCESS, "args": []},
            "args: List should have at least 1 item after validation, not 0",
        ),
        (
            {**RUNC_PROCESS, "rlimits": [{"hard": 1, "soft": 1}]},
            "rlimits[0].type: Field required",
        ),
        ({**RUNC_PROCESS, "terminal": 1}, "terminal: Input should be a valid boolean"),
        (
            {**RUNC_PROCESS, "scheduler": {"policy": "SCHED_RR", "nice": 2**31}},
            "scheduler.nice: Input should be less than or equal to 2147483647",
        ),
        (
            {**RUNC_PROCESS, "capabilities": []},
            "capabilities: Input should be a valid dictionary or instance of Capabilities",
        ),
        ([], "Input should be a valid dictionary or instance of Process"),
    ],
)
def test_both_loaders_report_the_same_one_liner(
    tmp_path: Path, document: Any, expected: str
) -> None:
    path = tmp_path / "process.json"
    path.write_text(json.dumps(document))
    messages = []
    for loader in (oci.load_process, load_process_fast):
        with pytest.raises(PyruncError) as caught:
            loader(str(path))
        assert caught.value.exit_code == 255
        messages.append(str(caught.value))
    assert messages == [f"{path}: {expected}"] * 2


def test_the_first_error_in_field_order_is_reported(tmp_path: Path) -> None:
    document = {"cwd": 5, "user": {"uid": 0, "gid": -2}, "args": "sh"}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(document))
    with pytest.raises(PyruncError) as caught:
        load_process_fast(str(path))
    assert str(caught.value) == f"{path}: user.gid: Input should be greater than or equal to 0"
    assert "\n" not in str(caught.value)


def test_accepted_process_is_cleaned_like_the_pydantic_dump(tmp_path: Path) -> None:
    document = {**RUNC_PROCESS, "consoleSize": None, "x-vendor": {"a": 1}}
    document["user"] = {**RUNC_PROCESS["user"], "umask": None, "unknown": True}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(document))
    assert load_process_fast(str(path)) == RUNC_PROCESS
    assert oci.load_process(str(path)) == RUNC_PROCESS


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "invalid JSON: Expecting value at line 1 column 1"),
        ('{"args": ["sh",]}', "invalid JSON: Expecting value at line 1 column 16"),
        (
            '{\n  "cwd": "/"\n  "args": []}',
            "invalid JSON: Expecting ',' delimiter at line 3 column 3",
        ),
    ],
)
def test_invalid_json_names_line_and_column(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    for loader in (oci.load_process, load_process_fast):
        with pytest.raises(PyruncError) as caught:
            loader(str(path))
        assert str(caught.value) == f"{path}: {expected}"


def test_missing_file_is_named_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for loader in (oci.load_process, load_process_fast):
        with pytest.raises(PyruncError) as caught:
            loader("nope.json")
        assert str(caught.value) == "nope.json: no such file or directory"
        assert caught.value.exit_code == 255


def test_validator_refuses_schema_keywords_it_does_not_implement() -> None:
    with pytest.raises(ValueError, match="oneOf"):
        SchemaValidator({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}})
    with pytest.raises(ValueError, match="anyOf"):
        SchemaValidator({"anyOf": [{"type": "string"}, {"type": "integer"}]})


def test_exec_hot_path_never_imports_pydantic(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(RUNC_PROCESS))
    probe = (
        "import sys\n"
        "from runpy_exec.validate import load_process_fast\n"
        f"assert load_process_fast({str(path)!r})['args'] == ['sh', '-c', 'echo hi']\n"
        "leaked = sorted(m for m in sys.modules if m.startswith(('pydantic', 'runpy_exec.oci')))\n"
        "print(leaked)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_check_process_prefixes_errors_with_the_given_name() -> None:
    with pytest.raises(PyruncError) as caught:
        validate.check_process({**RUNC_PROCESS, "cwd": 7}, "config.json: process")
    assert str(caught.value) == "config.json: process: cwd: Input should be a valid string"
    assert caught.value.exit_code == 255
    assert validate.check_process(RUNC_PROCESS, "config.json: process") == RUNC_PROCESS


@pytest.mark.parametrize(
    "edit",
    [
        lambda spec: None,
        lambda spec: spec["process"]["user"].update(uid="0"),
        lambda spec: spec["process"].pop("cwd"),
        lambda spec: spec["mounts"][1].update(destination=7),
        lambda spec: spec.update(unknownField={"kept": False}),
    ],
)
def test_create_loader_matches_pydantic_loader(tmp_path: Path, edit: Any) -> None:
    """create uses the fast loader; it must answer exactly as the pydantic one."""
    from runpy_exec import spec_default

    spec = spec_default.default_spec()
    edit(spec)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(spec))
    outcomes: list[tuple[str, Any]] = []
    for loader in (oci.load_spec, validate.load_spec_fast):
        try:
            outcomes.append(("ok", loader(str(path))))
        except PyruncError as err:
            outcomes.append(("error", (str(err), err.exit_code)))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("pattern", ["^/", "^/proc", "^a.b", "x$", "^(a|b)", "[0-9]+", "^\\d"])
def test_a_pattern_matches_as_a_regex_search_does(pattern: str) -> None:
    """The anchored-literal shortcut and the regex path both agree with re.search."""
    import re

    matches = validate._matcher(pattern)
    for value in ["/", "/proc/1", "tmp", "", "a.b", "axb", "box", "b", "12", "/x$", "^/"]:
        assert bool(matches(value)) == bool(re.search(pattern, value)), (pattern, value)
