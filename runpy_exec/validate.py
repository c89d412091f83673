"""exec's process.json check, fast enough for the hot path.

``exec`` runs for every Kubernetes exec probe, and importing pydantic alone
costs more than the rest of exec's Python start-up.  So exec validates a
process.json against ``schemas/process.schema.json`` (generated from the
pydantic models in :mod:`runpy_exec.oci`) with the small interpreter below,
which knows only the JSON Schema keywords those schemas use.

It is meant to reproduce pydantic's strict-mode verdicts exactly (accept or
reject, the cleaned result, and the first error's path and wording), so a user
sees the same one-liner whichever loader ran.  The property tests in
tests/test_validate.py check that against the installed pydantic, so a wording
change in a pydantic upgrade shows up there.  Only inputs JSON cannot express
(tuples, str subclasses, model instances) are knowingly judged differently.

The schema walk refuses keywords it does not implement, so a model change that
needs a new keyword fails loudly in tests instead of being silently skipped.
"""

from __future__ import annotations

import os
import sys

from runpy_exec import jsonio as json  # json without its import of re
from runpy_exec.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

EXEC_EXIT_CODE = 255
PACKAGE_SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")

Loc = tuple[str | int, ...]

_TYPE_NAMES = frozenset({"object", "array", "string", "integer", "boolean", "null"})
_KEYWORDS = frozenset(
    {
        "$schema",
        "$defs",
        "$ref",
        "anyOf",
        "type",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "const",
        "minimum",
        "maximum",
        "minItems",
        "pattern",
        "title",
        "description",
        "default",
    }
)
_REF_PREFIX = "#/$defs/"


