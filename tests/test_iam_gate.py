"""IAM at run time on the emulator (emulator/iam_gate.py): a role session's calls are evaluated
against the role's policies with the call's real resource ARN, and refused as the service refuses."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from types import SimpleNamespace

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

from emulator import session
from emulator.fault_proxy import FaultProxy
from emulator.function_url import FunctionUrlServer
from emulator.iam_gate import Call, IamGate, evaluate, request_resources

REGION, ACCOUNT = "us-east-1", "123456789012"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/prices"


def _policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.mark.parametrize(("action", "params", "expected"), [
    ("dynamodb:PutItem", {"TableName": "prices"}, (TABLE_ARN,)),
    ("dynamodb:Query", {"TableName": "prices", "IndexName": "by-day"}, (f"{TABLE_ARN}/index/by-day",)),
    ("dynamodb:BatchWriteItem", {"RequestItems": {"prices": [], "candles": []}},
     (TABLE_ARN, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/candles")),
    ("dynamodb:GetRecords", {"ShardIterator": f"{TABLE_ARN}/stream/2026|1|abc"}, (f"{TABLE_ARN}/stream/2026",)),
    ("dynamodb:DescribeStream", {"StreamArn": f"{TABLE_ARN}/stream/2026"}, (f"{TABLE_ARN}/stream/2026",)),
    ("dynamodb:ListStreams", {"TableName": "prices"}, ("*",)),
    ("sqs:SendMessage", {"QueueUrl": f"http://127.0.0.1:5000/{ACCOUNT}/dlq"}, (f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq",)),
    ("sns:Publish", {"TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:t"}, (f"arn:aws:sns:{REGION}:{ACCOUNT}:t",)),
    ("secretsmanager:GetSecretValue", {"SecretId": "webhook"},
     (f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:webhook-AbCdEf",)),
    ("kms:Decrypt", {"KeyId": "1234"}, (f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234",)),
    ("logs:PutLogEvents", {"logGroupName": "/aws/lambda/f", "logStreamName": "s"},
     (f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/f:log-stream:s",)),
    ("lambda:ListFunctions", {}, ()),
])
def test_a_call_is_evaluated_against_the_arn_its_parameters_name(action, params, expected):
    secrets = {"webhook": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:webhook-AbCdEf"}
    assert request_resources(action, params, REGION, ACCOUNT, secrets) == expected


def test_a_statement_scoped_to_one_table_allows_that_table_only():
    policies = {"p": _policy({"Sid": "Write", "Effect": "Allow", "Action": ["dynamodb:PutItem"],
                              "Resource": TABLE_ARN})}
    assert evaluate(policies, Call("dynamodb:PutItem", (TABLE_ARN,))).statements == (("p", "Write"),)
    assert not evaluate(policies, Call("dynamodb:PutItem", (TABLE_ARN + "-other",))).allowed
    assert not evaluate(policies, Call("dynamodb:DeleteItem", (TABLE_ARN,))).allowed
    assert not evaluate(policies, Call("dynamodb:PutItem", (TABLE_ARN, TABLE_ARN + "-other"))).allowed
    assert not evaluate(policies, Call("dynamodb:PutItem", ())).allowed  # a call the gate cannot name


def test_an_explicit_deny_wins_over_an_allow():
    policies = {"allow": _policy({"Effect": "Allow", "Action": "sns:Publish", "Resource": "arn:aws:sns:*"}),
                "deny": _policy({"Effect": "Deny", "Action": "sns:*", "Resource": "*"})}
    assert not evaluate(policies, Call("sns:Publish", ("arn:aws:sns:us-east-1:1:t",))).allowed


@pytest.mark.parametrize(("condition", "context", "allowed"), [
    ({"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}, {"lambda:FunctionUrlAuthType": "AWS_IAM"}, True),
    ({"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}, {"lambda:FunctionUrlAuthType": "NONE"}, False),
    ({"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}, {}, False),  # a missing key never matches
    ({"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}, {"lambda:InvokedViaFunctionUrl": "true"}, True),
    ({"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}, {}, False),
    ({"ArnEquals": {"aws:PrincipalArn": ["arn:aws:iam::1:role/a", "arn:aws:iam::1:role/b"]}},
     {"aws:PrincipalArn": "arn:aws:iam::1:role/b"}, True),
    ({"ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:*:1:log-group:/aws/lambda/*"}},
     {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:us-east-1:1:log-group:/aws/lambda/f"}, True),
    # an operator the gate does not know fails closed
    ({"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}, {"aws:MultiFactorAuthAge": "1"}, False),
])
def test_conditions_hold_only_when_the_request_carries_matching_keys(condition, context, allowed):
    policies = {"p": _policy({"Effect": "Allow", "Action": "lambda:InvokeFunctionUrl", "Resource": "*",
                              "Condition": condition})}
    assert evaluate(policies, Call("lambda:InvokeFunctionUrl", ("arn:aws:lambda:x",), context)).allowed is allowed


# ---- on the emulator --------------------------------------------------------------------------

@pytest.fixture
def account(moto_endpoint):
    """A role allowed PutItem on one table, SendMessage on one queue, Publish on one topic; the
    gate in a fault proxy in front of the emulator."""
    aws = {name: session.client(name, moto_endpoint) for name in IamGate.ADMIN_CLIENTS}
    for table in ("prices", "other"):
        aws["dynamodb"].create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    queues = {name: aws["sqs"].create_queue(QueueName=name)["QueueUrl"] for name in ("dlq", "other-q")}
    topics = {name: aws["sns"].create_topic(Name=name)["TopicArn"] for name in ("updates", "other-t")}
    role = aws["iam"].create_role(RoleName="writer", AssumeRolePolicyDocument=json.dumps(_policy(
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"})))["Role"]
    aws["iam"].put_role_policy(RoleName="writer", PolicyName="least-privilege", PolicyDocument=json.dumps(_policy(
        {"Sid": "WriteUpdates", "Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": TABLE_ARN},
        {"Sid": "QueueFailed", "Effect": "Allow", "Action": ["sqs:SendMessage"],
         "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"},
        {"Sid": "Announce", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": topics["updates"]})))
    gate = IamGate(aws, ACCOUNT)
    proxy = FaultProxy(moto_endpoint, gate=gate).start()
    identity = gate.assume(role["Arn"], "writer-fn")
    clients = gate.clients(identity, proxy.endpoint, REGION, ("dynamodb", "sqs", "sns"))
    yield SimpleNamespace(aws=aws, gate=gate, proxy=proxy, role=role, identity=identity, clients=clients,
                          queues=queues, topics=topics)
    proxy.stop()


def _denied(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_role_session_does_what_its_policy_allows_and_nothing_else(account):
    dynamodb, sqs, sns = account.clients["dynamodb"], account.clients["sqs"], account.clients["sns"]
    dynamodb.put_item(TableName="prices", Item={"pk": {"S": "a"}})
    sqs.send_message(QueueUrl=account.queues["dlq"], MessageBody="x")
    sns.publish(TopicArn=account.topics["updates"], Message="x")
    # A batch call is authorized as its single call (sns:Publish, sqs:SendMessage).
    sns.publish_batch(TopicArn=account.topics["updates"], PublishBatchRequestEntries=[{"Id": "1", "Message": "x"}])
    sqs.send_message_batch(QueueUrl=account.queues["dlq"], Entries=[{"Id": "1", "MessageBody": "x"}])

    denied = ("AccessDeniedException", 400)
    assert _denied(lambda: dynamodb.put_item(TableName="other", Item={"pk": {"S": "a"}})) == denied
    assert _denied(lambda: dynamodb.get_item(TableName="prices", Key={"pk": {"S": "a"}})) == denied
    assert _denied(lambda: sqs.send_message(QueueUrl=account.queues["other-q"], MessageBody="x")) \
        == ("AccessDenied", 403)
    assert _denied(lambda: sns.publish(TopicArn=account.topics["other-t"], Message="x")) == ("AuthorizationError", 403)
    # Nothing refused reached the emulator.
    assert "Item" not in account.aws["dynamodb"].get_item(TableName="other", Key={"pk": {"S": "a"}})

    record = {(row["action"], row["resource"]): row for row in account.gate.record()}
    assert record[("dynamodb:PutItem", TABLE_ARN)]["statements"] == [["least-privilege", "WriteUpdates"]]
    assert record[("dynamodb:PutItem", TABLE_ARN)]["allowed"] is True
    assert record[("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/other")]["allowed"] is False


def test_a_refusal_names_the_role_action_and_resource(account):
    with pytest.raises(ClientError) as caught:
        account.clients["dynamodb"].put_item(TableName="other", Item={"pk": {"S": "a"}})
    message = caught.value.response["Error"]["Message"]
    assert "assumed-role/writer/" in message and "dynamodb:PutItem" in message and "table/other" in message


def test_a_dropped_statement_is_refused_after_reload(account):
    account.clients["sns"].publish(TopicArn=account.topics["updates"], Message="x")
    document = account.gate.policies("writer")["least-privilege"]
    kept = [s for s in document["Statement"] if s["Sid"] != "Announce"]
    account.aws["iam"].put_role_policy(RoleName="writer", PolicyName="least-privilege",
                                       PolicyDocument=json.dumps(_policy(*kept)))
    account.gate.reload()
    assert _denied(lambda: account.clients["sns"].publish(TopicArn=account.topics["updates"], Message="x")) \
        == ("AuthorizationError", 403)


def test_a_call_on_an_encrypted_queue_needs_the_key_in_the_role_and_in_the_key_policy(account):
    kms, iam, sqs = account.aws["kms"], account.aws["iam"], account.aws["sqs"]
    root = f"arn:aws:iam::{ACCOUNT}:root"
    admin = {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*",
             "Condition": {"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:user/admin"}}}
    roles_use = {"Sid": "RolesUseKey", "Effect": "Allow", "Principal": {"AWS": root},
                 "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
                 "Condition": {"ArnEquals": {"aws:PrincipalArn": [account.role["Arn"]]}}}
    key = kms.create_key(Policy=json.dumps(_policy(admin, roles_use)))["KeyMetadata"]["Arn"]
    sealed = sqs.create_queue(QueueName="sealed", Attributes={"KmsMasterKeyId": key})["QueueUrl"]
    send = {"Sid": "QueueSealed", "Effect": "Allow", "Action": ["sqs:SendMessage"],
            "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:sealed"}
    use_key = {"Sid": "UseKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key}

    def allow(*statements: dict) -> None:
        iam.put_role_policy(RoleName="writer", PolicyName="least-privilege",
                            PolicyDocument=json.dumps(_policy(*statements)))
        account.gate.reload()

    def send_sealed():
        return account.clients["sqs"].send_message(QueueUrl=sealed, MessageBody="x")

    allow(send)
    assert _denied(send_sealed) == ("AccessDenied", 403)  # the queue is allowed, its key is not
    allow(send, use_key)
    send_sealed()
    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(_policy(admin)))
    account.gate.reload()
    assert _denied(send_sealed) == ("AccessDenied", 403)  # the key policy no longer names the role
    record = {(row["action"], row["resource"]): row["statements"] for row in account.gate.record() if row["allowed"]}
    assert record[("kms:GenerateDataKey", key)] == [["least-privilege", "UseKey"], ["key-policy", "RolesUseKey"]]


def test_a_key_the_gate_never_issued_is_refused_and_the_operator_key_passes(account):
    stranger = boto3.session.Session(aws_access_key_id="ASIASTRANGER", aws_secret_access_key="x",
                                     region_name=REGION).client("dynamodb", endpoint_url=account.proxy.endpoint)
    assert _denied(lambda: stranger.put_item(TableName="prices", Item={"pk": {"S": "b"}})) \
        == ("UnrecognizedClientException", 400)
    operator = session.client("dynamodb", account.proxy.endpoint)
    operator.put_item(TableName="other", Item={"pk": {"S": "b"}})


# ---- the price API's URL (AWS_IAM) -------------------------------------------------------------

FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:price-api"
READERS = _policy(
    {"Sid": "InvokePriceApiUrl", "Effect": "Allow", "Action": ["lambda:InvokeFunctionUrl"], "Resource": FUNCTION_ARN,
     "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}},
    {"Sid": "InvokePriceApiThroughUrl", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
     "Resource": FUNCTION_ARN,
     "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}})


def _signed_get(url: str, credentials) -> int:
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(credentials, "lambda", REGION).add_auth(request)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=dict(request.headers.items())),
                                    timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_price_api_url_serves_only_principals_allowed_to_invoke_it(account):
    iam = account.aws["iam"]
    readers = iam.create_policy(PolicyName="price-readers", PolicyDocument=json.dumps(READERS))["Policy"]["Arn"]
    trust = json.dumps(_policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                "Action": "sts:AssumeRole"}))
    reader_role = iam.create_role(RoleName="dashboard", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.attach_role_policy(RoleName="dashboard", PolicyArn=readers)
    stranger_role = iam.create_role(RoleName="stranger", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    function = SimpleNamespace(spec=SimpleNamespace(arn=FUNCTION_ARN),
                               invoke=lambda event: {"statusCode": 200, "body": "{}"})
    server = FunctionUrlServer(function, auth_type="AWS_IAM", region=REGION, gate=account.gate).start()  # type: ignore[arg-type]
    try:
        reader = account.gate.assume(reader_role, "dashboard").credentials
        stranger = account.gate.assume(stranger_role, "stranger").credentials
        assert _signed_get(server.url + "prices/latest", reader) == 200
        assert _signed_get(server.url + "prices/latest", stranger) == 403
        assert _signed_get(server.url + "prices/latest", account.identity.credentials) == 403  # a writer, not a reader
        assert _signed_get(server.url + "prices/latest", session.credentials()) == 200  # the account's operator
    finally:
        server.stop()
    record = {(row["role"], row["action"]): row["allowed"] for row in account.gate.record()}
    assert record[("dashboard", "lambda:InvokeFunctionUrl")] and not record[("stranger", "lambda:InvokeFunctionUrl")]
