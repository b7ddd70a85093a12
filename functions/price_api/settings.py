"""The price API's settings contract: variable names, once.

The pipeline stack renders it into the function's environment (`to_environment`); the
handler reads it back at cold start (`from_environment`).
"""

from __future__ import annotations

from collections.abc import Mapping

from functions.shared.settings import Contract, env, from_environment, to_environment


class Settings(Contract):
    """The price API's settings (a `Contract`: frozen, compared and printed like a dataclass)."""

    table_name: str = env("TABLE_NAME")                # the ticks (crypto-prices-<suffix>)
    candle_table_name: str = env("CANDLE_TABLE_NAME")  # the candles and the symbol registry

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return from_environment(cls, environ)

    def environment(self) -> dict[str, str]:
        return to_environment(self)