class Violation(Exception):
    """Where a document first breaks its schema, in pydantic's own terms."""

    def __init__(self, loc: Loc, msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def format_violation(name: str, loc: Loc, msg: str) -> str:
    """One line naming the file and a JSON path such as ``mounts[2].options``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif path:
            path += f".{part}"
        else:
            path = part
    return f"{name}: {path}: {msg}" if path else f"{name}: {msg}"


def read_json(path: str, exit_code: int = 1) -> Any:
    """Parse a user's JSON file, turning every failure into a one-line error.

    Only regular files and pipes of at most jsonio.MAX_JSON_BYTES are read.
    """
    from runpy_exec.jsonio import read_small_file

    try:
        raw = read_small_file(path)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise PyruncError(f"{path}: {reason}", exit_code) from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise PyruncError(
            f"{path}: invalid JSON: {error.msg} at line {error.lineno} column {error.colno}",
            exit_code,
        ) from None
    except UnicodeDecodeError as error:
        raise PyruncError(f"{path}: invalid JSON: {error.reason}", exit_code) from None
    except RecursionError:
        raise PyruncError(f"{path}: invalid JSON: nested too deeply", exit_code) from None
    except ValueError:
        # The only other ValueError: int() refuses numbers of more than
        # sys.get_int_max_str_digits() digits.
        raise PyruncError(f"{path}: invalid JSON: a number of more than "
                          f"{sys.get_int_max_str_digits()} digits", exit_code) from None


def _expected(values: list[Any]) -> str:
    """pydantic's rendering of a Literal's choices: ``'a', 'b' or 'c'``."""
    shown = [repr(value) for value in values]
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


_REGEX_SYNTAX = frozenset("\\.^$*+?{}[]|()")


def _matcher(pattern: str) -> Callable[[str], object]:
    """A test for JSON Schema's ``pattern`` (a regex searched anywhere in the string).

    The schemas' patterns are anchored literals ("^/" for cwd), checked on every
    exec; those become a startswith, since importing re costs ~1.5 ms a start.
    Any other pattern is a compiled regex.
    """
    literal = pattern[1:]
    if pattern.startswith("^") and not _REGEX_SYNTAX.intersection(literal):
        return lambda value: value.startswith(literal)
    import re

    return re.compile(pattern).search


class SchemaValidator:
    """Checks documents against one pydantic-generated JSON Schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self._defs: dict[str, Any] = schema.get("$defs", {})
        self._patterns: dict[str, Callable[[str], object]] = {}
        self._check_supported(schema)
        self._root = schema

    def _check_supported(self, schema: Any) -> None:
        if not isinstance(schema, dict):
            raise ValueError(f"schema node is not an object: {schema!r}")
        unknown = set(schema) - _KEYWORDS
        if unknown:
            raise ValueError(f"unsupported JSON Schema keywords {sorted(unknown)}")
        if "type" in schema and schema["type"] not in _TYPE_NAMES:
            raise ValueError(f"unsupported JSON Schema type {schema['type']!r}")
        ref = schema.get("$ref")
        if ref is not None and (
            not ref.startswith(_REF_PREFIX) or ref[len(_REF_PREFIX) :] not in self._defs
        ):
            raise ValueError(f"unresolvable $ref {ref!r}")
        if "anyOf" in schema:
            branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
            if len(branches) != 1:
                raise ValueError("anyOf is supported only as 'one schema or null'")
            self._check_supported(branches[0])
        if "pattern" in schema:
            self._patterns[schema["pattern"]] = _matcher(schema["pattern"])
        children: list[Any] = list(schema.get("properties", {}).values())
        children += list(schema.get("$defs", {}).values())
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                children.append(schema[key])
        for child in children:
            self._check_supported(child)

    def validate(self, value: Any) -> Any:
        """Return ``value`` without unknown keys and nulls, or raise Violation.

        The result equals pydantic's ``model_dump(by_alias=True,
        exclude_none=True)`` of the same input.
        """
        return self._check(self._root, value, ())

    def _check(self, schema: dict[str, Any], value: Any, loc: Loc) -> Any:
        ref = schema.get("$ref")
        if ref is not None:
            schema = self._defs[ref[len(_REF_PREFIX) :]]
        any_of = schema.get("anyOf")
        if any_of is not None:
            if value is None:
                return None
            for branch in any_of:
                if branch.get("type") != "null":
                    return self._check(branch, value, loc)
        choices = schema.get("enum")
        if choices is None and "const" in schema:
            choices = [schema["const"]]
        if choices is not None:
            if not any(type(value) is type(choice) and value == choice for choice in choices):
                raise Violation(loc, f"Input should be {_expected(choices)}")
            return value
        kind = schema.get("type")
        if kind == "object":
            return self._check_object(schema, value, loc)
        if kind == "array":
            return self._check_array(schema, value, loc)
        if kind == "string":
            if type(value) is not str:
                raise Violation(loc, "Input should be a valid string")
            pattern = schema.get("pattern")
            if pattern is not None and not self._patterns[pattern](value):
                raise Violation(loc, f"String should match pattern '{pattern}'")
            return value
        if kind == "integer":
            if type(value) is not int:
                raise Violation(loc, "Input should be a valid integer")
            low = schema.get("minimum")
            if low is not None and value < low:
                raise Violation(loc, f"Input should be greater than or equal to {low}")
            high = schema.get("maximum")
            if high is not None and value > high:
                raise Violation(loc, f"Input should be less than or equal to {high}")
            return value
        if kind == "boolean":
            if type(value) is not bool:
                raise Violation(loc, "Input should be a valid boolean")
            return value
        return value

    def _check_object(self, schema: dict[str, Any], value: Any, loc: Loc) -> dict[str, Any]:
        properties: dict[str, Any] | None = schema.get("properties")
        if type(value) is not dict:
            if properties is not None:
                title = schema.get("title", "")
                raise Violation(loc, f"Input should be a valid dictionary or instance of {title}")
            raise Violation(loc, "Input should be a valid dictionary")
        if properties is None:
            values = schema.get("additionalProperties")
            if not isinstance(values, dict):
                return dict(value)
            return {key: self._check(values, item, (*loc, key)) for key, item in value.items()}
        required = schema.get("required", ())
        result: dict[str, Any] = {}
        for name, subschema in properties.items():
            if name not in value:
                if name in required:
                    raise Violation((*loc, name), "Field required")
                continue
            checked = self._check(subschema, value[name], (*loc, name))
            if checked is not None:
                result[name] = checked
        return result

    def _check_array(self, schema: dict[str, Any], value: Any, loc: Loc) -> list[Any]:
        if type(value) is not list:
            raise Violation(loc, "Input should be a valid list")
        items = schema.get("items")
        result = (
            [self._check(items, item, (*loc, index)) for index, item in enumerate(value)]
            if items is not None
            else list(value)
        )
        least = schema.get("minItems")
        if least is not None and len(result) < least:
            noun = "item" if least == 1 else "items"
            raise Violation(
                loc, f"List should have at least {least} {noun} after validation, not {len(result)}"
            )
        return result


_validators: dict[str, SchemaValidator] = {}


def schema_validator(name: str) -> SchemaValidator:
    """The validator for a packaged schema file, built once per process."""
    validator = _validators.get(name)
    if validator is None:
        path = os.path.join(PACKAGE_SCHEMA_DIR, name)
        try:
            with open(path, "rb") as handle:
                schema = json.load(handle)
        except (OSError, ValueError) as error:
            raise PyruncError(f"pyrunc is installed without a usable {path}: {error}") from None
        validator = _validators[name] = SchemaValidator(schema)
    return validator


def validate_process(data: Any) -> dict[str, Any]:
    """Check a parsed process.json; raise :class:`Violation` at its first fault."""
    result: dict[str, Any] = schema_validator("process.schema.json").validate(data)
    return result


def check_process(data: Any, name: str) -> dict[str, Any]:
    """Validate an already-parsed process object, such as a container's
    config.json ``process``; ``name`` leads the error line as a file name would."""
    try:
        return validate_process(data)
    except Violation as violation:
        message = format_violation(name, violation.loc, violation.msg)
        raise PyruncError(message, EXEC_EXIT_CODE) from None


def load_process_fast(path: str) -> dict[str, Any]:
    """exec's loader for ``--process``: same result and errors as oci.load_process."""
    return check_process(read_json(path, EXEC_EXIT_CODE), path)


def load_spec_fast(path: str) -> dict[str, Any]:
    """create's loader for config.json: same result and errors as oci.load_spec.

    Importing pydantic and building the Spec model costs ~250 ms, more than
    the rest of create; the schema generated from that model, checked by
    this validator, gives the same verdicts (tests/test_validate.py).
    """
    data = read_json(path, 1)
    try:
        result: dict[str, Any] = schema_validator("config.schema.json").validate(data)
    except Violation as violation:
        raise PyruncError(format_violation(path, violation.loc, violation.msg)) from None
    return result
