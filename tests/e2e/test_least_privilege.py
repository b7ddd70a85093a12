"""Least privilege, proven at run time on the deployed local stack (emulator/iam_gate.py).

Every function signs with its own role's session and every call is evaluated against the role's
policies. This file runs a tour of the pipeline's paths (on its own or after the other end-to-end
files, before the tests marked destroys_stack tear the stack down), then shows that:
- dropping the enricher's AnnounceEnrichedUpdates statement fails its batch with AccessDenied
  (SNS's AuthorizationError), alerted and sent to the enricher DLQ, and that it passes again with it;
- the price API's URL serves a role with the price-readers policy and refuses one without (403);
- every call recorded in the session was allowed (but the refusals this file causes on purpose),
  and every statement of the functions' roles, of price-readers and of the pipeline key's policy
  was exercised by a recorded call, or is in UNEXERCISED with the reason (the same reason is
  commented at the statement).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from delivery.build import FUNCTION_NAMES
from emulator import session
from emulator.fault_proxy import FaultRule
from emulator.iam_gate import KEY_POLICY, Recorded
from price_client import PriceClient
from senders.webhook import signed_post
from stacks.names import role_name
from tests.e2e.conftest import wait_until

_LOCAL_ONLY = {
    "WriteOwnLogStreams": "the local runtime routes the functions' log lines in memory (emulator/log_router.py); "
                          "no CloudWatch Logs call is made, where in AWS Lambda writes them with this role",
    "XRayWriteTraces": "there is no X-Ray daemon locally; in AWS the Lambda runtime sends the traces",
}
# (function, policy name, statement Sid) -> why no scenario exercises it.
UNEXERCISED: dict[tuple[str, str, str], str] = {
    **{(function, "least-privilege", sid): reason
       for function in FUNCTION_NAMES for sid, reason in _LOCAL_ONLY.items()},
    ("key-policy", "key-policy", "CloudWatchAlarmsUseKey"):
        "CloudWatch alarms publishing to the encrypted alerts topic is AWS's side, which the emulator does not play",
    ("key-policy", "key-policy", "LogsServiceUsesKey"):
        "CloudWatch Logs encrypting the log groups is AWS's side; the local runtime routes log lines in memory",
    ("price_enricher", "least-privilege", "ListTableStreams"):
        "the emulated stream mapping reads the stream ARN the mapping names; Lambda's own poller lists the "
        "table's streams first",
}

TOUR_SYMBOL, DROP_SYMBOL, KEPT_SYMBOL = "IAMTOUR-USD", "IAMDROP-USD", "IAMKEPT-USD"
QUEUED_SYMBOL = "IAMQUEUE-USD"
# The refusals this file causes on purpose (the dropped statement, the stranger): excluded from
# "every recorded call was allowed".
_DELIBERATE: set[Recorded] = set()


def _post(stack: Any, symbol: str, prices: list[str], start_ms: int) -> tuple[int, dict]:
    info = stack.info
    body = json.dumps([{"symbol": symbol, "price": price, "exchange": "e2e", "timestamp": start_ms + i * 61_000}
                       for i, price in enumerate(prices)]).encode()
    return signed_post(info.webhook_url, body, info.secret_source, info.secret)


def _about(symbol: str):
    return lambda received: [m for m in received if m.json().get("symbol") == symbol]


def _role_session(stack: Any, name: str, policy_arns: list[str]) -> boto3.session.Session:
    """A reader's role, created on the emulator, assumed through the gate (which then knows its key)."""
    iam = session.client("iam", stack.info.endpoint, stack.info.config.region)
    account = stack.services.gate.account
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}]})
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    for policy in policy_arns:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy)
    credentials = stack.services.gate.assume(arn, name).credentials
    return boto3.session.Session(aws_access_key_id=credentials.access_key, aws_secret_access_key=credentials.secret_key,
                                 aws_session_token=credentials.token, region_name=stack.info.config.region)


