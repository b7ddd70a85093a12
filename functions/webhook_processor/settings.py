"""The webhook processor's settings contract: variable names and defaults, once.

The pipeline stack renders it into the function's environment (`to_environment`); the
handler reads it back at cold start (`from_environment`); the environment model takes
its defaults from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from functions.shared.settings import env, from_environment, to_environment
from functions.webhook_processor.signature import parse_secrets

DEFAULT_QUOTE = "USD"
MAX_SKEW_SECONDS = 300


@dataclass(frozen=True)
class Settings:
    table_name: str = env("TABLE_NAME")
    dlq_url: str = env("DLQ_URL")
    # Rendered by the stack itself, never by to_environment (the value must not reach a file).
    secrets: dict[str, list[bytes]] = env("WEBHOOK_SECRETS", {}, parse=parse_secrets, secret=True)
    default_quote: str = env("DEFAULT_QUOTE", DEFAULT_QUOTE)
    max_skew_seconds: int = env("MAX_SKEW_SECONDS", MAX_SKEW_SECONDS, parse=int)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return from_environment(cls, environ)

    def environment(self) -> dict[str, str]:
        return to_environment(self)
