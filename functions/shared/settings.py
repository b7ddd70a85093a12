"""One settings contract per function: environment variable names, defaults and encodings
defined once, used by the stack that writes a function's environment and by the service
that reads it back.

Hand-written on purpose rather than pydantic-settings: a frozen dataclass with field
metadata costs nothing at cold start, and the contract is a handful of strings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING: Any = dataclasses.MISSING


def env(name: str, default: Any = _MISSING, *, parse: Callable[[str], Any] = str,
        render: Callable[[Any], str] = str, secret: bool = False) -> Any:
    """A dataclass field bound to the environment variable `name`.

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
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = item.metadata.get("env")
        if name is None:
            continue
        if name in environ and environ[name] != "":
            values[item.name] = item.metadata["parse"](environ[name])
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            raise KeyError(f"environment variable {name} is not set")
    return cls(**values)


def to_environment(settings: Any) -> dict[str, str]:
    """The variables a stack writes for these settings (secret fields are never rendered)."""
    rendered: dict[str, str] = {}
    for item in dataclasses.fields(settings):
        name = item.metadata.get("env")
        if name is None or item.metadata["secret"]:
            continue
        rendered[name] = item.metadata["render"](getattr(settings, item.name))
    return rendered


def variable_names(cls: type) -> dict[str, str]:
    """Field name -> environment variable name."""
    return {item.name: item.metadata["env"] for item in dataclasses.fields(cls) if "env" in item.metadata}
