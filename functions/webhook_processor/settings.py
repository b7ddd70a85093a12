"""The webhook processor's settings contract: variable names and defaults, once.

The pipeline stack renders it into the function's environment (`environment()`); the
handler reads it back at cold start (`from_environment`); the environment model takes
its defaults from here.

The signing secrets are not in the environment: anything there is readable by whoever
may call lambda:GetFunctionConfiguration (and kms:Decrypt), and Terraform would keep it
in its plan and state files. The environment carries the ARN of the Secrets Manager
secret (`WEBHOOK_SECRETS_ARN`); the handler reads the secret's document through a short
TTL cache (`functions.shared.secret_store`) and hands each invocation a copy of these
settings whose `secrets` is the current document (`with_secrets`). `secrets` stays a
plain field so that the service, the drain, the benchmarks and the tests keep building
`Settings(..., secrets=parse_secrets(...))` directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from functions.shared.price_table.ticks import TICK_RETENTION_VARIABLE
from functions.shared.settings import Contract, env, from_environment, replace, to_environment

if TYPE_CHECKING:
    from functions.webhook_processor.signature import SourceAuth

DEFAULT_QUOTE = "USD"
MAX_SKEW_SECONDS = 300
SECRETS_ARN_VARIABLE = "WEBHOOK_SECRETS_ARN"


class Settings(Contract):
    """The webhook processor's settings (a `Contract`: frozen, compared and printed like a dataclass)."""

    table_name: str = env("TABLE_NAME")
    dlq_url: str = env("DLQ_URL")
    # The parsed secrets document (source id -> its authentication). Not an environment
    # variable: the handler fills it from Secrets Manager on every invocation (`with_secrets`).
    secrets: Mapping[str, SourceAuth] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    default_quote: str = env("DEFAULT_QUOTE", DEFAULT_QUOTE)
    max_skew_seconds: int = env("MAX_SKEW_SECONDS", MAX_SKEW_SECONDS, parse=int)
    # Where the secrets document lives; empty only where Settings are built in code (tests, drain).
    secrets_arn: str = env(SECRETS_ARN_VARIABLE, "")
    # Days a tick is kept: with a value, every stored item carries `expires_at` (epoch seconds,
    # the table's TTL attribute); None (the variable absent) writes no `expires_at`.
    tick_retention_days: int | None = env(TICK_RETENTION_VARIABLE, None, parse=int)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return from_environment(cls, environ)

    def environment(self) -> dict[str, str]:
        """The variables the stack writes; no secrets ARN (settings built in code) writes none."""
        rendered = to_environment(self)
        if not self.secrets_arn:
            rendered.pop(SECRETS_ARN_VARIABLE, None)
        return rendered

    def with_secrets(self, secrets: Mapping[str, Any]) -> Settings:
        """These settings with the current secrets document (the handler calls it per invocation)."""
        if secrets is self.secrets:
            return self
        return replace(self, secrets=secrets)
