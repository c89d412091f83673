"""records.NamedTuple behaves as typing.NamedTuple for what pyrunc uses."""

from __future__ import annotations

import pickle
import typing

import pytest

from runpy_exec.records import NamedTuple


class Ours(NamedTuple):
    a: int
    b: str = "x"
    c: tuple[int, ...] = ()


class Theirs(typing.NamedTuple):
    a: int
    b: str = "x"
    c: tuple[int, ...] = ()


@pytest.mark.parametrize(("args", "kwargs"), [((1,), {}), ((1, "y"), {}), ((), {"a": 2}),
                                              ((3,), {"c": (4,)}), ((1, "z", (2,)), {})])
def test_construction_fields_and_methods(args: tuple[object, ...],
                                         kwargs: dict[str, object]) -> None:
    ours, theirs = Ours(*args, **kwargs), Theirs(*args, **kwargs)  # type: ignore[arg-type]
    assert tuple(ours) == tuple(theirs)
    assert (ours.a, ours.b, ours.c) == (theirs.a, theirs.b, theirs.c)
    assert ours._fields == theirs._fields
    assert ours._field_defaults == theirs._field_defaults
    assert ours._asdict() == theirs._asdict()
    assert tuple(ours._replace(b="new")) == tuple(theirs._replace(b="new"))
    assert repr(ours) == repr(theirs).replace("Theirs", "Ours")
    assert ours == Ours(*args, **kwargs) and hash(ours) == hash(tuple(theirs))  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(ours)) == ours


@pytest.mark.parametrize(("args", "kwargs"), [((), {}), ((1, "x", (), 4), {}),
                                              ((1,), {"d": 2}), ((1,), {"a": 1})])
def test_bad_construction_is_a_type_error(args: tuple[object, ...],
                                          kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        Theirs(*args, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Ours(*args, **kwargs)  # type: ignore[arg-type]


def test_fields_are_read_only() -> None:
    with pytest.raises(AttributeError):
        Ours(1).a = 2  # type: ignore[misc]
