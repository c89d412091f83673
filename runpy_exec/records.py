"""``NamedTuple`` for the hot paths, without importing ``typing`` (~4 ms a start).

The request and plan tuples are declared ``class X(NamedTuple):`` as usual.
Type checkers see ``typing.NamedTuple``; at run time the base below builds
the same thing from the class's annotations: a tuple subclass with named,
read-only fields, defaults, keyword construction, ``_fields``,
``_field_defaults``, ``_replace`` and ``_asdict``.  tests/test_records.py holds
it to typing's behaviour.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    # The C descriptor collections.namedtuple gives each field: a field read is
    # one C call, not a Python function's (the child reads the plan's often).
    from _collections import _tuplegetter


    class NamedTuple(tuple):  # noqa: SLOT001 - subclasses get __slots__ = () below
        __slots__ = ()
        _fields: tuple[str, ...] = ()
        _field_defaults: dict[str, object] = {}

        def __init_subclass__(cls, **kwargs: object) -> None:
            super().__init_subclass__(**kwargs)
            fields = tuple(cls.__dict__.get("__annotations__", {}))
            cls._field_defaults = {name: cls.__dict__[name] for name in fields
                                   if name in cls.__dict__}
            cls._fields = fields
            for index, name in enumerate(fields):
                setattr(cls, name, _tuplegetter(index, f"Alias for field number {index}"))

        def __new__(cls, *args: object, **kwargs: object) -> NamedTuple:
            fields = cls._fields
            if len(args) > len(fields):
                raise TypeError(f"{cls.__name__} takes {len(fields)} arguments, "
                                f"{len(args)} given")
            values = list(args)
            for name in fields[len(args):]:
                if name in kwargs:
                    values.append(kwargs.pop(name))
                elif name in cls._field_defaults:
                    values.append(cls._field_defaults[name])
                else:
                    raise TypeError(f"{cls.__name__} missing required argument: {name!r}")
            if kwargs:
                raise TypeError(f"{cls.__name__} got unexpected arguments: "
                                f"{', '.join(map(repr, kwargs))}")
            return tuple.__new__(cls, values)

        def __getnewargs__(self) -> tuple[object, ...]:
            return tuple(self)

        def __repr__(self) -> str:
            pairs = zip(self._fields, self, strict=True)
            inner = ", ".join(f"{name}={value!r}" for name, value in pairs)
            return f"{type(self).__name__}({inner})"

        def _asdict(self) -> dict[str, object]:
            return dict(zip(self._fields, self, strict=True))

        def _replace(self, **changes: object) -> NamedTuple:
            return type(self)(**{**self._asdict(), **changes})
