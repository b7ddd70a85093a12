"""The log-alerts function's settings contract."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from functions.shared.settings import env, from_environment, to_environment


@dataclass(frozen=True)
class Settings:
    topic_arn: str = env("ALERTS_TOPIC_ARN")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return from_environment(cls, environ)

    def environment(self) -> dict[str, str]:
        return to_environment(self)
