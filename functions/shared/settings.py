"""One settings contract per function: environment variable names, defaults and encodings
defined once, used by the stack that writes a function's environment and by the service
that reads it back.

Hand-written on purpose rather than pydantic-settings: the contract is a handful of strings.
A contract is a subclass of `Contract`: its annotated fields, bound to variables with
`env(...)`, get a frozen dataclass's __init__ (positional and keyword, defaults), equality,
hash and repr (honouring `dataclasses.field(repr=False, compare=False)`), and `replace`
copies one with changes. Not `@dataclass(frozen=True)` itself (cold start: see
functions.shared.records); these methods are compiled once. Every helper here takes a frozen
dataclass as well (log-alerts' contract is one).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")
_MISSING: Any = dataclasses.MISSING
_FIELDS = "__settings_fields__"


class SettingsField:
    """One field of a `Contract`: what `dataclasses.fields` gives for a dataclass's."""

    __slots__ = ("name", "default", "default_factory", "metadata", "repr", "compare")

    def __init__(self, name: str, default: Any, default_factory: Any, metadata: Mapping[str, Any], show: bool,
                 compare: bool) -> None:
        self.name, self.default, self.default_factory = name, default, default_factory
        self.metadata, self.repr, self.compare = metadata, show, compare


def fields(settings: Any) -> tuple[Any, ...]:
    """The fields of a `Contract` class or instance, or of a dataclass (`dataclasses.fields`)."""
    found: tuple[SettingsField, ...] | None = getattr(settings, _FIELDS, None)
    return found if found is not None else dataclasses.fields(settings)


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
class Contract:
    """Base of a settings contract: frozen, with a dataclass's __init__, __eq__, __hash__ and __repr__.

    Every name a subclass annotates is a field, in order; its value in the class body is its
    default: an `env(...)` or `dataclasses.field(...)` (default, default_factory, metadata, repr,
    compare) or a plain value. A field without a default may not follow one with a default.
    """

    __settings_fields__: tuple[SettingsField, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = list(cls.__settings_fields__)
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            if "ClassVar" in str(annotation):
                raise TypeError(f"{cls.__qualname__}.{name}: ClassVar is not supported in a settings contract")
            value = cls.__dict__.get(name, _MISSING)
            if isinstance(value, dataclasses.Field):
                field = SettingsField(name, value.default, value.default_factory, value.metadata, value.repr,
                                      bool(value.compare))
            else:
                field = SettingsField(name, value, _MISSING, {}, True, True)
            if field.default is _MISSING and field.default_factory is _MISSING and \
                    any(f.default is not _MISSING or f.default_factory is not _MISSING for f in declared):
                raise TypeError(f"non-default argument {name!r} follows default argument")
            if field.default is not _MISSING:
                setattr(cls, name, field.default)
            elif name in cls.__dict__:
                delattr(cls, name)  # a dataclasses.Field without a default: no class attribute, as in a dataclass
            declared.append(field)
        cls.__settings_fields__ = tuple(declared)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        declared = self.__settings_fields__
        name = f"{type(self).__qualname__}.__init__()"
        if len(args) > len(declared):
            raise TypeError(f"{name} takes {len(declared) + 1} positional arguments but {len(args) + 1} were given")
        values = {field.name: value for field, value in zip(declared, args, strict=False)}
        known = {field.name for field in declared}
        for key, value in kwargs.items():
            if key not in known:
                raise TypeError(f"{name} got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{name} got multiple values for argument {key!r}")
            values[key] = value
        for field in declared:
            if field.name in values:
                value = values[field.name]
            elif field.default_factory is not _MISSING:
                value = field.default_factory()
            elif field.default is not _MISSING:
                value = field.default
            else:
                raise TypeError(f"{name} missing 1 required positional argument: {field.name!r}")
            object.__setattr__(self, field.name, value)

    def _compared(self) -> tuple[Any, ...]:
        return tuple(getattr(self, field.name) for field in self.__settings_fields__ if field.compare)

    def __repr__(self) -> str:
        shown = ", ".join(f"{field.name}={getattr(self, field.name)!r}" for field in self.__settings_fields__
                          if field.repr)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def __setattr__(self, name: str, value: object) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def replace(settings: T, **changes: Any) -> T:
    """A copy with `changes` (dataclasses.replace for a settings contract)."""
    values = {field.name: getattr(settings, field.name) for field in fields(settings)}
    return type(settings)(**{**values, **changes})


def env(name: str, default: Any = _MISSING, *, parse: Callable[[str], Any] = str,
        render: Callable[[Any], str] = str, secret: bool = False) -> Any:
    """A field bound to the environment variable `name` (a `dataclasses.Field`: contracts and
    dataclasses read it alike).

    `parse` turns the variable's text into the field's value, `render` the value back into
    text for the stack; `secret` keeps the value out of repr and out of rendered environments.
    """
    metadata = {"env": name, "parse": parse, "render": render, "secret": secret}
    if default is _MISSING:
        return dataclasses.field(metadata=metadata, repr=not secret)
    factory = (lambda: default) if isinstance(default, (dict, list, tuple)) else None
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata, repr=not secret)
    return dataclasses.field(default=default, metadata=metadata, repr=not secret)


def json_value(text: str) -> Any:
    return json.loads(text)


def json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def from_environment(cls: type[T], environ: Mapping[str, str]) -> T:
    """Read every field from its variable; a missing variable without a default raises KeyError."""
    values: dict[str, Any] = {}
    for item in fields(cls):
        name = item.metadata.get("env")
        if name is None:
            continue
        if name in environ and environ[name] != "":
            values[item.name] = item.metadata["parse"](environ[name])
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            raise KeyError(f"environment variable {name} is not set")
    return cls(**values)


def to_environment(settings: Any) -> dict[str, str]:
    """The variables a stack writes for these settings (secret fields are never rendered). An
    optional setting left unset (None) writes no variable: read back, it is its default None."""
    rendered: dict[str, str] = {}
    for item in fields(settings):
        name = item.metadata.get("env")
        value = getattr(settings, item.name)
        if name is None or item.metadata["secret"] or value is None:
            continue
        rendered[name] = item.metadata["render"](value)
    return rendered


def variable_names(cls: type) -> dict[str, str]:
    """Field name -> environment variable name."""
    return {item.name: item.metadata["env"] for item in fields(cls) if "env" in item.metadata}
