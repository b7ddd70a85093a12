"""Immutable records that cost nothing at import: what the handlers' modules use instead of
`@dataclass(frozen=True)` and `typing.NamedTuple`.

Why: a frozen dataclass writes its class's __init__, __repr__, __eq__, __hash__, __setattr__
and __delattr__ as source text and exec()s each when its module is imported, ~1.3 ms a class on
Python 3.12; the zips' bytecode cannot cache that, and a cold start defines dozens of them.
A NamedTuple still compiles its __new__ with eval() (~0.5 ms a class). A `Record`'s methods are
ordinary functions, compiled into the bytecode once: a subclass costs what any class statement
costs (~0.02 ms). This is the one place that says so: the functions' other modules point here
("cold start: see functions.shared.records") for their Records, Contracts and plain classes.

A subclass lists its fields in `__slots__`, in the order of its __init__'s parameters,
annotates them for the type checker, and sets them all in __init__ with `_init(...)`, in that
order. It then behaves as the frozen dataclass it replaces: assigning or deleting an attribute
raises `dataclasses.FrozenInstanceError`; two records are equal when they are of the same
class with equal fields, and hash alike; repr is `Name(field=value, ...)`; copy, deepcopy and
pickle rebuild it through __init__.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any


class Record:
    """Base of an immutable record whose fields are its `__slots__` (see the module docstring)."""

    __slots__: tuple[str, ...] = ()

    def _init(self, *values: object) -> None:
        """Set every field, in `__slots__` order (only __init__ calls this)."""
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{self.__class__.__qualname__}({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type[Record], tuple[Any, ...]]:
        return self.__class__, self._values()