def _signed_status(url: str, reader: boto3.session.Session, region: str) -> int:
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(reader.get_credentials().get_frozen_credentials(), "lambda", region).add_auth(request)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=dict(request.headers.items())),
                                    timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def tour(stack, inboxes):
    """The pipeline's paths once, each function on its role: a signed batch stored, enriched,
    candled and announced; a failed write queued to the webhook DLQ; reads through the price API
    by a reader role."""
    start = (int(time.time() * 1000) // 60_000 - 30) * 60_000
    status, answer = _post(stack, TOUR_SYMBOL, ["10.5", "10.75", "10.25", "11"], start)
    assert status == 200 and answer["rejected"] == [], answer
    stack.settle()
    assert inboxes["success"].wait_for(lambda received: len(_about(TOUR_SYMBOL)(received)) >= 4)

    stack.proxy.add(FaultRule("DynamoDB_20120810.PutItem", "InternalServerError", 500, body_contains=QUEUED_SYMBOL))
    try:
        status, answer = _post(stack, QUEUED_SYMBOL, ["3.5"], start)
    finally:
        stack.proxy.clear()
    assert status == 202 and answer["queued"] == 1, answer

    reader = _role_session(stack, "iam-e2e-dashboard", [stack.info.outputs["price_readers_policy_arn"]])
    client = PriceClient(stack.running.price_api_url, session=reader, region=stack.info.config.region)
    assert client.latest([TOUR_SYMBOL])[TOUR_SYMBOL] is not None
    assert client.candles(TOUR_SYMBOL, "1m", start, start + 3_600_000)
    return reader


def test_the_price_api_url_refuses_a_signed_principal_without_price_readers(stack, tour):
    url = stack.running.price_api_url.rstrip("/") + f"/v1/latest?symbols={TOUR_SYMBOL}"
    stranger = _role_session(stack, "iam-e2e-stranger", [])
    region, before = stack.info.config.region, set(stack.services.gate.recorded)
    assert _signed_status(url, stranger, region) == 403
    refused = {r for r in set(stack.services.gate.recorded) - before if not r.allowed}
    assert {(r.role, r.action) for r in refused} == {("iam-e2e-stranger", "lambda:InvokeFunctionUrl"),
                                                     ("iam-e2e-stranger", "lambda:InvokeFunction")}
    _DELIBERATE.update(refused)
    assert _signed_status(url, tour, region) == 200


def test_without_announce_enriched_updates_the_enricher_batch_fails_with_access_denied(stack, inboxes, tour):
    gate, config = stack.services.gate, stack.info.config
    iam = session.client("iam", stack.info.endpoint, config.region)
    role = role_name(config, "price_enricher")
    original = iam.get_role_policy(RoleName=role, PolicyName="least-privilege")["PolicyDocument"]
    dropped = {**original, "Statement": [s for s in original["Statement"] if s["Sid"] != "AnnounceEnrichedUpdates"]}
    assert len(dropped["Statement"]) == len(original["Statement"]) - 1
    before = set(gate.recorded)
    iam.put_role_policy(RoleName=role, PolicyName="least-privilege", PolicyDocument=json.dumps(dropped))
    gate.reload()
    start = (int(time.time() * 1000) // 60_000 - 20) * 60_000
    try:
        assert _post(stack, DROP_SYMBOL, ["20.5"], start)[0] == 200
        stack.settle()
        refused = [r for r in set(gate.recorded) - before if not r.allowed]
        _DELIBERATE.update(refused)
        assert {(r.role, r.action, r.resource) for r in refused} == {
            (role, "sns:Publish", stack.info.outputs["success_topic_arn"])}

        def enricher_alerts(received: list) -> list:
            return [m for m in received if "price-enricher" in (m.subject or "") and "AuthorizationError" in m.body]
        assert inboxes["alerts"].wait_for(enricher_alerts), "the refused Publish raised no alert"
        records = wait_until(lambda: [json.loads(m["Body"]) for m in _messages(stack, "enricher_dlq_url")
                                      if json.loads(m["Body"]).get("requestContext", {}).get("condition")
                                      == "RetryAttemptsExhausted"])
        assert records, "the failed batch's on-failure record did not reach the enricher DLQ"
        assert not _about(DROP_SYMBOL)(inboxes["success"].received())
    finally:
        iam.put_role_policy(RoleName=role, PolicyName="least-privilege", PolicyDocument=json.dumps(original))
        gate.reload()

    assert _post(stack, KEPT_SYMBOL, ["21.5"], start)[0] == 200
    stack.settle()
    assert inboxes["success"].wait_for(_about(KEPT_SYMBOL)), "with the statement back, the update is announced"


def _messages(stack: Any, url_output: str) -> list[dict]:
    sqs, url = stack.aws["sqs"], stack.info.outputs[url_output]
    found: dict[str, dict] = {}
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        new = [m for m in batch if m["MessageId"] not in found]
        if not new:
            return list(found.values())
        found.update({m["MessageId"]: m for m in new})


def _statements(stack: Any) -> dict[tuple[str, str, str], dict]:
    """(function, 'price-readers' or 'key-policy', policy name, Sid) -> statement, read back from the
    emulator's IAM and KMS."""
    gate, config = stack.services.gate, stack.info.config
    found = {}
    for function in FUNCTION_NAMES:
        for policy, document in gate.policies(role_name(config, function)).items():
            for statement in document["Statement"]:
                found[(function, policy, statement["Sid"])] = statement
    kms = session.client("kms", stack.info.endpoint, config.region)
    key_policy = json.loads(kms.get_key_policy(KeyId=stack.info.outputs["kms_key_arn"], PolicyName="default")["Policy"])
    for statement in key_policy["Statement"]:
        found[(KEY_POLICY, KEY_POLICY, statement["Sid"])] = statement
    readers = stack.info.outputs["price_readers_policy_arn"]
    iam = session.client("iam", stack.info.endpoint, config.region)
    version = iam.get_policy(PolicyArn=readers)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=readers, VersionId=version)["PolicyVersion"]["Document"]
    for statement in (json.loads(document) if isinstance(document, str) else document)["Statement"]:
        found[("price-readers", readers.rsplit("/", 1)[-1], statement["Sid"])] = statement
    return found


def test_every_recorded_call_was_allowed_and_every_statement_was_exercised(stack, tour):
    gate, config = stack.services.gate, stack.info.config
    record = [r for r in gate.recorded if r not in _DELIBERATE]
    assert not [r for r in record if not r.allowed], "calls refused outside the dropped-statement scenario"

    functions = {role_name(config, function): function for function in FUNCTION_NAMES}
    exercised = {(KEY_POLICY if policy == KEY_POLICY else functions.get(r.role, "price-readers"), policy, sid)
                 for r in record for policy, sid in r.statements}
    statements = _statements(stack)
    assert set(UNEXERCISED) <= set(statements), "an allow-list entry names no deployed statement"
    unexplained = set(statements) - exercised - set(UNEXERCISED)
    assert not unexplained, f"statements no recorded call exercised, and no reason given: {sorted(unexplained)}"
    needless = exercised & set(UNEXERCISED)
    assert not needless, f"allow-listed statements that a call did exercise: {sorted(needless)}"
