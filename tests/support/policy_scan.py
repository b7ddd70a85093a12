"""Least-privilege scan of every IAM and key policy document in synthesized Terraform JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stacks.iam import WILDCARD_RESOURCE_REASONS

POLICY_ATTRIBUTES = ("policy", "assume_role_policy")


@dataclass(frozen=True)
class PolicyStatement:
    address: str
    statement: dict[str, Any]


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def iter_policy_statements(document: dict) -> Iterator[PolicyStatement]:
    for resource_type, resources in document.get("resource", {}).items():
        for name, body in resources.items():
            for attribute in POLICY_ATTRIBUTES:
                if attribute in body:
                    policy = json.loads(body[attribute])
                    for item in _as_list(policy["Statement"]):
                        yield PolicyStatement(f"{resource_type}.{name}.{attribute}", item)


def policy_violations(document: dict) -> list[str]:
    """Wildcard actions anywhere, wildcard resources without a written reason, and Deny-less NotAction tricks."""
    problems = []
    for found in iter_policy_statements(document):
        statement, where = found.statement, f"{found.address} [{found.statement.get('Sid', 'no Sid')}]"
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{where}: NotAction/NotResource grants everything else")
        for action in _as_list(statement.get("Action", [])):
            if "*" in action:
                problems.append(f"{where}: wildcard action {action}")
        resources = _as_list(statement.get("Resource", []))
        if any("*" in r for r in resources) and statement.get("Sid") not in WILDCARD_RESOURCE_REASONS:
            problems.append(f"{where}: wildcard resource without a reason")
        if statement.get("Effect") == "Allow" and statement.get("Principal") == "*":
            problems.append(f"{where}: allows any principal")
    return problems
