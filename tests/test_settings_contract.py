"""Settings contracts (`functions.shared.settings.Contract`) behave as the frozen dataclasses they
replaced: the same constructor, repr, equality, hash, immutability and rendered environment.

Each function's contract is compared with a frozen dataclass built from the same fields, so a
difference in any method shows up here rather than in a stack's environment.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest

from functions.log_alerts.settings import Settings as LogAlertsSettings
from functions.price_api.settings import Settings as ApiSettings
from functions.price_enricher.indicators import Windows
from functions.price_enricher.settings import Settings as EnricherSettings
from functions.shared.settings import Contract, env, fields, from_environment, replace, to_environment, variable_names
from functions.webhook_processor.settings import Settings as WebhookSettings
from functions.webhook_processor.signature import parse_secrets


def dataclass_twin(contract: type) -> type:
    """A frozen dataclass with the contract's fields, as the contract was written before."""
    namespace: dict[str, Any] = {"__annotations__": {}, "__qualname__": contract.__qualname__}
    for field in fields(contract):
        namespace["__annotations__"][field.name] = Any
        namespace[field.name] = dataclasses.field(default=field.default, default_factory=field.default_factory,
                                                  metadata=field.metadata, repr=field.repr, compare=field.compare)
    return dataclasses.dataclass(frozen=True)(type(contract.__name__, (), namespace))


SECRETS = parse_secrets('{"bench": "bench-secret"}')
EXAMPLES = [
    (WebhookSettings, {"table_name": "t", "dlq_url": "q"}),
    (WebhookSettings, {"table_name": "t", "dlq_url": "q", "secrets": SECRETS, "default_quote": "USDT",
                       "max_skew_seconds": 30, "secrets_arn": "arn:x", "tick_retention_days": 7}),
    (EnricherSettings, {"table_name": "t", "topic_arn": "arn:topic"}),
    (EnricherSettings, {"table_name": "t", "topic_arn": "arn:topic", "windows": Windows((3,), (5,), (4,)),
                        "candle_table_name": "c"}),
    (ApiSettings, {"table_name": "t", "candle_table_name": "c"}),
]


@pytest.mark.parametrize("contract, values", EXAMPLES)
def test_a_contract_is_its_dataclass(contract, values):
    twin = dataclass_twin(contract)
    ours, theirs = contract(**values), twin(**values)
    assert repr(ours) == repr(theirs)
    assert to_environment(ours) == to_environment(theirs)
    assert {f.name: getattr(ours, f.name) for f in fields(ours)} == dataclasses.asdict(theirs) | (
        {"secrets": theirs.secrets} if "secrets" in values else {})
    positional = contract(*[getattr(ours, f.name) for f in fields(contract)])
    assert positional == ours and hash(positional) == hash(ours)
    assert from_environment(contract, ours.environment()) == contract(
        **{k: v for k, v in values.items() if k != "secrets"})
    assert variable_names(contract) == variable_names(twin)


def test_equality_hash_and_repr_leave_out_what_the_fields_say():
    a = WebhookSettings("t", "q", secrets=SECRETS)
    b = WebhookSettings("t", "q")
    assert a == b and hash(a) == hash(b)  # secrets: compare=False
    assert "bench-secret" not in repr(a) and " secrets=" not in repr(a)  # repr=False
    assert a != WebhookSettings("t", "other") and a != ApiSettings("t", "q") and a != ("t", "q")


def test_replace_copies_with_changes_and_keeps_the_original():
    base = WebhookSettings("t", "q")
    changed = base.with_secrets(SECRETS)
    assert changed.secrets is SECRETS and base.secrets == {} and changed.table_name == "t"
    assert base.with_secrets(base.secrets) is base
    assert replace(EnricherSettings("t", "a"), candle_table_name="c") == EnricherSettings("t", "a", Windows(), "c")
    assert replace(LogAlertsSettings("arn:a"), topic_arn="arn:b") == LogAlertsSettings("arn:b")  # a dataclass


def test_contracts_are_frozen_and_copy_and_pickle():
    settings = EnricherSettings("t", "a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.table_name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del settings.table_name
    assert copy.copy(settings) == settings and copy.deepcopy(settings) == settings
    assert pickle.loads(pickle.dumps(settings)) == settings


def test_the_constructor_refuses_as_a_dataclass_does():
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'dlq_url'"):
        WebhookSettings("t")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        ApiSettings("t", "c", nope=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'table_name'"):
        ApiSettings("t", "c", table_name="u")  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 3 positional arguments but 4 were given"):
        ApiSettings("t", "c", "x")  # type: ignore[call-arg]


def test_a_required_field_cannot_follow_a_default():
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        class Broken(Contract):
            a: str = env("A", "x")
            b: str = env("B")


def test_defaults_are_class_attributes_and_factories_run_per_instance():
    assert WebhookSettings.default_quote == "USD" and not hasattr(WebhookSettings, "table_name")
    assert WebhookSettings("t", "q").secrets is not WebhookSettings("t", "q").secrets
    assert EnricherSettings("t", "a").windows == Windows()
