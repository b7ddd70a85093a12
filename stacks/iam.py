"""IAM policy documents with the least-privilege rules the tests enforce.

Documents are rendered with json.dumps (not Fn.jsonencode) so that the synthesized
JSON holds real policy JSON that the IAM scan can read.
"""

from __future__ import annotations

import json
from typing import Any

# Every statement whose resource holds a wildcard is named here with the reason
# AWS offers nothing narrower. The IAM scan fails on any wildcard not listed.
WILDCARD_RESOURCE_REASONS: dict[str, str] = {
    "XRayWriteTraces": "xray:PutTraceSegments/PutTelemetryRecords support no resource-level permissions",
    "WriteOwnLogStreams": "Lambda and the ECS agent name their log streams at run time; the log group itself "
                          "is named exactly",
    "ListTableStreams": "dynamodb:ListStreams supports no resource-level permissions (Lambda's poller calls it)",
    "AccountAdministersKey": "in a key policy, Resource '*' means this key only",
    "PipelineRolesUseKey": "in a key policy, Resource '*' means this key only",
    "CloudWatchAlarmsUseKey": "in a key policy, Resource '*' means this key only",
    "LogsServiceUsesKey": "in a key policy, Resource '*' means this key only",
    "EcrAuthorization": "ecr:GetAuthorizationToken supports no resource-level permissions (the image pull "
                        "itself is limited to the relay's repository by PullRelayImage)",
}


def statement(
    sid: str,
    actions: list[str],
    resources: list[str],
    *,
    principal: dict[str, Any] | None = None,
    condition: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One Allow statement; refuses wildcard actions and unexplained wildcard resources at synth time."""
    for action in actions:
        if "*" in action:
            raise ValueError(f"{sid}: wildcard action {action!r} is not allowed")
    if any("*" in resource for resource in resources) and sid not in WILDCARD_RESOURCE_REASONS:
        raise ValueError(f"{sid}: wildcard resource needs a reason in WILDCARD_RESOURCE_REASONS")
    result: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions)}
    if principal is not None:
        result["Principal"] = principal
    result["Resource"] = resources if len(resources) > 1 else resources[0]
    if condition:
        result["Condition"] = condition
    return result


def policy_document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def lambda_assume_role_policy() -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "LambdaAssumesRole",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }],
    })


def ecs_tasks_assume_role_policy() -> str:
    """For a task execution role: ECS (the Fargate agent) assumes it to pull, log and read secrets."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "EcsTasksAssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }],
    })
